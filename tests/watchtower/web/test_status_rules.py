"""The status page's rules, pure: states, staleness, the walk's two rows, uptime, days, latency."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from watchtower import status
from watchtower.model import Result, Status, StatusCount, StepResult
from watchtower.status import DayState, Feed, State

NOW = datetime(2026, 11, 27, 12, 30, tzinfo=UTC)
TODAY = date(2026, 11, 27)

PROBE = Feed(
    name="upload_get", kind="probe", title="Upload and get", component="image_api", interval=60
)
THROTTLING = Feed(
    name="dynamodb_throttling", kind="check", title="Throttling", component="dynamodb", interval=60
)
WRITES = Feed(
    name="dynamodb_writes", kind="check", title="Writes", component="dynamodb", interval=60
)
FLAG = Feed(name="dual_write", kind="check", title="Dual-write", component="legacy", interval=300)
STEPS = ("upload", "replay", "get", "thumbnail", "list", "delete", "get_deleted")


def check(
    name: str, at: datetime, st: Status = Status.OK, reason: str = "fine", **kw: Any
) -> Result:
    return Result(name=name, kind="check", status=st, reason=reason, observed_at=at, **kw)


def walk(
    at: datetime,
    st: Status = Status.OK,
    *,
    fail: str | None = None,
    attempt: int = 1,
    reason: str = "",
    seconds: float = 0.1,
) -> Result:
    steps = []
    for name in STEPS:
        steps.append(
            StepResult(
                name=name, ok=name != fail, seconds=seconds, reason=reason if name == fail else ""
            )
        )
        if name == fail:
            break
    said = f"{fail} failed: {reason}" if fail else reason or "all steps ok"
    return Result(
        name="upload_get",
        kind="probe",
        status=st,
        reason=said,
        observed_at=at,
        steps=tuple(steps),
        attempt=attempt,
        thresholds={"warning_upload_seconds": 0.8},
    )


def states(
    feeds: Iterable[Feed], runs: dict[str, tuple[Result, ...]], now: datetime = NOW
) -> dict[str, State]:
    return {c.component.id: c.state for c in status.component_states(feeds, runs, now)}


def component(
    feeds: Iterable[Feed], runs: dict[str, tuple[Result, ...]], cid: str
) -> status.ComponentState:
    return next(c for c in status.component_states(feeds, runs, NOW) if c.component.id == cid)


# -- state now ---------------------------------------------------------------------------------


def test_a_component_is_the_worst_of_its_sources() -> None:
    recent = NOW - timedelta(seconds=30)
    runs = {
        "dynamodb_throttling": (
            check("dynamodb_throttling", recent, Status.WARNING, "12 throttled"),
        ),
        "dynamodb_writes": (check("dynamodb_writes", recent, Status.CRITICAL, "no writes"),),
    }
    row = component([THROTTLING, WRITES], runs, "dynamodb")
    assert row.state is State.CRITICAL
    assert row.reason == "no writes"
    assert [s.feed.name for s in row.sources] == ["dynamodb_writes", "dynamodb_throttling"]
    assert row.last_checked == recent and not row.stale


def test_every_known_component_has_a_row_in_page_order_and_unknown_ones_come_last() -> None:
    odd = Feed(name="x", kind="check", title="X", component="queue", interval=60)
    rows = status.component_states([odd], {}, NOW)
    assert [c.component.id for c in rows] == [
        "upload_path",
        "get_path",
        "dynamodb",
        "lambda",
        "cloudfront",
        "cache",
        "legacy",
        "queue",
    ]
    assert (
        rows[0].state is State.NO_DATA
        and rows[0].reason == "no probe or check watches this component"
    )
    assert rows[-1].state is State.NO_DATA and "no result yet" in rows[-1].reason


def test_a_result_older_than_twice_its_interval_is_stale_not_its_last_colour() -> None:
    fresh = {
        "dual_write": (check("dual_write", NOW - timedelta(seconds=600), Status.CRITICAL, "rows"),)
    }
    assert states([FLAG], fresh)["legacy"] is State.CRITICAL  # exactly 2 x 300 s: still fresh
    old = {
        "dual_write": (check("dual_write", NOW - timedelta(seconds=601), Status.CRITICAL, "rows"),)
    }
    row = component([FLAG], old, "legacy")
    assert row.state is State.STALE and row.stale
    assert row.sources[0].status is Status.CRITICAL  # what it last said is kept, in words only
    assert row.reason.startswith("stale: last result 10 min ago, expected every 5 min")
    assert row.reason.endswith("it said critical: rows")


def test_stale_outranks_ok_and_warning_but_not_a_fresh_critical() -> None:
    stale = check("dynamodb_throttling", NOW - timedelta(minutes=5), Status.OK)
    warning = check("dynamodb_writes", NOW, Status.WARNING)
    assert (
        states(
            [THROTTLING, WRITES], {"dynamodb_throttling": (stale,), "dynamodb_writes": (warning,)}
        )["dynamodb"]
        is State.STALE
    )
    critical = check("dynamodb_writes", NOW, Status.CRITICAL)
    assert (
        states(
            [THROTTLING, WRITES], {"dynamodb_throttling": (stale,), "dynamodb_writes": (critical,)}
        )["dynamodb"]
        is State.CRITICAL
    )


def test_unknown_is_never_ok() -> None:
    unread = check("dynamodb_throttling", NOW, Status.UNKNOWN, "GetMetricData: AccessDenied")
    ok = check("dynamodb_writes", NOW)
    row = component(
        [THROTTLING, WRITES],
        {"dynamodb_throttling": (unread,), "dynamodb_writes": (ok,)},
        "dynamodb",
    )
    assert row.state is State.UNKNOWN and row.reason == "GetMetricData: AccessDenied"


def test_the_overall_headline_names_what_needs_attention() -> None:
    feeds = [THROTTLING, WRITES, FLAG]

    def overall(**runs: Result) -> status.Overall:
        rows = status.component_states(feeds, {n: (r,) for n, r in runs.items()}, NOW)
        return status.overall([r for r in rows if r.sources], NOW)

    fine = check("dynamodb_writes", NOW)
    flag = check("dual_write", NOW)
    assert overall(
        dynamodb_throttling=check("dynamodb_throttling", NOW), dynamodb_writes=fine, dual_write=flag
    ) == status.Overall(state=State.OK, headline="All components operational")
    one = overall(
        dynamodb_throttling=check("dynamodb_throttling", NOW, Status.WARNING),
        dynamodb_writes=fine,
        dual_write=flag,
    )
    assert (one.state, one.headline, one.detail) == (
        State.WARNING,
        "DynamoDB: warning",
        "Warning: DynamoDB",
    )
    two = overall(
        dynamodb_throttling=check("dynamodb_throttling", NOW, Status.WARNING),
        dynamodb_writes=fine,
        dual_write=check("dual_write", NOW, Status.CRITICAL),
    )
    assert (two.state, two.headline, two.detail) == (
        State.CRITICAL,
        "2 of 2 components need attention",
        "Critical: Legacy PostgreSQL / dual-write; Warning: DynamoDB",
    )


def test_when_nothing_is_fresh_the_headline_asks_about_the_scheduler() -> None:
    old = NOW - timedelta(minutes=30)
    rows = status.component_states(
        [THROTTLING, FLAG], {"dynamodb_throttling": (check("dynamodb_throttling", old),)}, NOW
    )
    idle = status.overall(rows, NOW)
    assert idle.state is State.STALE
    assert idle.headline == (
        "No fresh results: the newest is 30 min ago. Is Watchtower's scheduler running?"
    )
    empty = status.overall(status.component_states([THROTTLING], {}, NOW), NOW)
    assert (empty.state, empty.headline) == (
        State.NO_DATA,
        "No results yet: no probe or check has reported",
    )


# -- the walk's two rows -----------------------------------------------------------------------


def rows_of(*run: Result) -> dict[str, tuple[State, str]]:
    return {
        c.component.id: (c.state, c.reason)
        for c in status.component_states([PROBE], {"upload_get": run}, NOW)
        if c.component.id in ("upload_path", "get_path")
    }


def test_the_probe_feeds_the_upload_path_and_its_get_steps_the_get_path() -> None:
    assert PROBE.rows == ("upload_path", "get_path")
    rows = rows_of(walk(NOW))
    assert rows["upload_path"] == (State.OK, "upload, replay, delete and get_deleted ok in 400 ms")
    assert rows["get_path"] == (State.OK, "get, thumbnail and list ok in 300 ms")


def test_a_failed_get_step_is_the_get_path_only() -> None:
    first = walk(NOW - timedelta(seconds=3), Status.CRITICAL, fail="thumbnail", reason="HTTP 503")
    retry = walk(NOW, Status.CRITICAL, fail="thumbnail", reason="HTTP 503", attempt=2)
    rows = rows_of(first, retry)
    assert rows["get_path"] == (State.CRITICAL, "thumbnail failed: HTTP 503")
    assert rows["upload_path"][0] is State.OK


def test_a_failed_upload_leaves_the_get_path_unexercised() -> None:
    rows = rows_of(walk(NOW, Status.CRITICAL, fail="upload", reason="connection refused"))
    assert rows["upload_path"] == (State.CRITICAL, "upload failed: connection refused")
    state, reason = rows["get_path"]
    assert state is State.UNKNOWN
    assert reason.startswith("not exercised: the walk stopped at its upload step")


def test_slowness_is_the_upload_paths_and_a_flake_is_its_steps_row() -> None:
    slow = walk(NOW, Status.WARNING, reason="slow: upload took 0.95 s")
    assert rows_of(slow) == {
        "upload_path": (State.WARNING, "slow: upload took 0.95 s"),
        "get_path": (State.OK, "get, thumbnail and list ok in 300 ms"),
    }
    flake = walk(NOW - timedelta(seconds=2), Status.WARNING, fail="get", reason="timed out")
    passed = walk(NOW, attempt=2)
    rows = rows_of(flake, passed)  # the run counts whole: its first attempt too
    assert rows["get_path"] == (State.WARNING, "get failed: timed out")
    assert rows["upload_path"][0] is State.OK


def test_a_broken_probe_is_unknown_on_both_rows() -> None:
    broken = Result(
        name="upload_get",
        kind="probe",
        status=Status.UNKNOWN,
        reason="the probe failed: bug",
        observed_at=NOW,
    )
    assert {s for s, _ in rows_of(broken).values()} == {State.UNKNOWN}


def test_latest_run_joins_a_retry_to_its_first_attempt() -> None:
    a, b = walk(NOW - timedelta(minutes=1)), walk(NOW, Status.CRITICAL, fail="get")
    retry = walk(NOW + timedelta(seconds=2), Status.CRITICAL, fail="get", attempt=2)
    assert status.latest_run([a, b, retry]) == (b, retry)
    assert status.latest_run([a, b]) == (b,)
    assert status.latest_run([]) == ()


# -- history: uptime and days ------------------------------------------------------------------


def counts(name: str, start: datetime, minutes: int, st: Status = Status.OK) -> list[StatusCount]:
    """`minutes` one-a-minute results from `start`, as the store counts them per hour."""
    out: dict[datetime, int] = {}
    for m in range(minutes):
        hour = status.floor_hour(start + timedelta(minutes=m))
        out[hour] = out.get(hour, 0) + 1
    return [StatusCount(name=name, hour=h, status=st, count=n) for h, n in out.items()]


def test_uptime_is_down_time_over_observed_time() -> None:
    day = datetime(2026, 11, 26, tzinfo=UTC)
    history = [
        *counts("dynamodb_throttling", day, 10 * 60),
        *counts("dynamodb_throttling", day + timedelta(hours=10), 60, Status.CRITICAL),
        *counts("dynamodb_throttling", day + timedelta(hours=11), 13 * 60),
    ]
    hours = status.hours_from([THROTTLING], history)["dynamodb"]
    assert status.uptime(
        hours, datetime(2026, 11, 27, tzinfo=UTC) - timedelta(seconds=1), 24
    ) == pytest.approx(1 - 3600 / (24 * 3600))
    assert status.percent(1 - 3600 / (24 * 3600)) == "95.83%"
    assert status.uptime(hours, NOW, 1) is None  # nothing observed this hour: no figure, not 100%


def test_a_components_down_time_is_its_longest_source_outage_per_hour() -> None:
    hour = datetime(2026, 11, 27, 9, tzinfo=UTC)
    history = [
        *counts("dynamodb_throttling", hour, 10, Status.CRITICAL),
        *counts("dynamodb_throttling", hour + timedelta(minutes=10), 50),
        *counts("dynamodb_writes", hour, 20, Status.CRITICAL),
        *counts("dynamodb_writes", hour + timedelta(minutes=20), 40),
    ]
    h = status.hours_from([THROTTLING, WRITES], history)["dynamodb"][hour]
    assert (h.down, h.observed, h.critical, h.ok) == (1200, 3600, 30, 90)


def test_unknown_readings_count_as_neither_up_nor_down() -> None:
    hour = datetime(2026, 11, 27, 9, tzinfo=UTC)
    history = [
        *counts("dynamodb_throttling", hour, 30),
        *counts("dynamodb_throttling", hour + timedelta(minutes=30), 30, Status.UNKNOWN),
    ]
    h = status.hours_from([THROTTLING], history)["dynamodb"][hour]
    assert (h.observed, h.down, h.unknown) == (1800, 0, 30)
    assert status.uptime({hour: h}, NOW, 24) == 1.0


def test_days_are_down_degraded_operational_or_without_data() -> None:
    def at(days_back: int, hour: int = 3) -> datetime:
        return datetime(2026, 11, 27 - days_back, hour, tzinfo=UTC)

    history = [
        *counts("dynamodb_throttling", at(0), 60),  # today: ok
        *counts("dynamodb_throttling", at(1), 60),
        *counts("dynamodb_throttling", at(1, 5), 1, Status.CRITICAL),  # one critical minute: down
        *counts("dynamodb_throttling", at(2), 60),
        *counts("dynamodb_throttling", at(2, 7), 3, Status.WARNING),  # warnings only: degraded
        # 3 days back: nothing at all
        *counts("dynamodb_throttling", at(4), 60, Status.UNKNOWN),  # unreadable all day: no data
        *counts("dynamodb_throttling", at(5), 60),
    ]
    hours = status.hours_from([THROTTLING], history)["dynamodb"]
    days = status.days(hours, NOW, 6)
    assert [d.date for d in days] == [TODAY - timedelta(days=n) for n in range(5, -1, -1)]
    assert [d.state for d in days] == [
        DayState.OPERATIONAL,
        DayState.NO_DATA,
        DayState.NO_DATA,
        DayState.DEGRADED,
        DayState.DOWN,
        DayState.OPERATIONAL,
    ]
    down, degraded, today = days[4], days[3], days[5]
    assert down.down_seconds == 60 and down.critical == 1
    assert degraded.degraded_seconds == 180 and degraded.uptime == 1.0
    assert days[1].unknown == 60 and days[1].uptime is None
    assert today.coverage == pytest.approx(3600 / (12.5 * 3600))  # of the elapsed part of today
    assert len(status.days(hours, NOW)) == 90


def test_the_walks_history_splits_by_the_step_that_failed() -> None:
    hour = datetime(2026, 11, 27, 9, tzinfo=UTC)
    history = [StatusCount(name="upload_get", hour=hour, status=Status.OK, count=55)]
    # The store's counts of problems are replaced by the problems themselves.
    history.append(StatusCount(name="upload_get", hour=hour, status=Status.CRITICAL, count=5))
    problems = [
        *(walk(hour + timedelta(minutes=m), Status.CRITICAL, fail="thumbnail") for m in range(3)),
        walk(hour + timedelta(minutes=3), Status.CRITICAL, fail="upload"),
        walk(hour + timedelta(minutes=4), Status.WARNING, reason="slow"),
        walk(hour + timedelta(minutes=4, seconds=2), Status.CRITICAL, fail="upload", attempt=2),
    ]
    hours = status.hours_from([PROBE], history, problems)
    upload, get = hours["upload_path"][hour], hours["get_path"][hour]
    assert (upload.ok, upload.warning, upload.critical, upload.unknown) == (58, 1, 1, 0)
    assert (get.ok, get.warning, get.critical, get.unknown) == (56, 0, 3, 1)
    assert get.down == 180 and upload.down == 60


# -- latency -----------------------------------------------------------------------------------


def test_step_latency_is_p50_and_p95_per_hour_of_steps_that_held() -> None:
    hour = datetime(2026, 11, 27, 11, tzinfo=UTC)
    results = [walk(hour + timedelta(minutes=m), seconds=(m + 1) / 100) for m in range(20)]
    results.append(walk(hour + timedelta(minutes=30), Status.CRITICAL, fail="get", seconds=10.0))
    series = status.step_latency(status.step_samples(results), NOW, hours=24)
    assert [s.step for s in series] == list(STEPS)
    get = next(s for s in series if s.step == "get")
    assert len(get.points) == 24 and get.points[-1].start == datetime(2026, 11, 27, 12, tzinfo=UTC)
    eleven = get.points[-2]
    assert (eleven.samples, eleven.p50, eleven.p95) == (20, 0.10, 0.19)  # the 10 s failure left out
    assert get.last == eleven and get.points[0].p50 is None
    upload = next(s for s in series if s.step == "upload")
    assert upload.threshold == 0.8 and get.threshold is None


def test_step_samples_merge_keeps_hours_and_the_earliest_position() -> None:
    older = status.step_samples([walk(NOW - timedelta(hours=2))])
    newer = status.step_samples([walk(NOW, Status.CRITICAL, fail="upload")])
    merged = older.merge(newer)
    assert len(merged.seconds) == 2 and merged.positions[("upload_get", "get")] == 2


def test_percentile_is_nearest_rank() -> None:
    assert status.percentile([], 0.5) is None
    assert status.percentile([1.0], 0.95) == 1.0
    assert status.percentile([float(n) for n in range(1, 101)], 0.95) == 95.0
    assert status.percentile([1.0, 2.0], 0.5) == 1.0


# -- words -------------------------------------------------------------------------------------


def test_words_and_numbers() -> None:
    assert status.percent(0.999999) == "99.99%"  # never rounded up to 100% while anything was down
    assert status.percent(None) == "—"
    assert status.seconds(0.0434) == "43 ms" and status.seconds(1.5) == "1.50 s"
    assert status.duration(42) == "42 s" and status.duration(90) == "1 min 30 s"
    assert status.duration(7260) == "2 h 1 min" and status.duration(3 * 86400 + 7200) == "3 d 2 h"
    assert status.ago(NOW - timedelta(minutes=3), NOW) == "3 min ago"
    assert status.ago(None, NOW) == "never"


def test_headline_figures() -> None:
    dual = check(
        "dual_write", NOW, figures={"flag": 1.0, "success_ratio": 0.9995, "attempts": 2000.0}
    )
    assert status.headline(dual) == "dual-write flag on · 99.95% of 2,000 dual-writes ok"
    unread = check("dual_write", NOW, figures={"flag": None})
    assert status.headline(unread) == ""
    other = check("new_check", NOW, figures={"a": 1.5, "b": None, "c": 2.0})
    assert status.headline(other) == "a 1.5 · c 2"
