"""The final migration report (Story 6.5): a snapshot of its content (sections, figures, the
timeline from the audit log, cost from Cost Explorer), not of its formatting."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from tests.watchtower.checks.conftest import World
from tests.watchtower.cutover.conftest import post_json, running_cutover
from tests.watchtower.cutover.evidence import samples, window
from watchtower.config import Settings
from watchtower.cutover.config import CutoverSettings
from watchtower.cutover.markdown import migration_markdown
from watchtower.cutover.migration import migration_report
from watchtower.cutover.render import migration_html
from watchtower.cutover.service import CutoverService
from watchtower.model import Alert
from watchtower.store import HistoryStore

SECTIONS = (
    "## 1. Executive summary",
    "## 2. Timeline",
    "## 3. Performance before and after",
    "## 4. Cost analysis",
    "## 5. Issues encountered and resolutions",
    "## 6. Lessons learned",
    "## 7. Team recognition",
)


def platform(world: World, at: datetime, *, before: bool) -> None:
    """User traffic of one period: slower and less reliable before the flip."""
    if before:
        world.requests("success", 998, at=at)
        world.requests("server_error", 2, at=at)
        world.latency(1000, {250: 600, 500: 200, 800: 80, 1000: 20}, at=at)
    else:
        world.requests("success", 1000, at=at)
        world.latency(1000, {250: 300, 500: 40, 800: 5, 1000: 0}, at=at)
    world.requests("success", 5000, operation="get", at=at)
    world.metric("CacheEvents", 90 if not before else 70, at=at, Event="hit")
    world.metric("CacheEvents", 10 if not before else 30, at=at, Event="miss")
    world.cloudfront(hit_rate=89.0, requests=1000, at=at)


@pytest.fixture
def signed(service: CutoverService, world: World, now: datetime) -> CutoverService:
    flip = (now - timedelta(days=3)).replace(microsecond=0)
    w = replace(window(), id="w-final", opened_at=flip, recorded_at=flip)
    service.store.add_window(w)
    for sample in samples(w):
        service.store.add_sample(sample)
    service.store.append(
        at=flip,
        actor="runbook run 1",
        action="window-opened",
        window_id=w.id,
        detail={"flipped_by": "olive (runbook disable-dual-write, run 1)", "via": "runbook"},
    )
    end = flip + timedelta(days=1, minutes=5)
    service.sign(w.id, name="Ada", role="Engineering lead", comment="", user="ada", now=end)
    service.sign(w.id, name="Olive", role="Operations lead", comment="", user="olive", now=end)
    platform(world, flip - timedelta(days=2), before=True)
    platform(world, flip + timedelta(days=1), before=False)
    HistoryStore(service.store.engine).record_alert(
        Alert(
            fingerprint="a1",
            status="resolved",
            labels={"alertname": "ImageUploadErrors", "severity": "critical"},
            annotations={"summary": "uploads failing"},
            starts_at=flip - timedelta(days=1),
            ends_at=flip - timedelta(days=1) + timedelta(minutes=20),
        ),
        received_at=flip,
    )
    return service


COSTS = {
    "results": [
        {
            "ResultsByTime": [
                {
                    "TimePeriod": {"Start": "2026-09-01", "End": "2026-10-01"},
                    "Total": {},
                    "Groups": [
                        {
                            "Keys": ["AWS Lambda"],
                            "Metrics": {"UnblendedCost": {"Amount": "41.5", "Unit": "USD"}},
                        },
                        {
                            "Keys": ["Amazon DynamoDB"],
                            "Metrics": {"UnblendedCost": {"Amount": "20.25", "Unit": "USD"}},
                        },
                    ],
                    "Estimated": False,
                },
                {
                    "TimePeriod": {"Start": "2026-10-01", "End": "2026-11-01"},
                    "Total": {"UnblendedCost": {"Amount": "84.00", "Unit": "USD"}},
                    "Groups": [],
                    "Estimated": True,
                },
            ]
        }
    ]
}


def test_the_report_has_every_section_and_the_figures(signed: CutoverService, moto, now) -> None:
    post_json(f"{moto.url}/moto-api/static/ce/cost-and-usage-results", COSTS)
    doc = migration_report(signed, now=now)
    md = migration_markdown(doc)
    for section in SECTIONS:
        assert section in md
    # Executive summary: the signed window and who signed.
    summary = doc["summary"]
    assert summary["cutover_state"] == "signed"
    assert summary["signed_by"] == ["Ada (Engineering lead)", "Olive (Operations lead)"]
    # Performance: P95 bounds from the threshold counts, success rates, cache hit rates.
    rows = {r["key"]: r for r in doc["performance"]["rows"]}
    assert (rows["upload_p95_bound_ms"]["before"], rows["upload_p95_bound_ms"]["after"]) == (
        1000.0,
        500.0,
    )
    assert rows["upload_p95_bound_ms"]["change"] == "-50%"
    assert rows["upload_success_ratio"]["before"] == pytest.approx(0.998)
    assert rows["upload_success_ratio"]["after"] == 1.0
    assert rows["gallery_cache_hit_ratio"]["after"] == pytest.approx(0.9)
    assert rows["cloudfront_hit_ratio"]["after"] == pytest.approx(0.89)
    assert rows["get_requests"]["after"] == 5000
    line = next(x for x in md.splitlines() if "Upload P95 (upper bound" in x and "|" in x)
    assert [c.strip() for c in line.split("|")[2:5]] == ["1000 ms", "500 ms", "-50%"]
    # Timeline from the audit log.
    texts = [t["text"] for t in doc["timeline"]]
    assert any(t.startswith("Dual-write turned off by olive") for t in texts)
    assert "Signed by Ada (Engineering lead)" in texts
    assert any(t.startswith("Cutover report frozen, sha256 ") for t in texts)
    # Cost, from Cost Explorer (moto answers what was injected).
    cost = doc["cost"]
    assert cost["available"] and cost["tag"] == "service=image-service"
    assert [m["amount"] for m in cost["months"]] == [61.75, 84.0]
    assert cost["months"][0]["by_service"] == {"AWS Lambda": 41.5, "Amazon DynamoDB": 20.25}
    assert "84.00 USD" in md
    # Issues: the critical alert, with a resolution to write.
    assert any("Critical alert ImageUploadErrors fired" in i["text"] for i in doc["issues"])
    # The sections people write are marked, in both renderings.
    assert md.count("TO BE FILLED IN") >= 8
    html = migration_html(doc)
    assert html.count('class="placeholder"') == 7
    assert "<script" not in html and "style=" not in html
    assert doc["contributors"] == ["Ada", "Olive", "ada", "olive"]
    assert len(doc["sha256"]) == 64


def test_without_cost_explorer_the_report_says_so(
    settings: Settings, signed: CutoverService, now: datetime
) -> None:
    def dead_ce(service: str, region: str | None = None) -> object:
        import boto3
        from botocore.config import Config

        return boto3.client(
            service,
            endpoint_url="http://127.0.0.1:9" if service == "ce" else settings.aws_endpoint_url,
            region_name="us-east-1",
            config=Config(connect_timeout=1, retries={"max_attempts": 1}),
        )

    with running_cutover(settings, cutover=CutoverSettings(), client=dead_ce) as service:
        doc = migration_report(service, now=now)
    assert doc["cost"]["available"] is False
    assert "Cost Explorer could not be read" in doc["cost"]["note"]
    assert "Cost Explorer could not be read" in migration_markdown(doc)


def test_the_report_from_the_terminal(settings: Settings, signed: CutoverService, tmp_path) -> None:
    from click.testing import CliRunner

    from watchtower.cli import main

    env = {
        "WATCHTOWER_DATABASE_URL": settings.database_url,
        "AWS_ENDPOINT_URL": settings.aws_endpoint_url,
        "WATCHTOWER_LAMBDA_FUNCTION": settings.lambda_function,
    }
    out = tmp_path / "report.html"
    result = CliRunner().invoke(
        main, ["report", "migration", "--format", "html", "-o", str(out)], env=env
    )
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert "Image service migration: final report" in html and "7. Team recognition" in html
    result = CliRunner().invoke(main, ["report", "migration"], env=env)
    assert result.exit_code == 0 and "## 4. Cost analysis" in result.stdout


def test_a_latency_threshold_the_image_core_does_not_publish_is_left_out(
    settings: Settings, world: World, now: datetime, tmp_path
) -> None:
    """IMAGE_LATENCY_THRESHOLDS_MS=250,500,847,1000: LatencyOver800ms is absent, so the report's
    P95 bound is 1000 ms, not "800 ms, none over it"."""
    from watchtower.cutover.migration import Period, period_figures
    from watchtower.runtime import build_sources
    from watchtower.store import engine_for

    at = now - timedelta(minutes=30)
    world.requests("success", 100, at=at)
    world.latency(100, {250: 60, 500: 20, 847: 3}, at=at, thresholds=(250, 500, 847, 1000))
    store = HistoryStore(engine_for(f"sqlite:///{tmp_path / 'results.sqlite'}"))
    store.create_schema()
    period = Period(label="after", start=now - timedelta(hours=1), end=now)

    figures = period_figures(settings, build_sources(settings).metrics, store, period)

    assert figures.error is None
    assert figures.values["upload_p95_bound_ms"] == 1000.0
    assert figures.values["upload_p95_estimate_ms"] == pytest.approx(875.0)
