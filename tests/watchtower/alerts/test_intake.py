"""The deferred intake (WATCHTOWER_WEBHOOK_DEFERRED): a notification is answered 202 after one
write, and its alerts are recorded and its runs started from the stored notification by the
intake; dispatching twice (two replicas, a retry) starts nothing twice."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from tests.watchtower.alerts.test_alerting import am_alert, payload
from tests.watchtower.production.processes import fresh_database
from watchtower.alerting import dispatch, parse_notification
from watchtower.errors import StoreUnavailable
from watchtower.runbook.alert_records import Arrived
from watchtower.runbook.intake import SWITCH_INTERVAL, GroupWriter, Intake
from watchtower.runbook.tables import notifications
from watchtower.runtime import Watchtower
from watchtower.sandbox.servers import PostgresServer
from watchtower.web import create_app

TOKEN = "hook-secret-61bd"
HOOK = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def watchtower(make_watchtower: Callable[..., Watchtower]) -> Watchtower:
    return make_watchtower(
        clock=time.time,
        webhook_token=TOKEN,
        webhook_deferred=True,
        webhook_intake="web",  # dispatched in this process: no scheduler here
        anonymous_role=None,
        secret_key="k" * 32,
    )


@pytest.fixture
def client(watchtower: Watchtower) -> FlaskClient:
    return create_app(watchtower).test_client()


def post(client: FlaskClient, body: bytes) -> dict[str, object]:
    answer = client.post("/api/v1/alerts", data=body, headers=HOOK, content_type="application/json")
    assert answer.status_code == 202, answer.json
    result: dict[str, object] = answer.json
    return result


def another_intake(wt: Watchtower, **kw: Any) -> Intake:
    """An intake over `wt`'s stores, engine and routes, as the composition root builds one (a
    second replica's, say); `kw` overrides."""
    args: dict[str, Any] = {
        "store": wt.runbooks.store,
        "alerts": wt.store,
        "engine": wt.runbooks,
        "routes": wt.settings.routes,
        "clock": wt.now,
    }
    return Intake(**{**args, **kw})


def test_a_notification_is_answered_after_one_write_and_dispatched_from_the_store(
    client: FlaskClient, watchtower: Watchtower
) -> None:
    body = json.dumps(
        payload(
            am_alert("ImageUploadProbeFailing", fingerprint="aa", probe="upload_get"),
            am_alert("SomethingElse", fingerprint="bb"),
        )
    ).encode()
    answer = post(client, body)
    assert answer["deferred"] is True and answer["received"] == 2
    # The intake thread dispatches it; wait until it is marked done.
    query = select(func.count()).where(notifications.c.processed_at.is_(None))

    def pending() -> int:
        with watchtower.runbooks.store.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    deadline = time.monotonic() + 10
    while pending() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pending() == 0
    (run,) = watchtower.runbooks.list()
    assert (run.runbook_id, run.alert_fingerprint) == ("image-upload-failures", "aa")
    assert {a.fingerprint for a in watchtower.store.firing_alerts()} == {"aa", "bb"}


def test_duplicates_and_a_second_intake_start_nothing_twice(
    watchtower: Watchtower, client: FlaskClient
) -> None:
    body = json.dumps(
        payload(am_alert("ImageUploadProbeFailing", fingerprint="cc", probe="upload_get"))
    ).encode()
    intake: Intake = client.application.extensions["watchtower.webhook.intake"]
    intake.stop()  # nobody dispatches meanwhile: the notifications wait in the store
    for _ in range(20):
        post(client, body)
    other = another_intake(watchtower)
    assert watchtower.runbooks.list() == []
    assert other.drain() == 20
    assert other.drain() == 0
    assert len(watchtower.runbooks.list()) == 1


def test_a_notification_whose_runbook_fails_to_start_is_taken_again_later(
    watchtower: Watchtower, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    intake: Intake = client.application.extensions["watchtower.webhook.intake"]
    intake.stop()
    post(
        client,
        json.dumps(
            payload(am_alert("ImageUploadProbeFailing", fingerprint="dd", probe="upload_get"))
        ).encode(),
    )
    real = watchtower.runbooks.start_from_alert
    real_many = watchtower.runbooks.start_from_alerts

    def broken(*args: object, **kwargs: object) -> str | None:
        raise RuntimeError("the engine is down")

    # The intake starts a pass's runs together (start_from_alerts), the webhook one by one.
    monkeypatch.setattr(watchtower.runbooks, "start_from_alert", broken)
    monkeypatch.setattr(watchtower.runbooks, "start_from_alerts", broken)
    retry = another_intake(watchtower, stale=timedelta(0))
    assert retry.drain() == 0  # not done: still pending
    monkeypatch.setattr(watchtower.runbooks, "start_from_alert", real)
    monkeypatch.setattr(watchtower.runbooks, "start_from_alerts", real_many)
    assert retry.drain() == 1
    assert len(watchtower.runbooks.list()) == 1


def test_retention_never_drops_a_notification_not_dispatched_yet(watchtower: Watchtower) -> None:
    store = watchtower.runbooks.store
    now = watchtower.now()
    body = json.dumps(payload(am_alert("SomethingElse", fingerprint="ee"))).encode().decode()
    waiting = store.keep_notification(
        body, received_at=now, receiver="w", status="firing", alerts=1, keep=3, dispatched=False
    )
    for _ in range(10):
        store.keep_notification(
            "{}", received_at=now, receiver="w", status="firing", alerts=0, keep=3
        )
    assert store.notification(waiting).id == waiting  # kept: the intake has not seen it
    intake = another_intake(watchtower)
    assert intake.drain() == 1
    assert watchtower.store.alert("ee") is not None


def test_notifications_arriving_together_are_stored_together_each_under_its_own_id(
    watchtower: Watchtower,
) -> None:
    """The group commit: 16 threads keep a notification each at once; every one gets the id
    its own body is stored under, and they took fewer transactions than notifications."""
    store = watchtower.runbooks.store
    batches: list[int] = []

    def write_many(batch: list[Arrived]) -> list[int]:
        batches.append(len(batch))
        time.sleep(0.02)  # a slow database: the others arrive while this batch is written
        return store.keep_notifications(batch, dispatched=False)

    writer = GroupWriter(write_many)
    barrier = threading.Barrier(16)
    kept: dict[str, int] = {}

    def one(n: int) -> None:
        body = json.dumps({"n": n})
        barrier.wait()
        kept[body] = writer.write(
            Arrived(
                body=body, received_at=watchtower.now(), receiver="r", status="firing", alerts=1
            )
        )

    threads = [threading.Thread(target=one, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(kept) == 16 and len(set(kept.values())) == 16
    for body, number in kept.items():
        assert store.notification(number).body == body
    assert sum(batches) == 16 and len(batches) < 16


def test_a_failed_group_write_is_every_writers_error_and_the_next_batch_still_goes(
    watchtower: Watchtower,
) -> None:
    store = watchtower.runbooks.store
    failing = threading.Event()
    failing.set()

    def write_many(batch: list[Arrived]) -> list[int]:
        if failing.is_set():
            time.sleep(0.02)
            raise StoreUnavailable("runbook store: could not store a notification (test)")
        return store.keep_notifications(batch, dispatched=False)

    writer = GroupWriter(write_many)
    arrived = Arrived(
        body="{}", received_at=watchtower.now(), receiver="r", status="firing", alerts=1
    )
    errors: list[BaseException] = []

    def one() -> None:
        try:
            writer.write(arrived)
        except StoreUnavailable as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(errors) == 6
    failing.clear()
    assert store.notification(writer.write(arrived)).body == "{}"


def test_the_intake_shortens_the_gil_switch_interval_while_it_runs_and_puts_it_back(
    client: FlaskClient,
) -> None:
    """Its database waits would otherwise each cost up to a whole 5 ms interval behind busy
    request threads (docs/performance.md)."""
    before = sys.getswitchinterval()
    assert before > SWITCH_INTERVAL  # Python's default, 5 ms
    intake: Intake = client.application.extensions["watchtower.webhook.intake"]
    post(client, json.dumps(payload(am_alert("SomethingElse", fingerprint="ff"))).encode())
    assert sys.getswitchinterval() == SWITCH_INTERVAL
    intake.stop()
    assert sys.getswitchinterval() == before


@pytest.fixture
def pg_database(postgres_server: PostgresServer) -> Iterator[str]:
    """A whole database, not a schema: NOTIFY reaches every listener of a database."""
    with fresh_database(postgres_server) as url:
        yield url


def _web_and_listening_scheduler(
    url: str, make_watchtower: Callable[..., Watchtower]
) -> tuple[Watchtower, Watchtower]:
    """A web replica that only keeps notifications, and a scheduler whose intake polls once a
    minute only, LISTENing already: whatever it dispatches sooner, a NOTIFY woke it for."""
    settings = {
        "database_url": url,
        "clock": time.time,
        "webhook_token": TOKEN,
        "webhook_deferred": True,
        "anonymous_role": None,
        "secret_key": "k" * 32,
    }
    web = make_watchtower(**settings)
    scheduler = make_watchtower(**settings)
    assert web.intake is not None and scheduler.intake is not None
    assert not scheduler.intake.here  # the default: the scheduler's process dispatches
    scheduler.intake.idle_seconds = 60.0
    scheduler.intake.start()
    # Wait until it listens: a notification kept before would wait for the poll.
    deadline = time.monotonic() + 30
    while not _listening(url) and time.monotonic() < deadline:
        time.sleep(0.05)
    return web, scheduler


def test_the_scheduler_side_intake_is_woken_by_notify_from_another_process(
    pg_database: str, make_watchtower: Callable[..., Watchtower]
) -> None:
    """WEBHOOK_INTAKE=scheduler: the web replica only keeps the notification; the scheduler's
    intake, polling only once a minute here, dispatches it within seconds: the keep's NOTIFY
    woke it."""
    web, scheduler = _web_and_listening_scheduler(pg_database, make_watchtower)
    client = create_app(web).test_client()
    body = payload(am_alert("ImageUploadProbeFailing", fingerprint="ab12", probe="upload_get"))
    post(client, json.dumps(body).encode())
    assert web.intake is not None and web.intake._thread is None  # the web dispatches nothing
    deadline = time.monotonic() + 20
    while not scheduler.runbooks.list() and time.monotonic() < deadline:
        time.sleep(0.02)
    (run,) = scheduler.runbooks.list()
    assert run.alert_fingerprint == "ab12"


def test_a_notification_kept_while_a_pass_runs_wakes_the_next_one(
    pg_database: str, make_watchtower: Callable[..., Watchtower], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A notification kept while a pass runs is dispatched next, not at the minute's poll (by
    the pass that follows a pass that dispatched something, or by its NOTIFY). The first pass
    is held open (its last write waits) while the second notification is kept."""
    web, scheduler = _web_and_listening_scheduler(pg_database, make_watchtower)
    assert scheduler.intake is not None
    store = scheduler.intake.store
    done = store.notifications_done
    in_pass, release = threading.Event(), threading.Event()

    def held_open(numbers: Iterable[int], *, at: datetime) -> None:
        in_pass.set()
        release.wait(30)
        done(numbers, at=at)

    monkeypatch.setattr(store, "notifications_done", held_open)
    client = create_app(web).test_client()
    post(client, json.dumps(payload(am_alert("SomethingElse", fingerprint="a1"))).encode())
    assert in_pass.wait(20)
    post(client, json.dumps(payload(am_alert("SomethingElse", fingerprint="b2"))).encode())
    release.set()
    left = (
        select(func.count())
        .select_from(notifications)
        .where(notifications.c.processed_at.is_(None))
    )
    deadline = time.monotonic() + 20  # a lost wake-up would wait for the 60 s poll
    with store.engine.connect() as conn:
        while conn.execute(left).scalar_one() and time.monotonic() < deadline:
            conn.rollback()
            time.sleep(0.05)
        assert conn.execute(select(func.count()).select_from(notifications)).scalar_one() == 2
        assert conn.execute(left).scalar_one() == 0


def _listening(url: str) -> bool:
    """Some session of this database has LISTENed (its last statement)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        found = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND query LIKE 'LISTEN %'"
        ).fetchone()
    return bool(found is not None and found[0] > 0)


def test_without_a_wake_up_the_intake_polls(watchtower: Watchtower) -> None:
    """A notification kept with nobody woken (SQLite: no NOTIFY; or a lost one) is dispatched
    by the next poll."""
    intake = another_intake(watchtower, idle_seconds=0.05, here=False)
    intake.start()
    try:
        body = json.dumps(payload(am_alert("SomethingElse", fingerprint="c0ffee")))
        watchtower.runbooks.store.keep_notification(
            body,
            received_at=watchtower.now(),
            receiver="w",
            status="firing",
            alerts=1,
            dispatched=False,
        )
        deadline = time.monotonic() + 20
        while watchtower.store.alert("c0ffee") is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert watchtower.store.alert("c0ffee") is not None
    finally:
        intake.stop()


def _episode_mix() -> list[bytes]:
    """One fingerprint's episode fires, resolves, fires again (a new startsAt) and is
    delivered twice more; another alert's run refused (its label does not fit); an unrouted
    alert."""
    first, second = "2026-11-27T10:00:00Z", "2026-11-27T11:00:00Z"
    routed = {"fingerprint": "e1", "probe": "upload_get"}
    return [
        json.dumps(payload(*body)).encode()
        for body in (
            [am_alert("ImageUploadProbeFailing", starts_at=first, **routed)],
            [
                am_alert(
                    "ImageUploadProbeFailing",
                    status="resolved",
                    starts_at=first,
                    ends_at="2026-11-27T10:05:00Z",
                    **routed,
                )
            ],
            [am_alert("ImageUploadProbeFailing", starts_at=second, **routed)],
            [am_alert("ImageUploadProbeFailing", starts_at=second, **routed)],
            [am_alert("ImageUploadProbeFailing", fingerprint="e2", bucket="Not A Bucket!")],
            [am_alert("SomethingElse", fingerprint="e3")],
            [am_alert("ImageUploadProbeFailing", starts_at=second, **routed)],
        )
    ]


def test_a_pass_dispatched_together_ends_as_the_webhook_one_by_one(
    make_watchtower: Callable[..., Watchtower],
) -> None:
    """dispatch_many (the intake, a pass at once) against dispatch (the synchronous webhook,
    notification after notification): the same runs, in the same states, the same alerts."""
    ends: list[object] = []
    for together in (True, False):
        wt = make_watchtower(clock=time.time, webhook_deferred=together, webhook_intake="web")
        bodies = _episode_mix()
        if together:
            for body in bodies:
                wt.runbooks.store.keep_notification(
                    body.decode(),
                    received_at=wt.now(),
                    receiver="w",
                    status="firing",
                    alerts=1,
                    dispatched=False,
                )
            assert wt.intake is not None and wt.intake.drain() == len(bodies)
        else:
            for body in bodies:
                dispatch(
                    parse_notification(body),
                    routes=wt.settings.routes,
                    store=wt.store,
                    runbooks=wt.runbooks,
                    now=wt.now(),
                )
        runs = sorted(
            (r.alert_fingerprint, r.status.value, r.resolved_at is not None)
            for r in wt.runbooks.list()
        )
        alerts = sorted((a.fingerprint, a.status, a.starts_at) for a in wt.store.firing_alerts())
        ends.append((runs, alerts))
    assert ends[0] == ends[1]
    runs, _ = ends[0]  # type: ignore[misc]
    # e1's first episode cancelled by its resolution, its second pending; e2's labels refused.
    assert runs == [("e1", "cancelled", True), ("e1", "pending", False), ("e2", "failed", False)]


def test_two_intakes_dispatching_the_same_deliveries_at_once_start_one_run_per_episode(
    pg_database: str, make_watchtower: Callable[..., Watchtower]
) -> None:
    """Two replicas' intakes on one PostgreSQL, each taking notifications the other has
    claimed (stale 0): 30 episodes delivered five times each start 30 runs."""
    replicas = [make_watchtower(database_url=pg_database, clock=time.time) for _ in range(2)]
    store = replicas[0].runbooks.store
    for _delivery in range(5):
        for n in range(30):
            alert = am_alert("ImageUploadProbeFailing", fingerprint=f"f{n:02d}", probe="upload_get")
            store.keep_notification(
                json.dumps(payload(alert)),
                received_at=replicas[0].now(),
                receiver="w",
                status="firing",
                alerts=1,
                dispatched=False,
            )
    intakes = [another_intake(wt, stale=timedelta(0)) for wt in replicas]
    threads = [threading.Thread(target=intake.drain) for intake in intakes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    while any(intake.drain() for intake in intakes):
        pass
    runs = replicas[1].runbooks.list(100)
    assert sorted(r.alert_fingerprint for r in runs) == [f"f{n:02d}" for n in range(30)]


@pytest.mark.parametrize(
    ("place", "scheduled"), [("scheduler", True), ("process", False), ("web", False)]
)
def test_the_scheduler_runs_the_intake_only_where_the_setting_puts_it(
    make_watchtower: Callable[..., Watchtower], place: str, scheduled: bool
) -> None:
    wt = make_watchtower(webhook_deferred=True, webhook_intake=place)
    assert wt.intake is not None and wt.intake.here == (place == "web")
    jobs = {job.id for job in wt.scheduler()._scheduler.get_jobs()}
    assert ("intake" in jobs) == scheduled


def test_the_intake_process_is_healthy_while_its_intake_runs(watchtower: Watchtower) -> None:
    """`watchtower intake`'s /healthz: 503 once the intake has stopped, so a container health
    check restarts a process whose intake died."""
    from watchtower.scheduler_main import create_intake_app

    assert watchtower.intake is not None
    client = create_intake_app(watchtower).test_client()
    assert client.get("/healthz").status_code == 503  # not started yet
    watchtower.intake.start()
    assert client.get("/healthz").status_code == 200
    watchtower.intake.stop()
    answer = client.get("/healthz")
    assert answer.status_code == 503 and answer.json == {"status": "intake stopped"}
