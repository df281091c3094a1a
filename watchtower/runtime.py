"""The running Watchtower: probes and checks, what they feed (history, metrics), and the schedule.

`build(settings)` wires it from settings; tests build it from their own parts. Only the scheduler
and the web edge read the clock; everything below takes `now`.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import urllib3

from watchtower import wiring
from watchtower.checks import registry as check_registry
from watchtower.checks.base import Check, Sources
from watchtower.checks.runner import interval_for, run_checks
from watchtower.config import Settings
from watchtower.cutover.jobs import schedule_cutover
from watchtower.metrics import Metrics
from watchtower.model import Result
from watchtower.probes import registry as probe_registry
from watchtower.probes.base import Probe, ProbeContext
from watchtower.probes.runner import run_probe
from watchtower.runbook.adapters import build_engine
from watchtower.runbook.engine import Engine
from watchtower.scheduler import JobLock, LocalJobLock, RedisJobLock, Scheduler
from watchtower.store import HistoryStore, engine_for

log = logging.getLogger(__name__)

# Results kept while the history store is down, stored once it answers again: about a day of
# every probe and check at their default intervals. Beyond that the oldest are dropped.
UNSTORED_MAX = 10_000


@dataclass
class Watchtower:
    settings: Settings
    store: HistoryStore
    metrics: Metrics
    sources: Sources
    checks: dict[str, Check]
    probes: dict[str, Probe]
    lock: JobLock
    http: urllib3.PoolManager
    runbooks: Engine
    clock: Callable[[], float] = time.time
    closers: list[Callable[[], None]] = field(default_factory=list)
    _unstored: deque[Result] = field(
        default_factory=lambda: deque(maxlen=UNSTORED_MAX), init=False, repr=False
    )
    _storing: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    # -- probes -------------------------------------------------------------------------------

    def run_probe(self, name: str) -> list[Result]:
        probe = self.probes[name]
        results = run_probe(
            probe,
            lambda: ProbeContext(
                settings=self.settings,
                http=self.http,
                now=self.now(),
                clock=time.perf_counter,
            ),
        )
        self.record(results)
        return results

    def run_probes(self) -> list[Result]:
        return [r for name in self.probes for r in self.run_probe(name)]

    # -- checks -------------------------------------------------------------------------------

    def run_checks(self, names: Iterable[str] | None = None) -> list[Result]:
        """Run the named checks (all when None) now, as one batched cycle."""
        chosen = [self.checks[n] for n in (names if names is not None else self.checks)]
        return self._cycle(chosen)

    def run_due_checks(self) -> list[Result]:
        """The scheduler's tick: each check whose interval slot no replica has taken yet."""
        now = self.clock()
        due = [
            c
            for c in self.checks.values()
            if self.lock.acquire(f"check:{c.name}", interval=self.interval(c), now=now)
        ]
        return self._cycle(due, now) if due else []

    def _cycle(self, checks: list[Check], now: float | None = None) -> list[Result]:
        before = wiring.api_calls(self.sources)
        at = datetime.fromtimestamp(now, UTC) if now is not None else self.now()
        results = run_checks(checks, settings=self.settings, sources=self.sources, now=at)
        for api, count in wiring.api_calls(self.sources).items():
            if count > before.get(api, 0):
                self.metrics.aws_api_calls.labels(api).inc(count - before.get(api, 0))
        self.record(results)
        return results

    def interval(self, check: Check) -> int:
        return interval_for(check, self.settings)

    # -- feeding ------------------------------------------------------------------------------

    def record(self, results: list[Result]) -> None:
        for result in results:
            self.metrics.observe(result)
        # The history store down must neither stop monitoring nor lose what it saw meanwhile:
        # results wait here and go in with the first write that succeeds.
        with self._storing:
            if len(self._unstored) + len(results) > UNSTORED_MAX:
                log.error("history store down too long: dropping the oldest unstored results")
            self._unstored.extend(results)
            try:
                self.store.add(list(self._unstored))
            except Exception as exc:
                if self._store_answers():  # the rows are at fault, not the store: never retry
                    log.exception("could not store %d results", len(self._unstored))
                    self._unstored.clear()
                    return
                log.warning(
                    "history store unreachable (%s); %d results wait to be stored",
                    " ".join(str(exc).split())[:300],
                    len(self._unstored),
                )
                return
            self._unstored.clear()

    def _store_answers(self) -> bool:
        try:
            self.store.ping()
        except Exception:
            return False
        return True

    def prune(self) -> int:
        return self.store.prune(before=self.now() - timedelta(days=self.settings.retention_days))

    def scheduler(self) -> Scheduler:
        scheduler = Scheduler(
            self.lock,
            jitter=self.settings.scheduler_jitter,
            on_outcome=lambda job, outcome: self.metrics.job_runs.labels(job, outcome).inc(),
            clock=self.clock,
        )
        for name, probe in self.probes.items():
            interval = probe.interval or self.settings.probe_interval
            self.metrics.interval.labels("probe", name).set(interval)
            scheduler.add(f"probe:{name}", interval, functools.partial(self.run_probe, name))
        for check in self.checks.values():
            self.metrics.interval.labels("check", check.name).set(self.interval(check))
        # Locks are per check inside the tick, so the tick itself is not locked.
        scheduler.add("checks", self.settings.check_tick, self.run_due_checks, locked=False)
        scheduler.add("retention", 3600, self.prune)
        # At start-up, then hourly: the runbook worker runs (again) wherever jobs are scheduled.
        scheduler.add("runbooks", 3600, self.runbooks.start_worker, locked=False)
        schedule_cutover(self, scheduler)  # evidence samples while a cutover window is open
        return scheduler

    def close(self) -> None:
        for close in reversed(self.closers):
            close()
        self.closers.clear()


def build(settings: Settings) -> Watchtower:
    engine = engine_for(settings.database_url)
    store = HistoryStore(engine)
    store.create_schema()
    closers: list[Callable[[], None]] = [engine.dispose]
    lock: JobLock = LocalJobLock()
    if settings.redis_url:
        import redis

        client = redis.Redis.from_url(
            settings.redis_url, socket_timeout=2, socket_connect_timeout=2
        )
        closers.append(client.close)
        lock = RedisJobLock(client, owner=f"{socket.gethostname()}:{os.getpid()}")
    http = urllib3.PoolManager(num_pools=4, maxsize=4)
    closers.append(http.clear)
    sources = wiring.build_sources(settings)
    checks = check_registry()
    runbooks = build_engine(
        settings, engine, sources=sources, checks=checks, http=http, closers=closers
    )
    return Watchtower(
        settings=settings,
        store=store,
        metrics=Metrics(),
        sources=sources,
        checks=checks,
        probes=probe_registry(),
        lock=lock,
        http=http,
        runbooks=runbooks,
        closers=closers,
    )
