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
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

import redis
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

log = logging.getLogger(__name__)


class JobLock(Protocol):
    def acquire(self, job: str, *, interval: int, now: float) -> bool:
        """Take `job`'s slot containing `now`; False when it is taken (here or elsewhere)."""


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


class RedisJobLock:
    """Several replicas against one Redis: the first to SET the slot's key runs the job.

    If Redis cannot be reached the job runs anyway: a monitor that stops monitoring because its
    lock is down is worse than one that runs twice.
    """

    def __init__(self, client: redis.Redis, *, owner: str, prefix: str = "watchtower:job") -> None:
        self._client = client
        self._owner = owner
        self._prefix = prefix

    def acquire(self, job: str, *, interval: int, now: float) -> bool:
        key = f"{self._prefix}:{job}:{slot(now, interval)}"
        try:
            return bool(self._client.set(key, self._owner, nx=True, ex=interval * 2))
        except redis.RedisError as exc:
            log.warning("job lock unavailable (%s); running %s here", exc, job)
            return True


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
