"""Closed hours and days are summed once for the whole fleet (watchtower/sealed.py): a new
replica's page reads them sealed and shows the same figures; results stored late (after a
store outage) unseal what they touch, and the next replica's page counts them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from tests.watchtower.web.conftest import T0
from tests.watchtower.web.history import check
from watchtower.model import Status
from watchtower.runtime import Watchtower
from watchtower.sealed import SealedPeriods
from watchtower.status import floor_hour
from watchtower.web import create_app
from watchtower.web.sealing import seal_closed


def component(body: Any, cid: str) -> Any:
    return next(c for c in body["components"] if c["id"] == cid)


def test_a_new_replica_reads_sealed_periods_and_late_results_unseal_them(
    make_watchtower: Callable[..., Watchtower],
) -> None:
    wt = make_watchtower()
    # 34 hours of readings, one a minute, critical for the first 30 minutes.
    start = floor_hour(T0) - timedelta(hours=34)
    readings = [start + timedelta(minutes=m) for m in range(34 * 60)]
    wt.store.add(
        check(
            "dynamodb_throttling",
            at,
            Status.CRITICAL if at < start + timedelta(minutes=30) else Status.OK,
            "reading",
        )
        for at in readings
    )
    first = component(create_app(wt).test_client().get("/api/v1/status").json, "dynamodb")
    sealed = SealedPeriods(wt.store.engine)
    hours, _ = sealed.hours(since=floor_hour(T0) - timedelta(hours=23), until=floor_hour(T0))
    assert len(hours) == 23  # the first render sealed the closed hours ...
    days, _ = sealed.days(since=T0.date() - timedelta(days=89), until=T0.date())
    assert len(days) == 89  # ... and the closed days
    again = component(create_app(wt).test_client().get("/api/v1/status").json, "dynamodb")
    assert again == first  # a new replica: the same figures, read sealed

    # A backlog stored late (after a store outage): another source of the same component,
    # critical for a whole hour 16 hours ago, in a closed hour of yesterday already sealed.
    late_hour = floor_hour(T0) - timedelta(hours=16)
    wt.store.add(
        check("dynamodb_writes", late_hour + timedelta(minutes=m), Status.CRITICAL, "late")
        for m in range(60)
    )
    later = component(create_app(wt).test_client().get("/api/v1/status").json, "dynamodb")
    assert later["uptime"]["24h"] < first["uptime"]["24h"]
    assert later["days"][-2]["down_seconds"] > first["days"][-2]["down_seconds"]


def test_the_sealing_job_seals_ahead_of_the_page_and_serving_schedules_it(
    make_watchtower: Callable[..., Watchtower],
) -> None:
    """The scheduler's job seals what a first render would (watchtower/web/sealing.py): the
    fleet's first page reads every closed period sealed, with the figures it would have summed."""
    wt = make_watchtower()
    start = floor_hour(T0) - timedelta(hours=30)
    wt.store.add(
        check("dynamodb_throttling", start + timedelta(minutes=m), Status.OK, "reading")
        for m in range(30 * 60)
    )
    sealed = SealedPeriods(wt.store.engine)
    since_hour, since_day = floor_hour(T0) - timedelta(hours=23), T0.date() - timedelta(days=89)
    assert sealed.hours(since=since_hour, until=floor_hour(T0))[0] == set()

    seal_closed(wt)

    hours, figures = sealed.hours(since=since_hour, until=floor_hour(T0))
    assert len(hours) == 23 and figures["dynamodb"]
    assert len(sealed.days(since=since_day, until=T0.date())[0]) == 89
    page = component(create_app(wt).test_client().get("/api/v1/status").json, "dynamodb")
    summed = make_watchtower()  # the same readings, summed by its first render
    summed.store.add(
        check("dynamodb_throttling", start + timedelta(minutes=m), Status.OK, "reading")
        for m in range(30 * 60)
    )
    assert page == component(
        create_app(summed).test_client().get("/api/v1/status").json, "dynamodb"
    )

    scheduler = wt.scheduler()
    create_app(wt, scheduler=scheduler)  # `watchtower serve` and the demo
    assert "seal" in scheduler.names()
