"""Slot locks: each job once per interval, however many replicas; no pile-up after a pause."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from watchtower.scheduler import LocalJobLock, RedisJobLock, Scheduler, next_slot_start, slot


def test_slots_are_aligned_on_the_epoch() -> None:
    assert slot(119.9, 60) == 1 and slot(120.0, 60) == 2
    assert next_slot_start(100.0, 60).timestamp() == 120.5


def test_local_lock_takes_each_slot_once() -> None:
    lock = LocalJobLock()
    assert lock.acquire("p", interval=60, now=120.0)
    assert not lock.acquire("p", interval=60, now=179.0)
    assert lock.acquire("other", interval=60, now=179.0)
    assert lock.acquire("p", interval=60, now=180.0)


def test_redis_lock_is_shared_between_replicas(redis_url: str) -> None:
    a_client, b_client = redis.Redis.from_url(redis_url), redis.Redis.from_url(redis_url)
    a = RedisJobLock(a_client, owner="a")
    b = RedisJobLock(b_client, owner="b")
    try:
        assert a.acquire("probe:upload_get", interval=60, now=600.0)
        assert not b.acquire("probe:upload_get", interval=60, now=630.0)
        assert b.acquire("probe:upload_get", interval=60, now=660.0)
        assert not a.acquire("probe:upload_get", interval=60, now=661.0)
        ttl = a_client.ttl("watchtower:job:probe:upload_get:11")
        assert 0 < ttl <= 120  # the key goes away by itself
    finally:
        a_client.close()
        b_client.close()


def test_redis_down_runs_the_job_rather_than_not_monitoring() -> None:
    from watchtower.sandbox.servers import free_port

    client = redis.Redis(port=free_port(), socket_connect_timeout=0.2, socket_timeout=0.2)
    try:
        assert RedisJobLock(client, owner="a").acquire("j", interval=60, now=0.0)
    finally:
        client.close()


@pytest.mark.slow
def test_scheduler_runs_at_start_up_then_once_per_slot() -> None:
    runs: list[float] = []
    outcomes: list[tuple[str, str]] = []
    done = threading.Event()

    def job() -> None:
        runs.append(time.time())
        if len(runs) >= 3:
            done.set()

    scheduler = Scheduler(LocalJobLock(), jitter=0, on_outcome=lambda j, o: outcomes.append((j, o)))
    scheduler.add("tick", 1, job)
    scheduler.start()
    try:
        assert done.wait(10)
    finally:
        scheduler.shutdown()
    slots = [slot(t, 1) for t in runs]
    assert len(slots) == len(set(slots)), "two runs in one slot"
    assert ("tick", "ran") in outcomes
