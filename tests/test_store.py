"""The history store: one contract, run over SQLite and the real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from watchtower.model import Result, Status, StepResult
from watchtower.store import HistoryStore

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def result(name: str, minutes: int, status: Status = Status.OK, **kw: Any) -> Result:
    return Result(
        name=name,
        kind=kw.pop("kind", "check"),
        status=status,
        reason=f"at {minutes}",
        observed_at=T0 + timedelta(minutes=minutes),
        **kw,
    )


def test_round_trip_keeps_every_field(store: HistoryStore) -> None:
    original = result(
        "upload_get",
        1,
        Status.WARNING,
        kind="probe",
        figures={"a": 1.5, "b": None},
        thresholds={"max": 0.8},
        duration_seconds=0.25,
        attempt=2,
        steps=(
            StepResult(name="upload", ok=True, seconds=0.1),
            StepResult(name="get", ok=False, seconds=0.2, reason="404 <b>"),
        ),
    )
    store.add([original])
    assert store.latest() == {"upload_get": original}


def test_latest_is_the_newest_per_name(store: HistoryStore) -> None:
    store.add([result("a", 1), result("b", 2, Status.CRITICAL), result("a", 3, Status.UNKNOWN)])
    latest = store.latest()
    assert {n: r.status for n, r in latest.items()} == {"a": Status.UNKNOWN, "b": Status.CRITICAL}


def test_history_is_a_window_oldest_first(store: HistoryStore) -> None:
    store.add([result("a", m) for m in (5, 1, 3)] + [result("b", 2)])
    window = store.history("a", since=T0 + timedelta(minutes=2), until=T0 + timedelta(minutes=5))
    assert [r.reason for r in window] == ["at 3"]
    everything = store.history(since=T0)
    assert [r.reason for r in everything] == ["at 1", "at 2", "at 3", "at 5"]


def test_prune_applies_retention(store: HistoryStore) -> None:
    store.add([result("a", m) for m in (1, 2, 3)])
    assert store.prune(before=T0 + timedelta(minutes=3)) == 2
    assert [r.reason for r in store.history(since=T0)] == ["at 3"]
