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
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.watchtower.production.processes import (
    CHECKS,
    PROBE,
    Running,
    end,
    observed,
    sandboxed,
    start_again,
    wait_for,
)
from watchtower.sandbox import resources
from watchtower.sandbox.gateway import image_api_environment

pytestmark = [pytest.mark.slow, pytest.mark.timed]

INTERVAL = 2  # seconds: every probe and check
SEEN = 20.0  # the most an outage may take to show in the results


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    settings = {"WATCHTOWER_SCHEDULER_JITTER": "1", "WATCHTOWER_PROBE_TIMEOUT_SECONDS": "2"}
    log_dir = tmp_path_factory.mktemp("faults")
    with sandboxed(log_dir, interval=INTERVAL, settings=settings) as running:
        # A run that ended before any outage: it must outlive all of them, unchanged.
        started = running.watchtower.post(
            "/runbooks/dynamodb-throttling/executions",
            form={"dry_run": "1"},
            headers=running.operator,
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
            fresh = {n: r for n, r in latest.items() if observed(r) > stopped}
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
        alias=stack.resources.alias,  # the sandbox serves its function through an alias
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
        # The history store is down: /metrics still tells, from memory.
        wait_for(
            "the legacy inserts check to go unknown", lambda: running.legacy_unknown(stopped), SEEN
        )
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
