"""Faults under a running Watchtower and image API: the moto server, Redis and PostgreSQL each
stopped and started again on the same port, one at a time, while the scheduler runs every 2 s.

The stack is the sandbox (`watchtower demo`'s: moto, redis-server, PostgreSQL, the image API as
its own process behind its gateway, traffic and simulated telemetry); Watchtower runs as a real
`watchtower serve` process whose history and runbook executions are in that same PostgreSQL
(a database of its own), whose job locks are in that same Redis, and whose checks read moto.
So each outage hits Watchtower and the image API at once, as it would in production.

For each outage the tests show:
* the results say so: `unknown` with a reason naming the source, or `critical`/`warning` where
  that is the truth (the probe cannot store an image while moto is down; the image API's cache
  is failing while Redis is down);
* nothing crashes: Watchtower and the image API stay up, `/healthz` answers 200;
* nothing is lost: every probe run is in the history (even those made while PostgreSQL was
  down: they are stored once it is back), every slot of the schedule has its result, and the
  runbook executions are all still there;
* everything recovers by itself once the server is back: every result is ok again.

moto keeps its state in memory, so a restarted moto is empty. After starting it again, the test
does what an operator would: `python -m image_core bootstrap` (table and bucket) and the
sandbox's resources (function, distribution, log group) again. Redis is a cache and a lock: it
comes back empty, and nothing needs re-creating. PostgreSQL comes back with its data directory.

The tests of this module share one stack and run in order; each starts from, and leaves, a
stack whose results are all ok.
"""

from __future__ import annotations

import json
import math
import secrets
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from tests.conftest import IN_CI
from tests.watchtower.alerts.test_alerting import am_alert, payload
from tests.watchtower.production.processes import Replica, end, spawn, start_again, wait_for
from watchtower.checks import registry
from watchtower.sandbox import demo, resources
from watchtower.sandbox import stack as sandbox
from watchtower.sandbox.gateway import image_api_environment
from watchtower.sandbox.servers import LOOPBACK, ServerUnavailable, free_port
from watchtower.store import HistoryStore, engine_for

pytestmark = pytest.mark.slow

INTERVAL = 2  # seconds: every probe and check
WINDOW = 10  # seconds: every check's window, so that a recovery shows within seconds
SEEN = 20.0  # the most an outage may take to show in the results
RECOVERED = 60.0  # the most the results may take to be all ok again after a restart
PROBE = "upload_get"
CHECKS = sorted(registry())
HOOK_TOKEN = secrets.token_urlsafe(40)  # start-up refuses weak tokens


@dataclass
class Running:
    stack: sandbox.Stack
    watchtower: Replica
    database: str
    operator: dict[str, str]
    executions: dict[str, str]  # id -> status, of the runs that ended: none may change or go

    def latest(self) -> dict[str, dict[str, Any]]:
        results = self.watchtower.json("/api/v1/results", self.operator)["results"]
        return {r["name"]: r for r in results}

    def since(self, name: str, moment: float) -> dict[str, Any] | None:
        """The latest result of `name`, if it was observed after `moment`."""
        result = self.latest().get(name)
        return result if result is not None and _at(result) > moment else None

    def all_ok(self, since: float = 0.0) -> dict[str, dict[str, Any]] | None:
        """The latest results, when every one is ok and was observed after `since`."""
        latest = self.latest()
        if set(latest) != {PROBE, *CHECKS}:
            return None
        fresh = all(_at(r) > since for r in latest.values())
        return latest if fresh and all(r["status"] == "ok" for r in latest.values()) else None

    def wait_all_ok(self, after: str) -> float:
        """Seconds until every result observed from now on is ok; fails naming those not ok."""
        started = time.monotonic()
        since = time.time()
        try:
            wait_for(f"every result ok {after}", lambda: self.all_ok(since), RECOVERED, every=0.5)
        except AssertionError as exc:
            not_ok = {
                n: (r["status"], r["reason"])
                for n, r in self.latest().items()
                if r["status"] != "ok"
            }
            raise AssertionError(f"{exc}: {not_ok}\n{self.watchtower.tail()}") from None
        return time.monotonic() - started

    def alive(self) -> None:
        """Nothing crashed: Watchtower and the image API run and answer."""
        assert self.watchtower.process.poll() is None, self.watchtower.tail()
        assert self.watchtower.get("/healthz").status == 200
        answer = self.watchtower.http.request("GET", f"{self.stack.image_api_url}/healthz")
        assert answer.status == 200, answer.data

    def ended(self, run_id: str) -> str | None:
        """The run's status once it has ended."""
        status = self.runs().get(run_id)
        return status if status in ("succeeded", "failed", "cancelled") else None

    def runs(self) -> dict[str, str]:
        answer = self.watchtower.json("/api/v1/executions?limit=500", self.operator)
        return {e["id"]: e["status"] for e in answer["executions"]}

    def notify(self, fingerprint: str) -> Any:
        """Alertmanager's notification that the upload probe fails (its route runs automatic)."""
        body = payload(am_alert("ImageUploadProbeFailing", fingerprint=fingerprint, probe=PROBE))
        return self.watchtower.post(
            "/api/v1/alerts",
            body=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {HOOK_TOKEN}", "Content-Type": "application/json"},
        )

    def history(self, since: float) -> list[Any]:
        store = HistoryStore(engine_for(self.database))
        try:
            return store.history(since=datetime.fromtimestamp(since, UTC))
        finally:
            store.engine.dispose()

    def nothing_lost(self, since: float, until: float) -> None:
        """Every probe run is in the history, and every slot of [since, until) has its results."""

        def stored_all_runs() -> bool:
            runs = sum(_samples(self.watchtower, "watchtower_probe_runs_total", PROBE).values())
            return runs == len([r for r in self.history(0) if r.name == PROBE])

        wait_for("every probe run to be in the history", stored_all_runs, 10)
        first_tries = [r for r in self.history(since) if r.attempt == 1]
        per_slot = Counter(
            (r.name, math.floor(r.observed_at.timestamp() / INTERVAL)) for r in first_tries
        )
        slots = range(math.floor(since / INTERVAL) + 1, math.floor(until / INTERVAL))
        missing = [
            (n, s * INTERVAL) for n in (PROBE, *CHECKS) for s in slots if not per_slot[(n, s)]
        ]
        assert missing == [], f"slots with no result: {missing}"

    def executions_kept(self) -> None:
        runs = self.runs()
        assert {i: runs.get(i) for i in self.executions} == self.executions


def _at(result: dict[str, Any]) -> float:
    return datetime.fromisoformat(result["observed_at"]).timestamp()


def _samples(replica: Replica, metric: str, name: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for line in replica.get("/metrics").data.decode().splitlines():
        if line.startswith(metric + "{") and f'"{name}"' in line:
            labels, value = line.rsplit(" ", 1)
            found[labels] = float(value)
    return found


def _required(what: str) -> None:
    if IN_CI:
        pytest.fail(f"CI must provide {what}")
    pytest.skip(f"{what} is not installed")


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    log_dir = tmp_path_factory.mktemp("faults")
    try:
        stack = sandbox.start(
            log=lambda line: None,
            traffic_rate=2.0,
            telemetry_interval=1.0,
            metrics_flush_seconds=1,
            flag_poll_seconds=1.0,
        )
    except ServerUnavailable as exc:
        _required(str(exc))
    watchtower: Replica | None = None
    try:
        if stack.redis is None or stack.postgres is None:
            _required("redis-server and PostgreSQL")
        assert stack.postgres is not None
        server = f"postgresql://postgres@{LOOPBACK}:{stack.postgres.port}"
        with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE watchtower")
        database = f"{server}/watchtower"
        port = free_port()
        token = demo.new_token()
        settings = demo.settings_environment(
            stack, port=port, token=token, workdir=log_dir, environ={}
        )
        settings.update(
            {name: str(WINDOW) for name in settings if name.endswith("_WINDOW_SECONDS")}
        )
        settings.update(
            {
                "WATCHTOWER_DATABASE_URL": database,
                "WATCHTOWER_PROBE_INTERVAL": str(INTERVAL),
                "WATCHTOWER_CHECKS_INTERVAL": str(INTERVAL),
                "WATCHTOWER_CHECKS_TICK": "1",
                "WATCHTOWER_SCHEDULER_JITTER": "1",
                "WATCHTOWER_PROBE_TIMEOUT_SECONDS": "2",
                "WATCHTOWER_WEBHOOK_TOKEN": HOOK_TOKEN,
            }
        )
        watchtower = spawn("watchtower", settings, log_dir, port=port)
        watchtower.wait_healthy()
        operator = {"Authorization": f"Bearer {token}"}
        running = Running(stack, watchtower, database, operator, {})
        running.wait_all_ok("at start-up")
        # A run that ended before any outage: it must outlive all of them, unchanged.
        started = watchtower.post(
            "/runbooks/dynamodb-throttling/executions", form={"dry_run": "1"}, headers=operator
        )
        assert started.status == 303, started.data[:300]
        run_id = started.headers["Location"].rsplit("/", 1)[1]
        status = wait_for(
            "the dry run to end",
            lambda: running.ended(run_id),
            30,
        )
        running.executions[run_id] = status
        yield running
    finally:
        if watchtower is not None:
            watchtower.stop()
        stack.stop()


def test_the_moto_server_stopped_and_started_again(running: Running) -> None:
    stack = running.stack
    running.wait_all_ok("before the outage")
    generation = stack.image_api.generation
    before = time.time()
    command = end(stack.moto)
    stopped = time.time()
    try:

        def down() -> dict[str, dict[str, Any]] | None:
            latest = running.latest()
            fresh = {n: r for n, r in latest.items() if _at(r) > stopped}
            return fresh if set(fresh) == {PROBE, *CHECKS} else None

        seen = wait_for("every result to run without moto", down, SEEN, every=0.5)
        # The probe could not store its image: critical is the truth.
        assert seen[PROBE]["status"] == "critical", seen[PROBE]
        assert "upload failed" in seen[PROBE]["reason"], seen[PROBE]
        for name in CHECKS:
            result = seen[name]
            assert result["status"] == "unknown", result
            assert any(s in result["reason"] for s in ("CloudWatch", "Lambda", "Logs")), result
        # An alert during the outage still starts its runbook; its steps fail, saying why.
        started = running.notify("f00000000000000a")
        assert started.status == 202, started.data
        run_id = json.loads(started.data)["started"][0]["execution"]
        ended = wait_for(
            "the run started during the outage to end",
            lambda: running.ended(run_id),
            30,
        )
        running.executions[run_id] = ended
        running.alive()
    finally:
        start_again(stack.moto, command)
    # moto came back empty: re-create what the image API and the sandbox need, as an operator would.
    stack.moto.configure_lambda_without_docker()
    bootstrap = subprocess.run(
        [sys.executable, "-m", "image_core", "bootstrap"],
        env=image_api_environment(stack.image_api.environment),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bootstrap.returncode == 0, bootstrap.stderr
    resources.create(
        stack.moto.url,
        function=stack.resources.function,
        table=stack.table,
        bucket=stack.bucket,
        dual_write=True,
        region=stack.region,
    )
    restarted = time.time()
    took = running.wait_all_ok("after moto came back")
    print(f"\nmoto: outage seen, every result ok {took:.1f} s after it came back")
    running.alive()
    assert stack.image_api.generation == generation  # the same image API process throughout
    running.nothing_lost(before, restarted + took)
    running.executions_kept()


def test_redis_stopped_and_started_again(running: Running) -> None:
    stack = running.stack
    assert stack.redis is not None
    running.wait_all_ok("before the outage")
    before = time.time()
    command = end(stack.redis)
    stopped = time.time()
    try:

        def cache_failing() -> dict[str, Any] | None:
            result = running.since("gallery_cache", stopped)
            return result if result is not None and result["status"] != "ok" else None

        # The image API's gallery cache is down: its lookups go to DynamoDB, and say so.
        seen = wait_for("the gallery cache check to see Redis fail", cache_failing, SEEN)
        assert seen["status"] in ("warning", "critical"), seen
        assert "Redis" in seen["reason"], seen
        # Watchtower's own job locks are down too: it runs its jobs without them (one replica
        # here), and the image API still serves, from DynamoDB: the probe passes.
        probe = wait_for("a probe run without Redis", lambda: running.since(PROBE, stopped), SEEN)
        assert probe["status"] == "ok", probe
        started = running.notify("f00000000000000b")
        assert started.status == 202, started.data
        run_id = json.loads(started.data)["started"][0]["execution"]
        ended = wait_for(
            "the run started during the outage to end",
            lambda: running.ended(run_id),
            30,
        )
        running.executions[run_id] = ended
        wait_for("a few slots without Redis", lambda: time.time() > stopped + 3 * INTERVAL, SEEN)
        assert "job lock unavailable" in running.watchtower.log.read_text(errors="replace")
        running.alive()
    finally:
        start_again(stack.redis, command)
    restarted = time.time()
    took = running.wait_all_ok("after Redis came back")
    print(f"\nRedis: outage seen, every result ok {took:.1f} s after it came back")
    running.alive()
    running.nothing_lost(before, restarted + took)
    running.executions_kept()


def test_postgresql_stopped_and_started_again(running: Running) -> None:
    stack = running.stack
    assert stack.postgres is not None
    running.wait_all_ok("before the outage")
    before = time.time()
    command = end(stack.postgres)
    stopped = time.time()
    try:

        def legacy_unknown() -> bool:
            status = _samples(running.watchtower, "watchtower_check_status", "postgres_inserts")
            last = _samples(
                running.watchtower, "watchtower_last_run_timestamp_seconds", "postgres_inserts"
            )
            return (
                status.get('watchtower_check_status{check="postgres_inserts",status="unknown"}')
                == 1
                and max(last.values(), default=0) > stopped
            )

        # The history store is down: /metrics still tells, from memory.
        wait_for("the legacy inserts check to go unknown", legacy_unknown, SEEN)
        ready = running.watchtower.get("/readyz")
        assert ready.status == 503, ready.data
        assert "history store unreachable" in json.loads(ready.data)["problems"][0]
        # An alert cannot be stored: 503, and Alertmanager keeps it and sends it again.
        refused = running.notify("f00000000000000c")
        assert refused.status == 503, refused.data
        wait_for(
            "a few slots without PostgreSQL", lambda: time.time() > stopped + 3 * INTERVAL, SEEN
        )
        running.alive()
    finally:
        start_again(stack.postgres, command)
    restarted = time.time()
    retried = running.notify("f00000000000000c")  # Alertmanager's retry
    assert retried.status == 202, retried.data
    run_id = json.loads(retried.data)["started"][0]["execution"]
    took = running.wait_all_ok("after PostgreSQL came back")
    print(f"\nPostgreSQL: outage seen, every result ok {took:.1f} s after it came back")
    running.alive()
    running.nothing_lost(before, restarted + took)
    # What Watchtower saw while its own store was down reached the history once it was back.
    outage = [r for r in running.history(stopped) if r.observed_at.timestamp() < restarted]
    seen = {r.name: r for r in outage if r.observed_at.timestamp() > stopped + INTERVAL}
    assert set(seen) == {PROBE, *CHECKS}, sorted(seen)
    legacy = seen["postgres_inserts"]
    assert legacy.status.value == "unknown" and "PostgreSQL" in legacy.reason, legacy
    # The image API's dual-writes to PostgreSQL failed meanwhile: critical is the truth; its
    # uploads (DynamoDB first) did not, and the probe passed.
    assert seen["dual_write"].status.value == "critical", seen["dual_write"]
    assert seen[PROBE].status.value == "ok", seen[PROBE]
    running.executions_kept()
    retried_run = wait_for(
        "the retried alert's run to end",
        lambda: running.ended(run_id),
        30,
    )
    assert retried_run
