"""Several Watchtower replicas, as real `watchtower serve` processes, against ONE PostgreSQL and
ONE Redis: a notification delivered to both starts one execution, an approval given on one is
seen on the other, and a replica killed mid-run loses nothing.

Every test gets a database of its own (CREATE DATABASE on the session's PostgreSQL) and an empty
Redis. The runbook is a drill made for these tests: an approval, then a read-only SQL query on a
table the test can lock, so that the read is "in flight" for as long as the test wants.
Intervals are seconds, and the runbook lease is 3 s (WATCHTOWER_RUNBOOK_LEASE_SECONDS), so a
replica that dies is noticed quickly.
"""

from __future__ import annotations

import json
import math
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from image_core.app import Components
from tests.watchtower.alerts.test_alerting import am_alert, payload
from tests.watchtower.production.processes import Replica, fresh_database, replicas, spawn, wait_for
from watchtower.runbook.store import RunbookStore
from watchtower.sandbox.servers import PostgresServer
from watchtower.store import HistoryStore, engine_for

pytestmark = [pytest.mark.slow, pytest.mark.timed]

INTERVAL = 2  # seconds: every probe and check
LEASE = 3  # seconds without a heartbeat before a replica's runs are taken over
WAIT = 30.0  # the most any wait here lasts
# Start-up refuses weak secrets: random ones, shared by every replica of this run.
HOOK_TOKEN, OLIVE_TOKEN, VIC_TOKEN = (secrets.token_urlsafe(40) for _ in range(3))
SECRET_KEY = secrets.token_hex(32)
HOOK = {"Authorization": f"Bearer {HOOK_TOKEN}", "Content-Type": "application/json"}
OLIVE = {"Authorization": f"Bearer {OLIVE_TOKEN}"}  # an operator
VIEWER = {"Authorization": f"Bearer {VIC_TOKEN}"}

DRILL = """---
id: replica-drill
title: Replica drill
summary: An approval, then a read that waits while the test holds a lock on its table.
triggers:
  - {alertname: ReplicaDrill}
---
# Replica drill

```step
id: go
title: Go ahead
approval: Go ahead with the drill?
```

```step
id: read
title: Read the gate
query:
  sql: 'SELECT count(*) AS value FROM drill_gate'
retries: 2
timeout: 40
```
"""
ROUTES = """routes:
  - matchers: ['alertname = ReplicaDrill']
    runbook: replica-drill
    mode: automatic
"""


@pytest.fixture
def image_api(components: Components, serve_api: Callable[[Components], str]) -> str:
    return serve_api(components)


@pytest.fixture
def database(postgres_server: PostgresServer) -> Iterator[str]:
    with fresh_database(postgres_server) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE drill_gate (n integer)")
        yield url


@pytest.fixture
def settings(
    database: str, redis_url: str, moto: Any, image_api: str, tmp_path: Path
) -> dict[str, str]:
    books = tmp_path / "runbooks"
    books.mkdir()
    (books / "replica-drill.md").write_text(DRILL)
    routes = tmp_path / "routes.yml"
    routes.write_text(ROUTES)
    return {
        "WATCHTOWER_DATABASE_URL": database,
        "WATCHTOWER_REDIS_URL": redis_url,
        "WATCHTOWER_IMAGE_API_URL": image_api,
        "AWS_ENDPOINT_URL": moto.url,
        # The drill's SQL step reads the same database (its `drill_gate` table).
        "WATCHTOWER_LEGACY_DATABASE_URL": database,
        "WATCHTOWER_PROBE_INTERVAL": str(INTERVAL),
        "WATCHTOWER_CHECKS_INTERVAL": str(INTERVAL),
        "WATCHTOWER_CHECKS_TICK": "1",
        "WATCHTOWER_SCHEDULER_JITTER": "1",
        "WATCHTOWER_PROBE_TIMEOUT_SECONDS": "2",
        "WATCHTOWER_RUNBOOK_LEASE_SECONDS": str(LEASE),
        "WATCHTOWER_RUNBOOKS_DIR": str(books),
        "WATCHTOWER_ROUTES_FILE": str(routes),
        "WATCHTOWER_WEBHOOK_TOKEN": HOOK_TOKEN,
        "WATCHTOWER_USERS": f"olive:operator:{OLIVE_TOKEN},vic:viewer:{VIC_TOKEN}",
        "WATCHTOWER_ANONYMOUS_ROLE": "none",
        "WATCHTOWER_SECRET_KEY": SECRET_KEY,  # the same on every replica
    }


def notification(fingerprint: str) -> bytes:
    return json.dumps(payload(am_alert("ReplicaDrill", fingerprint=fingerprint))).encode()


def deliver_to_all(targets: list[Replica], body: bytes) -> list[dict[str, Any]]:
    """The same notification to every replica at once, as each Alertmanager of a cluster sends."""
    answers: list[Any] = [None] * len(targets)
    barrier = threading.Barrier(len(targets))

    def send(n: int) -> None:
        barrier.wait(timeout=10)
        answers[n] = targets[n].post("/api/v1/alerts", body=body, headers=HOOK)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(len(targets))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    for target, answer in zip(targets, answers, strict=True):
        assert answer is not None and answer.status == 202, (target.name, answer and answer.data)
    return [json.loads(a.data) for a in answers]


def executions(replica: Replica) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = replica.json("/api/v1/executions", VIEWER)["executions"]
    return runs


def execution(replica: Replica, execution_id: str) -> dict[str, Any]:
    (run,) = [r for r in executions(replica) if r["id"] == execution_id]
    return run


def ended(replica: Replica, execution_id: str) -> dict[str, Any] | None:
    run = execution(replica, execution_id)
    return run if run["status"] in ("succeeded", "failed", "cancelled") else None


def step(run: dict[str, Any], step_id: str) -> dict[str, Any]:
    (found,) = [s for s in run["steps"] if s["id"] == step_id]
    return found


def approve(replica: Replica, execution_id: str) -> Any:
    return replica.post(
        f"/executions/{execution_id}/approve", form={"comment": "go"}, headers=OLIVE
    )


def test_a_notification_delivered_to_every_replica_starts_one_execution(
    settings: dict[str, str], tmp_path: Path
) -> None:
    with replicas(["a", "b"], settings, tmp_path) as (a, b):
        fingerprints = [f"{n:016x}" for n in range(1, 6)]
        for fingerprint in fingerprints:
            answers = deliver_to_all([a, b], notification(fingerprint))
            started = [s["execution"] for answer in answers for s in answer["started"]]
            assert len(started) == 2, answers  # both routed it to the drill ...
            assert len([e for e in started if e]) == 1, answers  # ... and one of them started it
        # Alertmanager repeats a notification while the alert fires: nothing new starts.
        again = deliver_to_all([a, b], notification(fingerprints[0]))
        assert [s["execution"] for answer in again for s in answer["started"]] == [None, None]

        for replica in (a, b):
            runs = executions(replica)
            assert sorted(r["alert"]["fingerprint"] for r in runs) == fingerprints, replica.name

        def all_waiting() -> list[dict[str, Any]] | None:
            runs = executions(b)
            return runs if all(r["status"] == "waiting_for_approval" for r in runs) else None

        runs = wait_for("every run to reach its approval step", all_waiting, WAIT)
        assert [step(run, "go")["status"] for run in runs] == ["waiting"] * len(fingerprints)


def test_an_approval_given_on_one_replica_is_seen_on_the_other(
    settings: dict[str, str], tmp_path: Path
) -> None:
    with replicas(["a", "b"], settings, tmp_path) as (a, b):
        (answer,) = [
            s["execution"]
            for answer in deliver_to_all([a, b], notification("00000000000000aa"))
            for s in answer["started"]
            if s["execution"]
        ]
        run_id: str = answer
        wait_for(
            "the run to wait for approval on b",
            lambda: execution(b, run_id)["status"] == "waiting_for_approval",
            WAIT,
        )

        approved = approve(a, run_id)
        assert approved.status == 303, approved.data[:500]

        seen = execution(b, run_id)  # at once: both read the same PostgreSQL
        decision = step(seen, "go")["approval"]
        assert (decision["decision"], decision["decided_by"], decision["comment"]) == (
            "approved",
            "olive",
            "go",
        )
        # b refuses to approve again: it knows the step is decided.
        twice = approve(b, run_id)
        assert twice.status == 409, twice.data[:500]
        assert b"not waiting for approval" in twice.data
        page = b.get(f"/executions/{run_id}", VIEWER)
        assert page.status == 200 and b"olive" in page.data

        done = wait_for(
            "the approved run to finish (on either replica)",
            lambda: ended(b, run_id),
            WAIT,
        )
        assert done["status"] == "succeeded", done
        assert [s["status"] for s in done["steps"]] == ["succeeded", "succeeded"], done


def test_a_replica_killed_mid_run_loses_neither_its_run_nor_its_jobs(
    settings: dict[str, str], database: str, tmp_path: Path
) -> None:
    gate = psycopg.connect(database)  # holds drill_gate locked: the drill's read waits on it
    store = RunbookStore(engine_for(database))
    a = spawn("a", settings, tmp_path)
    b: Replica | None = None
    try:
        a.wait_healthy()
        gate.execute("LOCK TABLE drill_gate IN ACCESS EXCLUSIVE MODE")
        # Only `a` runs yet, so the run is a's: its worker takes every run it is told about.
        (answer,) = deliver_to_all([a], notification("00000000000000bb"))
        run_id = answer["started"][0]["execution"]
        wait_for(
            "the run to wait",
            lambda: execution(a, run_id)["status"] == "waiting_for_approval",
            WAIT,
        )
        assert approve(a, run_id).status == 303
        wait_for(
            "a to be running the read",
            lambda: step(execution(a, run_id), "read")["status"] == "running",
            WAIT,
        )
        assert store.record(run_id).owner is not None

        b = spawn("b", settings, tmp_path)
        b.wait_healthy()
        # Both now share the schedule: b takes the slots a did not (or meets a's, and skips).
        wait_for(
            "b to take part in the schedule",
            lambda: sum(b.job_runs("probe:upload_get").values()) >= 1,
            WAIT,
        )
        assert step(execution(b, run_id), "read")["status"] == "running"

        a.kill()
        killed = time.time()
        gate.rollback()  # the read may now finish; a is gone, so only b can finish it

        done = wait_for(
            "b to take the run over and finish it",
            lambda: ended(b, run_id),
            WAIT,
        )
        taken_over = time.time()
        assert done["status"] == "succeeded", done
        read = step(done, "read")
        assert read["status"] == "succeeded" and read["attempts"] >= 2, read
        resumed = [e for e in store.audit_entries(run_id) if e.action == "resumed"]
        assert [(e.actor, e.step_id) for e in resumed] == [("watchtower", "read")]
        # Taken over only once a's lease ran out, never while a could still have been alive.
        assert resumed[0].at.timestamp() >= killed + LEASE - 1, (resumed[0].at, killed)
        assert store.record(run_id).owner is None

        # b runs every job alone from the next slot on: keep it going for a few more slots.
        wait_for("a few slots after the kill", lambda: time.time() > killed + 4 * INTERVAL, WAIT)
        stopped = time.time()
        b.stop()
    finally:
        gate.close()
        store.engine.dispose()
        a.stop()
        if b is not None:
            b.stop()

    history = HistoryStore(engine_for(database))
    try:
        first_tries = [
            r
            for r in history.history(since=datetime.fromtimestamp(killed - 10 * INTERVAL, UTC))
            if r.attempt == 1
        ]
    finally:
        history.engine.dispose()
    per_slot = Counter(
        (r.name, math.floor(r.observed_at.timestamp() / INTERVAL)) for r in first_tries
    )
    names = {r.name for r in first_tries}
    assert "upload_get" in names and len(names) > 1, names
    # The slot a died in may be lost with it (a held its lock); every later one ran exactly once.
    after = range(math.floor(killed / INTERVAL) + 1, math.floor(stopped / INTERVAL))
    assert len(after) >= 3, (killed, taken_over, stopped)
    missing = [(name, s) for name in sorted(names) for s in after if per_slot[(name, s)] == 0]
    assert missing == [], f"slots with no result after the kill: {missing}\n{b.tail() if b else ''}"
    twice = [key for key, n in per_slot.items() if n > 1]
    assert twice == [], f"slots run twice: {twice}"
