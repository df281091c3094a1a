"""Runs probes and checks on intervals, once per interval however many replicas run.

Each job's interval is cut into slots aligned on the epoch (slot = floor(now / interval)); a
replica runs a job only if it takes that slot's lock (Redis `SET NX EX`, or in-process with a
single replica). Triggers fire on slot boundaries; the jitter is a random wait after the slot is
read (APScheduler's own jitter would walk the trigger off the slots), so every firing lands in
the slot it belongs to, and replicas do not all hit the image API in the same second.
APScheduler's `coalesce` and `max_instances=1` mean no overlap and no pile-up after a pause.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Protocol

import redis
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)


class JobLock(Protocol):
    def acquire(self, job: str, *, interval: int, now: float) -> bool:
        """Take `job`'s slot containing `now`; False when it is taken (here or elsewhere)."""

    def acquire_many(self, jobs: Mapping[str, int], *, now: float) -> set[str]:
        """Take the slot containing `now` of each job (name -> interval) at once; the jobs
        whose slot this holder took (one round trip to a shared store, however many jobs)."""


def slot(now: float, interval: int) -> int:
    return math.floor(now / interval)


class LocalJobLock:
    """One replica: remembers the last two slots each job ran in (as Redis keeps a slot's key
    for two intervals), so a clock stepping back into the slot before does not run it again."""

    def __init__(self) -> None:
        self._taken: dict[str, list[int]] = {}
        self._lock = threading.Lock()

    def acquire(self, job: str, *, interval: int, now: float) -> bool:
        current = slot(now, interval)
        with self._lock:
            taken = self._taken.setdefault(job, [])
            if current in taken:
                return False
            taken[:] = [*taken[-1:], current]
            return True

    def acquire_many(self, jobs: Mapping[str, int], *, now: float) -> set[str]:
        return {
            job for job, interval in jobs.items() if self.acquire(job, interval=interval, now=now)
        }


# How long a lock round trip may wait for Redis: well under any deadline of a probe or a check
# cycle, since the job waits for it before it starts. A Redis on the same network answers a
# pipelined SET NX in about a millisecond.
LOCK_TIMEOUT = 0.5
# After Redis failed to answer, how long the lock does without it before asking again: a frozen
# Redis costs one LOCK_TIMEOUT per this many seconds, not one per job.
RETRY_AFTER = 10.0


class RedisJobLock:
    """Several replicas against one Redis: the first to SET the slot's key runs the job.

    All due jobs' keys go in one pipelined round trip (`acquire_many`). When Redis does not
    answer (down, or frozen: it accepts and never replies, so only the socket timeout ends the
    wait), the job runs anyway, but at most once per slot on this replica: the lock falls back to
    an in-process one (which also knows the slots this replica took in Redis) and does not ask
    Redis again for `retry_after` seconds. A monitor that stops monitoring because its lock is
    down is worse than one that runs once per replica; with several replicas each runs every job
    until Redis answers again (docs/troubleshooting.md, "Redis is down").
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        owner: str,
        prefix: str = "watchtower:job",
        retry_after: float = RETRY_AFTER,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._owner = owner
        self._prefix = prefix
        self._retry_after = retry_after
        self._monotonic = monotonic
        self._local = LocalJobLock()  # this replica's slots: the fallback while Redis is away
        self._down_until: float | None = None  # set while Redis is not asked
        self._state = threading.Lock()

    @classmethod
    def from_url(cls, url: str, *, owner: str, timeout: float = LOCK_TIMEOUT) -> RedisJobLock:
        """A lock on its own client: a short socket timeout and no retries of its own (the
        client's default retries would multiply the wait on a frozen Redis)."""
        client = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
        )
        return cls(client, owner=owner)

    @property
    def client(self) -> redis.Redis:
        return self._client

    def acquire(self, job: str, *, interval: int, now: float) -> bool:
        return job in self.acquire_many({job: interval}, now=now)

    def acquire_many(self, jobs: Mapping[str, int], *, now: float) -> set[str]:
        if not jobs:
            return set()
        with self._state:
            asking = self._down_until is None or self._monotonic() >= self._down_until
        if not asking:
            return self._local.acquire_many(jobs, now=now)
        names = list(jobs)
        try:
            pipe = self._client.pipeline(transaction=False)
            for job in names:
                key = f"{self._prefix}:{job}:{slot(now, jobs[job])}"
                pipe.set(key, self._owner, nx=True, ex=jobs[job] * 2)
            answers = pipe.execute()
        except redis.RedisError as exc:
            with self._state:
                was_up = self._down_until is None
                self._down_until = self._monotonic() + self._retry_after
            if was_up:
                log.warning(
                    "job lock unavailable (%s); running due jobs here, each at most once per "
                    "slot, and asking Redis again in %g s",
                    exc,
                    self._retry_after,
                )
            return self._local.acquire_many(jobs, now=now)
        with self._state:
            if self._down_until is not None:
                log.info("job lock available again")
            self._down_until = None
        taken = {job for job, answer in zip(names, answers, strict=True) if answer}
        # Remembered here too: if Redis goes away within the slot, this replica does not run
        # again what it already ran.
        self._local.acquire_many({job: jobs[job] for job in taken}, now=now)
        return taken


def next_slot_start(now: float, interval: int, offset: float = 0.5) -> datetime:
    start = (slot(now, interval) + 1) * interval + offset
    return datetime.fromtimestamp(start, UTC)


class Scheduler:
    """A thin owner of APScheduler's BackgroundScheduler with slot-locked jobs."""

    def __init__(
        self,
        lock: JobLock,
        *,
        jitter: int,
        on_outcome: Callable[[str, str], None] = lambda job, outcome: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._lock = lock
        self._jitter = jitter
        self._on_outcome = on_outcome
        self._clock = clock
        self._scheduler = BackgroundScheduler(timezone=UTC)
        self._stopping = threading.Event()

    def add(
        self, job: str, interval: int, run: Callable[[], object], *, locked: bool = True
    ) -> None:
        """Run `run` every `interval` seconds on slot boundaries, and once now at start-up."""
        args = (job, interval, run, locked)
        self._scheduler.add_job(
            self._guarded,
            args=args,
            id=job,
            name=job,
            trigger=IntervalTrigger(
                seconds=interval, start_date=next_slot_start(self._clock(), interval)
            ),
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, interval // 2),
        )
        # At start-up, at once and without jitter: a fresh replica shows results within seconds.
        self._scheduler.add_job(
            self._guarded,
            args=(*args, False),
            id=f"{job}:startup",
            trigger="date",
            run_date=datetime.now(UTC) + timedelta(seconds=0.1),
        )

    def names(self) -> list[str]:
        """The jobs added, by name."""
        return [j.id for j in self._scheduler.get_jobs() if not j.id.endswith(":startup")]

    def _guarded(
        self,
        job: str,
        interval: int,
        run: Callable[[], object],
        locked: bool,
        jittered: bool = True,
    ) -> None:
        now = self._clock()
        jitter = min(float(self._jitter), interval / 4) if locked and jittered else 0
        if jitter and self._stopping.wait(random.uniform(0, jitter)):
            return
        if locked and not self._lock.acquire(job, interval=interval, now=now):
            self._on_outcome(job, "skipped")
            return
        try:
            run()
        except Exception:
            log.exception("scheduled job %s failed", job)
            self._on_outcome(job, "failed")
            return
        self._on_outcome(job, "ran")

    def start(self) -> None:
        self._scheduler.start()

    def shutdown(self) -> None:
        self._stopping.set()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)
