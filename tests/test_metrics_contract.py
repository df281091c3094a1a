"""docs/metrics-contract.md lists exactly what the checks declare they read: every metric (by
namespace, name and dimension names) and every log line, configuration and table, each with the
checks that read it."""

from __future__ import annotations

import re
from pathlib import Path

from watchtower.checks.upload_success import judging
from watchtower.config import Settings
from watchtower.doctor.contract import needs

# Every optional target configured, so that every check declares all it can read.
EVERYTHING = Settings(
    cloudfront_distribution_id="E0EXAMPLE",
    legacy_database_url="postgresql://watchtower@legacy/db",
    lambda_alias="live",
)
PAGE = Path(__file__).resolve().parents[1] / "docs" / "metrics-contract.md"


def _rows(text: str, heading: str) -> list[list[str]]:
    section = text.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


def _names(cell: str) -> tuple[str, ...]:
    return tuple(re.findall(r"`([^`]+)`", cell))


def test_the_page_lists_every_metric_the_checks_read_and_nothing_else() -> None:
    text = PAGE.read_text(encoding="utf-8")
    listed = {
        (_names(ns)[0], _names(metric)[0], tuple(sorted(_names(dims))), tuple(sorted(_names(by))))
        for ns, metric, dims, _unit, by, _without in _rows(text, "Metrics (CloudWatch)")
    }
    declared = {
        (n.namespace, n.metric, n.dimensions, tuple(sorted(n.checks)))
        for n in needs(EVERYTHING)
        if n.kind == "metric"
    }
    assert listed == declared


def test_the_page_lists_every_log_line_and_table_the_checks_read() -> None:
    text = PAGE.read_text(encoding="utf-8")
    listed = {
        (_names(read)[0], tuple(sorted(_names(by))))
        for read, _what, by, _without in _rows(text, "Log lines, configuration and tables")
    }
    declared = {(n.name, tuple(sorted(n.checks))) for n in needs(EVERYTHING) if n.kind != "metric"}
    assert listed == declared


def test_every_row_says_its_unit_and_what_happens_without_it() -> None:
    text = PAGE.read_text(encoding="utf-8")
    for row in _rows(text, "Metrics (CloudWatch)"):
        assert row[3] and row[5], row


def test_the_doctor_asks_for_the_latency_objective_the_check_will_judge() -> None:
    metrics = {n.metric for n in needs(judging(Settings(), 1500)) if n.kind == "metric"}
    assert "LatencyOver1500ms" in metrics  # WATCHTOWER_CUTOVER_MAX_P95_MS=1500
    assert "LatencyOver1500ms" not in {n.metric for n in needs(Settings())}
