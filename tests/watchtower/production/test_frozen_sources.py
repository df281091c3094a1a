"""Sources frozen, not killed: moto, Redis and PostgreSQL each SIGSTOPped in turn under a running
Watchtower (a real `watchtower serve` over the sandbox stack), then SIGCONTed. PostgreSQL's is
test_frozen_postgres.py, over a sandbox of its own (so the two files run side by side).

A frozen server accepts connections and never answers, so only deadlines end the wait. For each
freeze the results name the source and the wait within one interval plus the deadline (plus the
scheduler's jitter and a second of slack), the status page answers 200 throughout, and every
result is ok again once the server runs again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.watchtower.production.processes import (
    CHECKS,
    PROBE,
    Frozen,
    Running,
    observed,
    sandboxed,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.timed]

INTERVAL = 6  # seconds: every probe and check
CHECK_DEADLINE = 3
PROBE_DEADLINE = 4
JITTER = 1
ON_TIME = INTERVAL + max(CHECK_DEADLINE, PROBE_DEADLINE) + JITTER + 2  # the bound asserted


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    settings = {
        "WATCHTOWER_SCHEDULER_JITTER": str(JITTER),
        "WATCHTOWER_PROBE_TIMEOUT_SECONDS": "1",
        "WATCHTOWER_CHECKS_DEADLINE_SECONDS": str(CHECK_DEADLINE),
        "WATCHTOWER_PROBE_DEADLINE_SECONDS": str(PROBE_DEADLINE),
    }
    with sandboxed(tmp_path_factory.mktemp("frozen"), interval=INTERVAL, settings=settings) as r:
        yield r


def page_answers(running: Running) -> None:
    for path in ("/", "/api/v1/status"):
        started = time.monotonic()
        answer = running.watchtower.get(path, running.operator)
        assert answer.status == 200, (path, answer.status, answer.data[:300])
        assert time.monotonic() - started < 8, path


def named_since(running: Running, stopped: float, name: str, words: str) -> Any:
    def found() -> Any:
        result = running.since(name, stopped + 0.5)
        return result if result is not None and words in result["reason"] else None

    return wait_for(f"{name} to say '{words}'", found, ON_TIME + 10, every=0.5)


def test_moto_frozen_gives_named_results_on_time(running: Running) -> None:
    running.wait_all_ok("before the freeze")
    with Frozen(running.stack.moto) as stopped:
        result = named_since(
            running,
            stopped,
            "dynamodb_throttling",
            f"CloudWatch (us-east-1) did not answer within {CHECK_DEADLINE} s",
        )
        assert result["status"] == "unknown", result
        took = observed(result) - stopped
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
    print(f"\nmoto frozen: named in {observed(result) - stopped:.1f} s; ok {took:.1f} s after")
    running.alive()


def test_redis_frozen_loses_no_slot(running: Running) -> None:
    assert running.stack.redis is not None
    running.wait_all_ok("before the freeze")
    with Frozen(running.stack.redis) as stopped:
        # The job locks wait one short socket timeout (for all due jobs at once), then do without
        # Redis for a while; every source still reports on time.
        def every_source() -> dict[str, Any] | None:
            latest = running.latest()
            fresh = {n: r for n, r in latest.items() if observed(r) > stopped + 0.5}
            return fresh if set(fresh) >= {PROBE, *CHECKS} else None

        fresh = wait_for("a result from every source", every_source, ON_TIME + 10, every=0.5)
        latest_first = min(observed(r) for r in fresh.values()) - stopped
        assert latest_first <= ON_TIME, fresh
        page_answers(running)
    running.wait_all_ok("after Redis ran again")
    running.alive()
