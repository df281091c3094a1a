"""The history store's contract, run over SQLite and the real PostgreSQL (`database_url`).

The status page's queries (`status_counts`, `problems`, `newest`) and the alerts table have
suites of their own in tests/web/test_status_store.py and tests/alerts/test_alert_store.py, run
over both backends through the shared `store` fixture.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from functools import partial
from typing import Any

from sqlalchemy import Engine, func, select

from tests.watchtower.contracts.concurrent import race
from watchtower.model import Alert, Result, Status, StatusCount, StepResult
from watchtower.status import DayRollup, Feed, totals_of
from watchtower.store import HistoryStore, results

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
EAST = timezone(timedelta(hours=5, minutes=30))  # a caller's zone that is not UTC
WEST = timezone(timedelta(hours=-7))


def result(name: str, minutes: float, status: Status = Status.OK, **kw: Any) -> Result:
    return Result(
        name=name,
        kind=kw.pop("kind", "check"),
        status=status,
        reason=f"at {minutes}",
        observed_at=T0 + timedelta(minutes=minutes),
        **kw,
    )


def alert(fingerprint: str = "aa", status: str = "firing", starts: int = 0) -> Alert:
    return Alert(
        fingerprint=fingerprint,
        status=status,  # type: ignore[arg-type]
        labels={"alertname": "ImageUploadProbeFailing"},
        annotations={"summary": "é ✓"},
        starts_at=T0 + timedelta(minutes=starts),
        ends_at=T0 + timedelta(minutes=starts + 5) if status == "resolved" else None,
    )


def test_round_trip_keeps_every_field(history: HistoryStore) -> None:
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
    history.add([original])
    assert history.latest() == {"upload_get": original}


def test_latest_is_the_newest_per_name(history: HistoryStore) -> None:
    history.add([result("a", 1), result("b", 2, Status.CRITICAL), result("a", 3, Status.UNKNOWN)])
    latest = history.latest()
    assert {n: r.status for n, r in latest.items()} == {"a": Status.UNKNOWN, "b": Status.CRITICAL}


def test_latest_is_the_last_written_when_two_share_a_moment(history: HistoryStore) -> None:
    history.add([result("a", 1, Status.OK)])
    history.add([result("a", 1, Status.CRITICAL)])
    assert history.latest()["a"].status is Status.CRITICAL
    assert history.latest() == {"a": history.newest("a")[0]}


def test_history_is_a_window_oldest_first(history: HistoryStore) -> None:
    history.add([result("a", m) for m in (5, 1, 3)] + [result("b", 2)])
    window = history.history("a", since=T0 + timedelta(minutes=2), until=T0 + timedelta(minutes=5))
    assert [r.reason for r in window] == ["at 3"]
    everything = history.history(since=T0)
    assert [r.reason for r in everything] == ["at 1", "at 2", "at 3", "at 5"]


def test_prune_applies_retention(history: HistoryStore) -> None:
    history.add([result("a", m) for m in (1, 2, 3)])
    assert history.prune(before=T0 + timedelta(minutes=3)) == 2
    assert [r.reason for r in history.history(since=T0)] == ["at 3"]


def test_an_empty_store_answers_empty(history: HistoryStore) -> None:
    history.add([])
    assert history.latest() == {}
    assert history.history(since=T0) == []
    assert history.status_counts(since=T0) == []
    assert history.firing_alerts() == []
    assert history.prune(before=T0) == 0
    history.ping()


def test_a_moment_written_in_any_zone_comes_back_the_same_instant_in_utc(
    history: HistoryStore,
) -> None:
    east = replace(result("a", 0), observed_at=datetime(2026, 11, 27, 17, 30, 0, 123456, EAST))
    history.add([east])
    (back,) = history.history(since=T0 - timedelta(hours=1))
    assert back.observed_at == T0 + timedelta(microseconds=123456)
    assert back.observed_at.utcoffset() == timedelta(0)
    assert history.latest()["a"].observed_at == back.observed_at


def test_windows_and_retention_given_in_any_zone_are_the_same_instants(
    history: HistoryStore,
) -> None:
    history.add([result("a", 0), result("a", 10, Status.CRITICAL), result("a", 20)])
    since = (T0 + timedelta(minutes=5)).astimezone(WEST)
    until = (T0 + timedelta(minutes=15)).astimezone(EAST)
    assert [r.reason for r in history.history("a", since=since, until=until)] == ["at 10"]
    assert [r.reason for r in history.problems("a", since=since, until=until)] == ["at 10"]
    assert history.prune(before=(T0 + timedelta(minutes=15)).astimezone(EAST)) == 2


def test_status_counts_buckets_are_utc_hours_whatever_the_server_zone(
    history: HistoryStore,
) -> None:
    # 12:29 and 12:31 UTC fall in different +05:30 hours (17:59, 18:01) but in the same UTC hour.
    history.add([result("a", 29), result("a", 31), result("a", 61, Status.CRITICAL)])
    counts = history.status_counts(since=T0)
    assert sorted(counts, key=lambda c: c.hour) == [
        StatusCount(name="a", hour=T0, status=Status.OK, count=2),
        StatusCount(name="a", hour=T0 + timedelta(hours=1), status=Status.CRITICAL, count=1),
    ]
    assert all(c.hour.tzinfo is UTC for c in counts)


def test_alert_times_round_trip_as_utc_instants(history: HistoryStore) -> None:
    original = alert(status="resolved")
    shifted = replace(
        original,
        starts_at=original.starts_at.astimezone(EAST),
        ends_at=original.ends_at.astimezone(WEST),  # type: ignore[union-attr]
    )
    assert history.record_alert(shifted, received_at=T0.astimezone(EAST))
    back = history.alert("aa")
    assert back == original
    assert back is not None and back.starts_at.utcoffset() == timedelta(0)


def test_two_replicas_recording_one_alert_at_once_keep_the_resolution(
    history: HistoryStore, make_engine: Any
) -> None:
    other = HistoryStore(make_engine())
    for starts in range(0, 50, 10):
        firing, resolved = alert(starts=starts), alert(status="resolved", starts=starts)
        outcomes = race(
            partial(history.record_alert, firing, received_at=T0),
            partial(other.record_alert, resolved, received_at=T0),
        )
        assert outcomes[1] is True, outcomes  # the resolution always lands
        assert history.alert("aa") == resolved  # whichever came second, resolved is the state
    assert history.firing_alerts() == []


def test_two_replicas_adding_at_once_lose_nothing(history: HistoryStore, make_engine: Any) -> None:
    other = HistoryStore(make_engine())

    def adds(store: HistoryStore, name: str, minutes: range) -> None:
        for m in minutes:
            store.add([result(name, m)])

    race(partial(adds, history, "a", range(0, 40, 2)), partial(adds, other, "b", range(1, 40, 2)))
    back = history.history(since=T0)
    assert len(back) == 40
    assert [r.observed_at for r in back] == sorted(r.observed_at for r in back)


def test_creating_the_schema_twice_or_from_two_replicas_at_once_is_harmless(
    engine: Engine, make_engine: Any
) -> None:
    first, second = HistoryStore(engine), HistoryStore(make_engine())
    assert race(first.create_schema, second.create_schema) == [None, None]
    first.create_schema()
    first.add([result("a", 1)])
    assert list(second.latest()) == ["a"]


# -- daily rollups ------------------------------------------------------------------------------

FEEDS = {
    "a": Feed(name="a", kind="check", title="A", component="dynamodb", interval=60),
    "b": Feed(name="b", kind="check", title="B", component="dynamodb", interval=300),
    "walk": Feed(name="walk", kind="probe", title="W", component="image_api", interval=60),
}


def rolled(history: HistoryStore, day: datetime = T0) -> dict[tuple[str, str], DayRollup]:
    return {(r.component, r.source): r for r in history.rollups(since=day.date())}


def test_rollups_are_written_incrementally_as_results_arrive(history: HistoryStore) -> None:
    history.feeds = FEEDS
    history.add([result("a", 1), result("a", 2, Status.WARNING), result("b", 1)])
    history.add([result("a", 3, Status.CRITICAL), result("a", 4), result("unwatched", 1)])
    history.add([result("a", 5, Status.WARNING), result("a", 6, attempt=2)])  # retries: not
    day = rolled(history)
    a = day[("dynamodb", "a")]
    assert (a.ok, a.warning, a.critical, a.unknown) == (2, 2, 1, 0)
    assert a.worst is Status.CRITICAL and a.worst_reason == "at 3"  # a later warning keeps it
    assert a.interval == 60 and a.day == T0.date()
    assert day[("dynamodb", "b")].ok == 1
    assert ("dynamodb", "unwatched") not in day


def test_rollups_split_a_walk_by_its_steps_and_days_by_utc(history: HistoryStore) -> None:
    history.feeds = FEEDS
    failed_get = result(
        "walk",
        1,
        Status.CRITICAL,
        kind="probe",
        steps=(
            StepResult(name="upload", ok=True, seconds=0.1),
            StepResult(name="get", ok=False, seconds=2.0, reason="timed out"),
        ),
    )
    # 23:59 in the west is the next UTC day: a day of its own.
    history.add(
        [
            failed_get,
            replace(result("a", 0), observed_at=datetime(2026, 11, 27, 23, 59, tzinfo=WEST)),
        ]
    )
    day = rolled(history)
    assert day[("get_path", "walk")].critical == 1
    assert day[("upload_path", "walk")].ok == 1
    nextday = history.rollups(since=datetime(2026, 11, 28).date())
    assert [(r.source, r.day.isoformat(), r.ok) for r in nextday] == [("a", "2026-11-28", 1)]


def test_rollup_totals_sum_a_components_sources_as_the_page_does(history: HistoryStore) -> None:
    # Two sources of one component at different intervals: the day's down time is the longest
    # any one source was critical (b: 1 x 300 s), not the sum; counts are summed.
    history.feeds = FEEDS
    history.add([result("a", 1, Status.CRITICAL), result("a", 2), result("a", 3, Status.WARNING)])
    history.add([result("b", 1, Status.CRITICAL), result("b", 2), result("b", 3, Status.UNKNOWN)])
    totals = {(t.component, t.day): t for t in history.rollup_totals(since=T0.date())}
    summed = totals[("dynamodb", T0.date())]
    sources = [r for r in history.rollups(since=T0.date()) if r.component == "dynamodb"]
    assert summed == totals_of("dynamodb", T0.date(), sources)
    assert (summed.down, summed.observed, summed.degraded) == (300, 600, 60)
    assert (summed.ok, summed.warning, summed.critical, summed.unknown) == (2, 1, 2, 1)
    assert history.rollup_totals(since=T0.date() + timedelta(days=1)) == []


def test_rollup_totals_of_a_short_range_are_those_of_a_long_one(history: HistoryStore) -> None:
    # A short range is read day by day (an index-friendly form), a long one as a range: the
    # same days give the same sums, and the range's ends are kept.
    history.feeds = FEEDS
    history.add(
        [result("a", day * 24 * 60, Status.CRITICAL if day % 3 else Status.OK) for day in range(12)]
        + [result("b", day * 24 * 60 + 5) for day in range(12)]
    )
    whole = {(t.component, t.day): t for t in history.rollup_totals(since=T0.date())}
    assert len(whole) == 12
    first = T0.date()
    for since, days in ((2, 1), (2, 2), (0, 7), (3, 8), (10, 5)):
        start = first + timedelta(days=since)
        end = start + timedelta(days=days)
        got = history.rollup_totals(since=start, until=end)
        assert sorted(got, key=lambda t: t.day) == [
            t for (_, d), t in sorted(whole.items(), key=lambda kv: kv[0][1]) if start <= d < end
        ], (since, days)
    assert history.rollup_totals(since=first, until=first) == []


def test_pruning_raw_results_keeps_the_rollups(history: HistoryStore) -> None:
    history.feeds = FEEDS
    history.add([result("a", 1, Status.CRITICAL), result("a", 2)])
    history.prune(before=T0 + timedelta(days=1))
    assert history.history(since=T0 - timedelta(days=1)) == []
    a = rolled(history)[("dynamodb", "a")]
    assert (a.ok, a.critical) == (1, 1)


def test_two_replicas_adding_to_one_rollup_at_once_lose_no_count(
    history: HistoryStore, make_engine: Any
) -> None:
    history.feeds = FEEDS
    other = HistoryStore(make_engine(), FEEDS)

    def adds(store: HistoryStore, minutes: range) -> None:
        for m in minutes:
            store.add([result("a", m)])

    race(partial(adds, history, range(0, 40, 2)), partial(adds, other, range(1, 40, 2)))
    assert rolled(history)[("dynamodb", "a")].ok == 40


def test_newest_since_gives_each_names_newest_two_in_one_read(history: HistoryStore) -> None:
    history.add([result("a", m) for m in range(5)] + [result("b", 1), result("c", -30)])
    recent = history.newest_since(T0, count=2)
    assert {n: [r.reason for r in rs] for n, rs in recent.items()} == {
        "a": ["at 3", "at 4"],
        "b": ["at 1"],
    }
    assert recent["a"] == history.newest("a", count=2)


def test_an_in_memory_sqlite_store_keeps_what_it_is_given() -> None:
    # One database per thread: its writes must not go through the deadline's worker thread.
    from watchtower.store import engine_for

    engine = engine_for("sqlite://")
    try:
        memory = HistoryStore(engine, FEEDS)
        memory.create_schema()
        memory.add([result("a", 1)])
        memory.ping()
        assert [r.reason for r in memory.history(since=T0)] == ["at 1"]
        assert rolled(memory)[("dynamodb", "a")].ok == 1
    finally:
        engine.dispose()


# -- the results' version: what the status page keeps its reads under ------------------------------


def test_the_version_changes_with_every_write_and_only_then(history: HistoryStore) -> None:
    empty = history.version()
    assert history.version() == empty
    history.add([result("a", 1)])
    once = history.version()
    assert once != empty
    assert history.version() == once  # reads change nothing
    history.newest_since(T0)
    history.add([])  # nothing to write
    assert history.version() == once
    history.add([result("a", 1)])  # the same moment again is still a write
    twice = history.version()
    assert twice not in (empty, once)
    history.prune(before=T0 - timedelta(days=1))  # deletes nothing, still a write transaction
    assert history.version() != twice


def test_another_replicas_write_changes_the_version_this_one_reads(
    history: HistoryStore, make_engine: Any
) -> None:
    other = HistoryStore(make_engine())
    history.add([result("a", 1)])
    before = history.version()
    assert other.version() == before  # one database, one version
    other.add([result("b", 2)])
    assert history.version() != before
    assert history.version() == other.version()


def test_two_replicas_writing_at_once_each_change_the_number(
    history: HistoryStore, make_engine: Any
) -> None:
    # Concurrent writers take turns on the version row (PostgreSQL: its lock until the commit),
    # so no write's change is lost: a reader can never see new rows under a number it has seen.
    other = HistoryStore(make_engine())
    history.add([result("a", 0)])
    start, _ = history.version()
    assert start is not None

    def adds(store: HistoryStore, name: str, minutes: range) -> None:
        for m in minutes:
            store.add([result(name, m)])

    race(partial(adds, history, "a", range(1, 41, 2)), partial(adds, other, "b", range(2, 41, 2)))
    number, newest = history.version()
    assert number == start + 40
    with history.engine.connect() as conn:
        assert newest == conn.execute(select(func.max(results.c.id))).scalar_one()
