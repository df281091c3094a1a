"""The page outlives the history store: the last good view, frozen, under a banner; never a 503."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import Flask

from tests.watchtower.web.conftest import T0
from tests.watchtower.web.history import check
from watchtower.errors import StoreUnavailable
from watchtower.model import Status
from watchtower.runtime import Watchtower
from watchtower.store import HistoryStore
from watchtower.web import create_app


class Outage(HistoryStore):
    """The real store, every read failing as the translated store fails while `down`."""

    down = False

    def __getattribute__(self, name: str) -> Any:
        attr = super().__getattribute__(name)
        reads = ("newest", "status_counts", "problems", "history", "firing_alerts")
        if name in reads and super().__getattribute__("down"):
            raise StoreUnavailable("the history store failed: OperationalError: refused")
        return attr


class Clock:
    def __init__(self) -> None:
        self.at = T0

    def __call__(self) -> float:
        return self.at.timestamp()


def outage_app(make_watchtower: Callable[..., Watchtower]) -> tuple[Watchtower, Flask, Clock]:
    clock = Clock()
    wt = make_watchtower(clock=clock)
    wt.store = Outage(wt.store.engine)
    return wt, create_app(wt), clock


def test_the_store_down_serves_the_last_good_page_frozen_then_recovers(
    make_watchtower: Callable[..., Watchtower],
) -> None:
    wt, app, clock = outage_app(make_watchtower)
    store = wt.store
    assert isinstance(store, Outage)
    wt.store.add([check("dynamodb_throttling", T0 - timedelta(seconds=20), Status.CRITICAL, "x")])
    client = app.test_client()
    good = client.get("/api/v1/status").json
    assert good["frozen"] is None and good["watchtower"]["state"] == "ok"
    assert "Data frozen" not in client.get("/").get_data(as_text=True)

    store.down = True
    clock.at = T0 + timedelta(minutes=3)
    answer = client.get("/")
    assert answer.status_code == 200
    page = answer.get_data(as_text=True)
    assert "Frozen since 2026-11-27 12:30:00 UTC (3 min ago): these are not current states." in page
    assert "Watchtower itself is <strong>degraded</strong>" in page
    assert "Updated <time" not in page  # never the frozen data as current
    assert "Watchtower degraded: its history store is unreachable" in page
    body = client.get("/api/v1/status")
    assert body.status_code == 200
    frozen = body.json
    assert frozen["watchtower"]["state"] == "degraded"
    assert frozen["frozen"]["data_at"] == T0.isoformat()
    assert frozen["frozen"]["unreachable_since"] == clock.at.isoformat()
    assert frozen["served_at"] == clock.at.isoformat()
    assert frozen["overall"]["state"] == "stale"
    dynamodb = next(c for c in frozen["components"] if c["id"] == "dynamodb")
    assert dynamodb["state"] == "critical"  # what it said then, under the frozen flag

    store.down = False
    clock.at += timedelta(seconds=10)  # past the retry pause
    back = client.get("/api/v1/status").json
    assert back["frozen"] is None and back["watchtower"]["state"] == "ok"
    assert back["generated_at"] == clock.at.isoformat()
    assert "Frozen since" not in client.get("/").get_data(as_text=True)


def test_the_store_down_since_start_says_no_data_not_a_503(
    make_watchtower: Callable[..., Watchtower],
) -> None:
    wt, app, _ = outage_app(make_watchtower)
    store = wt.store
    assert isinstance(store, Outage)
    store.down = True
    answer = app.test_client().get("/")
    assert answer.status_code == 200
    assert "No data: this replica has not read its history store since it started." in (
        answer.get_data(as_text=True)
    )
    body = app.test_client().get("/api/v1/status")
    assert body.status_code == 200
    assert body.json["frozen"]["data_at"] is None
    assert {c["state"] for c in body.json["components"]} == {"no_data"}
