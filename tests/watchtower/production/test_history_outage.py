"""The history store down loses no result: results wait in memory and go in with the first write
that succeeds. A write refused while the store answers (the rows are at fault) is not retried.

tests/production/test_faults.py shows the same with a real PostgreSQL stopped and started again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import OperationalError

from watchtower.model import Result, Status
from watchtower.runtime import Watchtower
from watchtower.store import HistoryStore

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


class Outage(HistoryStore):
    """The real store, with its database unreachable while `down` (as psycopg says it)."""

    down = False
    refuse_rows = False

    def _unreachable(self) -> None:
        if self.down:
            raise OperationalError("INSERT INTO results", {}, ConnectionRefusedError(111))

    def add(self, items: Iterable[Result]) -> None:
        self._unreachable()
        if self.refuse_rows:
            raise ValueError("a row the database refuses")
        super().add(items)

    def ping(self) -> None:
        self._unreachable()
        super().ping()


@pytest.fixture
def watchtower(make_watchtower: Callable[..., Watchtower]) -> Watchtower:
    wt = make_watchtower(clock=time.time)
    wt.store = Outage(wt.store.engine)
    return wt


def result(n: int) -> Result:
    return Result(
        name="upload_get",
        kind="probe",
        status=Status.CRITICAL,
        reason=f"run {n}",
        observed_at=T0 + timedelta(seconds=n),
    )


def stored(wt: Watchtower) -> list[str]:
    return [r.reason for r in wt.store.history(since=T0)]


def test_results_seen_while_the_store_is_down_are_stored_once_it_is_back(
    watchtower: Watchtower,
) -> None:
    store = watchtower.store
    assert isinstance(store, Outage)
    watchtower.record([result(1)])
    store.down = True
    watchtower.record([result(2)])
    watchtower.record([result(3), result(4)])
    store.down = False
    assert stored(watchtower) == ["run 1"]
    watchtower.record([result(5)])
    assert stored(watchtower) == [f"run {n}" for n in range(1, 6)]
    # /metrics saw each at once, whatever the store did.
    registry = watchtower.metrics.registry
    runs = registry.get_sample_value(
        "watchtower_probe_runs_total", {"probe": "upload_get", "status": "critical"}
    )
    assert runs == 5


def test_rows_the_store_refuses_are_dropped_not_retried_forever(watchtower: Watchtower) -> None:
    store = watchtower.store
    assert isinstance(store, Outage)
    store.refuse_rows = True
    watchtower.record([result(1)])
    store.refuse_rows = False
    watchtower.record([result(2)])
    assert stored(watchtower) == ["run 2"]
