"""Sources frozen, not killed: moto, Redis and PostgreSQL each SIGSTOPped in turn under a running
Watchtower (a real `watchtower serve` over the sandbox stack), then SIGCONTed.

A frozen server accepts connections and never answers, so only deadlines end the wait. For each
freeze the results name the source and the wait within one interval plus the deadline (plus the
scheduler's jitter and a second of slack), the status page answers 200 throughout, and every
result is ok again once the server runs again.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.watchtower.production import test_faults as faults
from tests.watchtower.production.processes import spawn, wait_for
from watchtower.sandbox import demo
from watchtower.sandbox import stack as sandbox
from watchtower.sandbox.servers import LOOPBACK, Server, ServerUnavailable, free_port

pytestmark = pytest.mark.slow

INTERVAL = 6  # seconds: every probe and check
CHECK_DEADLINE = 3
PROBE_DEADLINE = 4
JITTER = 1
ON_TIME = INTERVAL + max(CHECK_DEADLINE, PROBE_DEADLINE) + JITTER + 2  # the bound asserted
PROBE = faults.PROBE
CHECKS = faults.CHECKS


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[faults.Running]:
    log_dir = tmp_path_factory.mktemp("frozen")
    try:
        stack = sandbox.start(
            log=lambda line: None,
            traffic_rate=2.0,
            telemetry_interval=1.0,
            metrics_flush_seconds=1,
            flag_poll_seconds=1.0,
        )
    except ServerUnavailable as exc:
        faults._required(str(exc))
    watchtower = None
    try:
        if stack.redis is None or stack.postgres is None:
            faults._required("redis-server and PostgreSQL")
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
            {name: str(faults.WINDOW) for name in settings if name.endswith("_WINDOW_SECONDS")}
        )
        settings.update(
            {
                "WATCHTOWER_DATABASE_URL": database,
                "WATCHTOWER_PROBE_INTERVAL": str(INTERVAL),
                "WATCHTOWER_CHECKS_INTERVAL": str(INTERVAL),
                "WATCHTOWER_CHECKS_TICK": "1",
                "WATCHTOWER_SCHEDULER_JITTER": str(JITTER),
                "WATCHTOWER_PROBE_TIMEOUT_SECONDS": "1",
                "WATCHTOWER_CHECKS_DEADLINE_SECONDS": str(CHECK_DEADLINE),
                "WATCHTOWER_PROBE_DEADLINE_SECONDS": str(PROBE_DEADLINE),
                "WATCHTOWER_WEBHOOK_TOKEN": faults.HOOK_TOKEN,
            }
        )
        watchtower = spawn("watchtower", settings, log_dir, port=port)
        watchtower.wait_healthy()
        running = faults.Running(
            stack, watchtower, database, {"Authorization": f"Bearer {token}"}, {}
        )
        running.wait_all_ok("at start-up")
        yield running
    finally:
        if watchtower is not None:
            watchtower.stop()
        stack.stop()


def tree(pid: int) -> list[int]:
    """`pid` and its descendants (PostgreSQL serves each connection from a child process)."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        for child in children:
            found += tree(int(child))
    return found


class Frozen:
    """SIGSTOP a server's processes (all of them); SIGCONT them on leaving, whatever happened."""

    def __init__(self, server: Server) -> None:
        assert server.process is not None and server.process.poll() is None
        self.pid = server.process.pid
        self.stopped: list[int] = []

    def __enter__(self) -> float:
        os.kill(self.pid, signal.SIGSTOP)  # first: it forks no new child meanwhile
        self.stopped = tree(self.pid)
        for pid in self.stopped[1:]:
            os.kill(pid, signal.SIGSTOP)
        return time.time()

    def __exit__(self, *exc: Any) -> None:
        for pid in self.stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def page_answers(running: faults.Running) -> None:
    for path in ("/", "/api/v1/status"):
        started = time.monotonic()
        answer = running.watchtower.get(path, running.operator)
        assert answer.status == 200, (path, answer.status, answer.data[:300])
        assert time.monotonic() - started < 8, path


def named_since(running: faults.Running, stopped: float, name: str, words: str) -> Any:
    def found() -> Any:
        result = running.since(name, stopped + 0.5)
        return result if result is not None and words in result["reason"] else None

    return wait_for(f"{name} to say '{words}'", found, ON_TIME + 10, every=0.5)


def test_moto_frozen_gives_named_results_on_time(running: faults.Running) -> None:
    running.wait_all_ok("before the freeze")
    with Frozen(running.stack.moto) as stopped:
        result = named_since(
            running,
            stopped,
            "dynamodb_throttling",
            f"CloudWatch (us-east-1) did not answer within {CHECK_DEADLINE} s",
        )
        assert result["status"] == "unknown", result
        took = faults._at(result) - stopped
        assert took <= ON_TIME, (took, result)
        probe = wait_for(
            "a probe run during the freeze",
            lambda: running.since(PROBE, stopped + 0.5),
            ON_TIME + 10,
        )
        assert probe["status"] == "critical", probe
        assert "within" in probe["reason"], probe  # the wait, named
        page_answers(running)
    took = running.wait_all_ok("after moto ran again")
    print(f"\nmoto frozen: named in {faults._at(result) - stopped:.1f} s; ok {took:.1f} s after")
    running.alive()


def test_redis_frozen_loses_no_slot(running: faults.Running) -> None:
    assert running.stack.redis is not None
    running.wait_all_ok("before the freeze")
    with Frozen(running.stack.redis) as stopped:
        # The job locks wait one short socket timeout (for all due jobs at once), then do without
        # Redis for a while; every source still reports on time.
        def every_source() -> dict[str, Any] | None:
            latest = running.latest()
            fresh = {n: r for n, r in latest.items() if faults._at(r) > stopped + 0.5}
            return fresh if set(fresh) >= {PROBE, *CHECKS} else None

        fresh = wait_for("a result from every source", every_source, ON_TIME + 10, every=0.5)
        latest_first = min(faults._at(r) for r in fresh.values()) - stopped
        assert latest_first <= ON_TIME, fresh
        page_answers(running)
    running.wait_all_ok("after Redis ran again")
    running.alive()


def test_postgresql_frozen_is_named_and_the_page_stays_up(running: faults.Running) -> None:
    assert running.stack.postgres is not None
    running.wait_all_ok("before the freeze")
    with Frozen(running.stack.postgres) as stopped:

        def legacy_unknown() -> bool:
            status = faults._samples(
                running.watchtower, "watchtower_check_status", "postgres_inserts"
            )
            last = faults._samples(
                running.watchtower, "watchtower_last_run_timestamp_seconds", "postgres_inserts"
            )
            return (
                status.get('watchtower_check_status{check="postgres_inserts",status="unknown"}')
                == 1
                and max(last.values(), default=0) > stopped
            )

        wait_for("the legacy inserts check to go unknown", legacy_unknown, ON_TIME + 10)
        assert time.time() - stopped <= ON_TIME + 10
        # The history store is frozen too: the page serves its last good view, frozen.
        page_answers(running)
        body = running.watchtower.json("/api/v1/status", running.operator)
        assert body["watchtower"]["state"] == "degraded", body["watchtower"]
        assert body["frozen"] is not None
    took = running.wait_all_ok("after PostgreSQL ran again")
    print(f"\nPostgreSQL frozen: every result ok {took:.1f} s after it ran again")
    page = running.watchtower.json("/api/v1/status", running.operator)
    assert page["frozen"] is None or wait_for(
        "the page to be current again",
        lambda: running.watchtower.json("/api/v1/status", running.operator)["frozen"] is None,
        20,
    )
    running.alive()
