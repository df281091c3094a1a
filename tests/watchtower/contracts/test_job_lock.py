"""The job lock's contract, run over its in-process and Redis forms (`holders`).

A job's interval is cut into slots aligned on the epoch; whoever takes a slot first runs the job
in it, every other holder (a thread of this replica, or another replica on the same Redis) is
refused until the next slot. The lock has no release: a slot's claim ends with the slot (the
in-process form remembers the last slots taken, Redis lets the key expire after two intervals).
The last tests are about one form each: what only Redis has (expiry, owners, being down).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.watchtower.contracts.concurrent import race
from watchtower.scheduler import JobLock, LocalJobLock, RedisJobLock

Holders = Callable[[], JobLock]


@pytest.fixture(params=["in-process", "redis"])
def holders(request: Any) -> Iterator[Holders]:
    """Make a holder of one shared lock: the one in-process lock, or a replica on one Redis."""
    if request.param == "in-process":
        shared = LocalJobLock()
        yield lambda: shared
        return
    url = request.getfixturevalue("redis_url")
    clients: list[redis.Redis] = []

    def holder() -> JobLock:
        clients.append(redis.Redis.from_url(url))
        return RedisJobLock(clients[-1], owner=f"replica-{len(clients)}")

    yield holder
    for client in clients:
        client.close()


def test_the_first_holder_takes_the_slot_and_everyone_is_refused_to_its_end(
    holders: Holders,
) -> None:
    a, b = holders(), holders()
    assert a.acquire("probe:upload_get", interval=60, now=600.0)
    for now in (600.0, 630.0, 659.999):
        assert not b.acquire("probe:upload_get", interval=60, now=now)
        assert not a.acquire("probe:upload_get", interval=60, now=now)  # not twice by its taker


def test_the_next_slot_goes_to_whoever_comes_first(holders: Holders) -> None:
    a, b = holders(), holders()
    assert a.acquire("j", interval=60, now=600.0)
    assert b.acquire("j", interval=60, now=660.0)
    assert not a.acquire("j", interval=60, now=661.0)
    assert a.acquire("j", interval=60, now=900.0)  # slots skipped while paused are no obstacle


def test_slots_are_aligned_on_the_epoch_not_on_the_first_run(holders: Holders) -> None:
    a, b = holders(), holders()
    assert a.acquire("j", interval=60, now=119.9)
    assert b.acquire("j", interval=60, now=120.0)  # a tenth of a second later, the next slot


def test_jobs_do_not_contend_with_each_other(holders: Holders) -> None:
    a, b = holders(), holders()
    assert a.acquire("probe:upload_get", interval=60, now=600.0)
    assert b.acquire("check:latency", interval=60, now=600.0)
    assert b.acquire("probe:upload_get:retry", interval=60, now=600.0)


def test_a_taken_slot_stays_taken_when_the_clock_steps_back(holders: Holders) -> None:
    a, b = holders(), holders()
    assert a.acquire("j", interval=60, now=600.0)
    assert a.acquire("j", interval=60, now=660.0)
    assert not b.acquire("j", interval=60, now=659.0)  # an NTP step back into the slot before
    assert not a.acquire("j", interval=60, now=600.0)


def test_each_slot_goes_to_exactly_one_of_many_racing_holders(holders: Holders) -> None:
    racers = [holders() for _ in range(6)]
    for n in range(10):
        now = 600.0 + 60 * n + n  # anywhere in the slot
        won = race(*(partial(r.acquire, "j", interval=60, now=now) for r in racers))
        assert won.count(True) == 1 and won.count(False) == 5, won


# -- one form each --------------------------------------------------------------------------------


def test_the_in_process_lock_takes_no_other_replica_into_account() -> None:
    assert LocalJobLock().acquire("j", interval=60, now=600.0)
    assert LocalJobLock().acquire("j", interval=60, now=600.0)


def test_a_redis_slot_is_held_by_its_taker_and_expires_by_itself(redis_url: str) -> None:
    a_client, b_client = redis.Redis.from_url(redis_url), redis.Redis.from_url(redis_url)
    a, b = RedisJobLock(a_client, owner="a"), RedisJobLock(b_client, owner="b")
    key = "watchtower:job:j:10"
    try:
        assert a.acquire("j", interval=60, now=600.0)
        ttl = a_client.pttl(key)
        assert 60_000 < ttl <= 120_000  # outlives its slot, then goes away by itself
        assert not b.acquire("j", interval=60, now=610.0)
        assert a_client.get(key) == b"a"  # a refused holder neither takes it over ...
        assert a_client.pttl(key) <= ttl  # ... nor prolongs it
        now = time.time()
        assert a.acquire("short", interval=1, now=now)
        deadline = time.monotonic() + 5
        while a_client.exists(f"watchtower:job:short:{int(now)}") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert b.acquire("short", interval=1, now=now)  # expired: the slot's key is gone
    finally:
        a_client.close()
        b_client.close()


def test_redis_locks_with_different_prefixes_do_not_contend(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        assert RedisJobLock(client, owner="a", prefix="staging:job").acquire(
            "j", interval=60, now=600.0
        )
        assert RedisJobLock(client, owner="b").acquire("j", interval=60, now=600.0)
    finally:
        client.close()


def test_redis_down_runs_the_job_rather_than_not_monitoring() -> None:
    from watchtower.sandbox.servers import free_port

    client = redis.Redis(
        port=free_port(),
        socket_connect_timeout=0.2,
        socket_timeout=0.2,
        retry=Retry(NoBackoff(), 0),  # the lock's answer, without the client's own retries
    )
    try:
        lock = RedisJobLock(client, owner="a")
        assert lock.acquire("j", interval=60, now=0.0)
        # Fails open, but once per slot on this replica: a checks tick asks every few seconds,
        # and must not run every check on every tick while Redis is away.
        assert not lock.acquire("j", interval=60, now=30.0)
        assert lock.acquire("j", interval=60, now=60.0)
        assert lock.acquire_many({"j": 60, "k": 60}, now=61.0) == {"k"}
    finally:
        client.close()


# -- many jobs at once: what the checks tick asks ----------------------------------------------


def test_many_jobs_are_taken_at_once_and_each_slot_still_goes_to_one_holder(
    holders: Holders,
) -> None:
    a, b = holders(), holders()
    assert a.acquire("check:b", interval=60, now=600.0)
    assert a.acquire_many({"check:a": 60, "check:b": 60, "check:c": 300}, now=610.0) == {
        "check:a",
        "check:c",
    }
    assert b.acquire_many({"check:a": 60, "check:b": 60, "check:c": 300}, now=620.0) == set()
    # The next minute's slots of the 60 s jobs; check:c's 300 s slot is still taken.
    assert b.acquire_many({"check:a": 60, "check:b": 60, "check:c": 300}, now=660.0) == {
        "check:a",
        "check:b",
    }
    assert a.acquire_many({}, now=660.0) == set()


def test_racing_holders_split_many_jobs_without_doubles(holders: Holders) -> None:
    racers = [holders() for _ in range(4)]
    jobs = {f"check:{n}": 60 for n in range(12)}
    won = race(*(partial(r.acquire_many, jobs, now=600.0) for r in racers))
    taken = [job for got in won for job in got]
    assert sorted(taken) == sorted(jobs), won  # every job once, by exactly one holder


def test_a_frozen_redis_costs_one_timeout_per_retry_period_not_one_per_job() -> None:
    """A server that accepts and never answers (as a SIGSTOPped Redis): only the socket timeout
    ends a wait, so the lock asks it once for all jobs, then not again for `retry_after`."""
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # the kernel accepts connections; nobody ever reads or answers
    port = silent.getsockname()[1]
    ticks = [0.0]
    lock = RedisJobLock.from_url(f"redis://127.0.0.1:{port}", owner="a", timeout=0.3)
    lock = RedisJobLock(lock.client, owner="a", retry_after=10.0, monotonic=lambda: ticks[0])
    try:
        jobs = {f"check:{n}": 60 for n in range(9)}
        started = time.monotonic()
        assert lock.acquire_many(jobs, now=600.0) == set(jobs)
        first = time.monotonic() - started
        assert first < 0.3 * 9  # one timeout (and no retries), not one per job
        started = time.monotonic()
        assert lock.acquire_many(jobs, now=601.0) == set()  # this replica ran them this slot
        assert lock.acquire_many(jobs, now=660.0) == set(jobs)  # and runs the next slot's
        assert time.monotonic() - started < 0.3  # without asking the frozen server again
        ticks[0] = 11.0  # retry_after later: it asks again (and waits its timeout again)
        started = time.monotonic()
        assert lock.acquire("check:0", interval=60, now=720.0)
        assert time.monotonic() - started >= 0.2
    finally:
        lock.client.close()
        silent.close()
