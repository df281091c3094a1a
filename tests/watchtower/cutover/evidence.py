"""Evidence for the pure judging tests: a 24-hour window of healthy samples, with what a test
changes, at explicit times. No server, no clock."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from watchtower.cutover.config import CutoverSettings
from watchtower.cutover.judge import slots
from watchtower.cutover.model import (
    Baseline,
    CloseReason,
    LatencyCounts,
    Reading,
    Sample,
    Window,
)

FLIP = datetime(2026, 6, 1, 10, 3, 27, tzinfo=UTC)  # not on a slot boundary, on purpose
SETTINGS = CutoverSettings()
LAG = timedelta(seconds=SETTINGS.metrics_lag_seconds)


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def window(**changes: Any) -> Window:
    base = Window(
        id="w1",
        opened_at=FLIP,
        opened_by="runbook disable-dual-write (run 42)",
        via="runbook",
        duration_seconds=SETTINGS.window_seconds,
        interval_seconds=SETTINGS.sample_interval,
        recorded_at=FLIP,
        baseline=Baseline(
            start=FLIP - timedelta(days=7),
            end=FLIP,
            days=7,
            writes_by_hour=(600.0,) * 24,  # 50 units per 5-minute slot
            latency=LatencyCounts(
                samples=100_000, over={250: 20_000, 500: 3_000, 800: 1_000, 1000: 0}
            ),
        ),
    )
    return replace(base, **changes)


def healthy() -> dict[str, dict[str, Any]]:
    return {
        "flag": {"flag": 0.0},
        "legacy_inserts": {"rows_since_flip": 0, "rows_in_slot": 0, "first_insert_at": None},
        "dynamodb_writes": {"write_units": 50.0, "uploads": 10.0},
        "upload_success": {
            "uploads": 100.0,
            "server_errors": 0.0,
            "probe_runs": 5.0,
            "probe_failures": 0.0,
        },
        "upload_latency": {
            "samples": 100.0,
            "over": {"250": 20.0, "500": 3.0, "800": 1.0, "1000": 0.0},
        },
        "dual_write_errors": {
            "dual_write_attempts": 0.0,
            "legacy_errors": 0.0,
            "lambda_errors": 0.0,
            "lambda_invocations": 200.0,
        },
        "critical_alerts": {"firing": []},
        "user_operations": {
            op: {
                "requests": 200.0,
                "server_errors": 0.0,
                "samples": 200.0,
                "over": {"250": 10.0, "500": 2.0, "800": 0.0, "1000": 0.0},
            }
            for op in ("get", "list", "delete")
        },
    }


Change = Callable[[datetime, dict[str, dict[str, Any]]], dict[str, dict[str, Any]] | None]


def samples(
    w: Window | None = None,
    *,
    until: datetime | None = None,
    change: Change | None = None,
    missing: Callable[[datetime], bool] = lambda at: False,
    errors: Mapping[str, Callable[[datetime], bool]] | None = None,
) -> list[Sample]:
    """One healthy sample per slot whose boundary is at or before `until` (default: the end).

    `change(at, figures)` edits a slot's figures (return None to keep them), `missing(at)` drops a
    slot's sample, `errors[criterion](at)` makes that reading unreadable.
    """
    w = w or window()
    out = []
    for slot in slots(w):
        if until is not None and slot.at > until:
            break
        if missing(slot.at):
            continue
        figures = healthy()
        if change is not None:
            figures = change(slot.at, figures) or figures
        readings = {
            name: Reading(
                figures=f,
                error="CloudWatch GetMetricData failed: throttled"
                if errors and name in errors and errors[name](slot.at)
                else None,
            )
            for name, f in figures.items()
        }
        end = slot.at - LAG
        out.append(
            Sample(
                window_id=w.id,
                at=slot.at,
                taken_at=slot.at + timedelta(seconds=3),
                metrics_start=end - timedelta(seconds=w.interval_seconds),
                metrics_end=end,
                readings=readings,
            )
        )
    return out


def rolled_back(at: datetime) -> Window:
    return window(
        closed_at=at,
        close_reason=CloseReason.ROLLED_BACK,
        closed_by="olive",
        close_comment="upload errors after the flip",
    )
