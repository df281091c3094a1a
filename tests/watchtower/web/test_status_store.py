"""What the status page asks of the history store, over SQLite and the real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from watchtower.model import Result, Status, StatusCount
from watchtower.store import HistoryStore

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def result(name: str, minutes: float, status: Status = Status.OK, attempt: int = 1) -> Result:
    return Result(
        name=name,
        kind="check",
        status=status,
        reason=f"at {minutes}",
        observed_at=T0 + timedelta(minutes=minutes),
        attempt=attempt,
    )


def test_status_counts_are_per_name_utc_hour_and_status_first_attempts_only(
    store: HistoryStore,
) -> None:
    store.add(
        [
            result("a", -61),  # 10:59, before the window
            result("a", -59),
            result("a", -1),
            result("a", -1, Status.CRITICAL),
            result("a", -0.5, Status.CRITICAL, attempt=2),  # a retry: its first attempt counts
            result("a", 0),
            result("a", 59.9),
            result("b", 5, Status.UNKNOWN),
            result("a", 60),  # 13:00, at the end of the window
        ]
    )
    counts = store.status_counts(since=T0 - timedelta(hours=1), until=T0 + timedelta(hours=1))
    eleven, noon = T0 - timedelta(hours=1), T0
    assert sorted(counts, key=lambda c: (c.name, c.hour, c.status.value)) == [
        StatusCount(name="a", hour=eleven, status=Status.CRITICAL, count=1),
        StatusCount(name="a", hour=eleven, status=Status.OK, count=2),
        StatusCount(name="a", hour=noon, status=Status.OK, count=2),
        StatusCount(name="b", hour=noon, status=Status.UNKNOWN, count=1),
    ]
    assert counts[0].hour.tzinfo is UTC
    assert len(store.status_counts(since=T0)) == 3  # open-ended: 12:00 onwards


def test_problems_are_first_attempts_that_were_not_ok(store: HistoryStore) -> None:
    store.add(
        [
            result("a", 1),
            result("a", 2, Status.WARNING),
            result("a", 3, Status.CRITICAL),
            result("a", 3.1, Status.CRITICAL, attempt=2),
            result("b", 4, Status.CRITICAL),
            result("a", 9, Status.UNKNOWN),
        ]
    )
    found = store.problems("a", since=T0, until=T0 + timedelta(minutes=9))
    assert [r.reason for r in found] == ["at 2", "at 3"]


def test_newest_is_the_last_results_of_one_name_oldest_first(store: HistoryStore) -> None:
    store.add([result("a", m) for m in (3, 1, 2)] + [result("b", 9)])
    assert [r.reason for r in store.newest("a", count=2)] == ["at 2", "at 3"]
    assert [r.reason for r in store.newest("a")] == ["at 3"]
    assert store.newest("nothing") == []
