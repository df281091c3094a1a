"""Sealed periods (watchtower/sealed.py), over SQLite and the real PostgreSQL: the status page's
closed hours and days, kept once one replica computed them, unsealed by late results."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import Engine

from tests.watchtower.contracts.concurrent import race
from watchtower.model import Result, Status
from watchtower.sealed import SealedPeriods
from watchtower.status import DayTotals, Feed, Hour
from watchtower.store import HistoryStore

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
DAY = T0.date()
FEEDS = {"a": Feed(name="a", kind="check", title="A", component="dynamodb", interval=60)}


def sealed_store(engine: Engine) -> tuple[HistoryStore, SealedPeriods]:
    history = HistoryStore(engine, FEEDS)
    history.create_schema()
    sealed = SealedPeriods(engine)
    sealed.create_schema()
    history.on_add.append(sealed.forget)
    return history, sealed


def totals(component: str, day: date, **kw: Any) -> DayTotals:
    return DayTotals(
        component=component, day=day, **{"down": 0, "observed": 0, "degraded": 0, **kw}
    )


def test_sealed_hours_round_trip_with_their_marker(engine: Engine) -> None:
    _, sealed = sealed_store(engine)
    hours = [T0, T0 + timedelta(hours=1)]
    h = Hour(observed=3000, down=60, degraded=120, ok=40, warning=2, critical=1, unknown=3)
    # The second hour had no data for any component: sealed all the same (its marker).
    sealed.seal_hours(hours, {"dynamodb": {T0: h, T0 - timedelta(hours=1): h}})
    have, figures = sealed.hours(since=T0 - timedelta(hours=1), until=T0 + timedelta(hours=3))
    assert have == set(hours)  # the hour before was not asked to be sealed: not sealed
    assert figures == {"dynamodb": {T0: h}}
    assert sealed.hours(since=T0 + timedelta(hours=2), until=T0 + timedelta(hours=3)) == (
        set(),
        {},
    )


def test_sealed_days_keep_their_maintenance(engine: Engine) -> None:
    _, sealed = sealed_store(engine)
    kept = totals("cdn", DAY, down=60, observed=86_400, degraded=0, ok=1440, maintenance=1800.0)
    sealed.seal_days([DAY, DAY + timedelta(days=1)], [kept])
    have, found = sealed.days(since=DAY - timedelta(days=3), until=DAY + timedelta(days=3))
    assert have == {DAY, DAY + timedelta(days=1)}
    assert found == [kept]


def test_late_results_unseal_the_hour_and_day_they_fall_in(engine: Engine) -> None:
    history, sealed = sealed_store(engine)
    sealed.seal_hours([T0, T0 + timedelta(hours=1)], {})
    sealed.seal_days([DAY, DAY - timedelta(days=1)], [])
    late = Result(
        name="a",
        kind="check",
        status=Status.CRITICAL,
        reason="stored after an outage",
        observed_at=T0 + timedelta(minutes=10),
    )
    history.add([late])
    have_hours, _ = sealed.hours(since=T0, until=T0 + timedelta(hours=2))
    have_days, _ = sealed.days(since=DAY - timedelta(days=1), until=DAY + timedelta(days=1))
    assert have_hours == {T0 + timedelta(hours=1)}  # only the hour it fell in
    assert have_days == {DAY - timedelta(days=1)}


def test_two_replicas_sealing_one_period_at_once_is_harmless(
    engine: Engine, make_engine: Callable[[], Engine]
) -> None:
    _, first = sealed_store(engine)
    second = SealedPeriods(make_engine())
    row = totals("cdn", DAY, observed=600, ok=10)
    done = race(partial(first.seal_days, [DAY], [row]), partial(second.seal_days, [DAY], [row]))
    assert done == [None, None], done
    assert first.days(since=DAY, until=DAY + timedelta(days=1)) == ({DAY}, [row])


def test_sealing_new_hours_drops_those_no_page_reads_any_more(engine: Engine) -> None:
    _, sealed = sealed_store(engine)
    old = T0 - timedelta(days=3)
    sealed.seal_hours([old], {"dynamodb": {old: Hour(observed=60, ok=1)}})
    sealed.seal_hours([T0], {})
    have, figures = sealed.hours(since=old, until=T0 + timedelta(hours=1))
    assert (have, figures) == ({T0}, {})
