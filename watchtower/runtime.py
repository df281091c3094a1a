"""The composition root: the one place that builds a Watchtower process from its environ.

`from_environ(environ)` reads the settings (Watchtower's and the cutover's) from the environ it
is given, never from `os.environ`, and `build(settings)` makes everything a process needs: the
history store, the job lock, the AWS sources, the runbook engine, the cutover service and the
scheduled jobs. Blueprints, actions and commands receive what they use from here. Only the
scheduler and the web edge read the clock; everything below takes `now`.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import urllib3
from sqlalchemy import Engine as SqlEngine

from watchtower import aws
from watchtower.checks import registry as check_registry
from watchtower.checks import tunables
from watchtower.checks.base import Check, Sources
from watchtower.checks.runner import interval_for, run_checks
from watchtower.checks.upload_success import judging
from watchtower.config import Settings
from watchtower.cutover.config import CutoverSettings
from watchtower.cutover.jobs import schedule_cutover
from watchtower.cutover.ports import (
    CloudWatchCatalog,
    CostExplorer,
    DynamoDbImages,
    EvidencePorts,
    PreflightPorts,
)
from watchtower.cutover.service import CutoverService
from watchtower.cutover.store import CutoverStore
from watchtower.ledger import Ledger, ledger_for
from watchtower.metrics import Metrics
from watchtower.model import Result
from watchtower.probes import registry as probe_registry
from watchtower.probes.base import Probe, ProbeContext
from watchtower.probes.base import interval_for as probe_interval
from watchtower.probes.credential import ProbeCredential
from watchtower.probes.runner import run_probe
from watchtower.runbook.adapters import PlatformQueries, RunbookAuditEvents, WatchtowerChecks
from watchtower.runbook.engine import Engine
from watchtower.runbook.intake import Intake
from watchtower.runbook.parser import catalog, default_dir, load
from watchtower.runbook.store import RunbookStore
from watchtower.scheduler import JobLock, LocalJobLock, RedisJobLock, Scheduler
from watchtower.sealed import SealedPeriods
from watchtower.sources import CloudWatchLogs, CloudWatchMetrics, LambdaConfig, PostgresSql
from watchtower.status import Feed
from watchtower.store import HistoryStore, engine_for

MakeClient = Callable[..., Any]  # (service, region=None) -> a boto3 client

CLOUDFRONT_METRICS_REGION = "us-east-1"  # CloudFront's metrics live there, whatever the region
COST_EXPLORER_REGION = "us-east-1"  # Cost Explorer has one endpoint

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
    cutover: CutoverService
    ledger: Ledger  # sign-in limits and ended sessions, shared by the web replicas
    clock: Callable[[], float] = time.time
    probe_credential: ProbeCredential | None = None  # the probe's bearer token, when configured
    aws: MakeClient | None = None  # the boto3 clients the root makes (`watchtower doctor` reads)
    intake: Intake | None = None  # dispatches stored notifications to their runbooks (webhook)
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
                token=self.probe_credential.bearer if self.probe_credential else None,
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
        # One lock round trip for all of them: a slow lock store delays the tick once, not
        # once per check.
        taken = self.lock.acquire_many(
            {f"check:{c.name}": self.interval(c) for c in self.checks.values()}, now=now
        )
        due = [c for c in self.checks.values() if f"check:{c.name}" in taken]
        return self._cycle(due, now) if due else []

    def _cycle(self, checks: list[Check], now: float | None = None) -> list[Result]:
        before = api_calls(self.sources)
        at = datetime.fromtimestamp(now, UTC) if now is not None else self.now()
        results = run_checks(checks, settings=self.settings, sources=self.sources, now=at)
        for api, count in api_calls(self.sources).items():
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
        # The deferred webhook's intake (WATCHTOWER_WEBHOOK_INTAKE=scheduler), likewise.
        if self.settings.webhook_deferred and self.settings.webhook_intake == "scheduler":
            assert self.intake is not None  # built with the rest
            scheduler.add("intake", 3600, self.intake.start, locked=False)
        # Evidence samples while a cutover window is open.
        schedule_cutover(scheduler, self.cutover, self.now)
        return scheduler

    def close(self) -> None:
        for close in reversed(self.closers):
            close()
        self.closers.clear()


def from_environ(environ: Mapping[str, str], *, client: MakeClient | None = None) -> Watchtower:
    """The Watchtower a process runs, from this environ only (ConfigError names a bad variable)."""
    settings = Settings.from_env(environ, checks=tunables())
    return build(settings, cutover=CutoverSettings.from_env(environ), client=client)


def build(
    settings: Settings,
    *,
    cutover: CutoverSettings | None = None,
    client: MakeClient | None = None,
) -> Watchtower:
    """Everything a process needs, from settings; `client` makes the boto3 clients (tests)."""
    # One latency objective: the cutover's WATCHTOWER_CUTOVER_MAX_P95_MS, judged by the check too.
    settings = judging(settings, (cutover or CutoverSettings()).max_p95_ms)
    make = client or functools.partial(aws.client, settings=settings)
    engine = engine_for(settings.database_url)
    closers: list[Callable[[], None]] = [engine.dispose]
    try:
        store = HistoryStore(engine)
        store.create_schema()
        sealed = SealedPeriods(engine)  # the status page's closed hours and days (web/status.py)
        sealed.create_schema()
        store.on_add.append(sealed.forget)
        lock = _job_lock(settings, closers)
        ledger, close_ledger = ledger_for(settings.redis_url)
        if close_ledger is not None:
            closers.append(close_ledger)
        http = urllib3.PoolManager(num_pools=4, maxsize=4)
        closers.append(http.clear)
        sources = build_sources(settings, make)
        checks = check_registry()
        probes = probe_registry()
        store.feeds = {f.name: f for f in feeds_for(settings, probes, checks)}  # daily rollups
        runs = RunbookStore(engine)
        runs.create_schema()
        service = build_cutover(
            settings, cutover or CutoverSettings(), engine, store, sources, make, runs=runs
        )
        runbooks = build_engine(
            settings,
            runs,
            sources=sources,
            checks=checks,
            http=http,
            make_client=make,
            cutover=service,
            closers=closers,
        )
    except BaseException:
        for close in reversed(closers):
            close()
        raise
    wt = Watchtower(
        settings=settings,
        store=store,
        metrics=Metrics(),
        sources=sources,
        checks=checks,
        probes=probes,
        lock=lock,
        http=http,
        runbooks=runbooks,
        cutover=service,
        ledger=ledger,
        closers=closers,
        probe_credential=probe_credential(settings),
        aws=make,
    )
    wt.intake = Intake(
        store=runs,
        alerts=store,
        engine=runbooks,
        routes=settings.routes,
        clock=wt.now,
        here=settings.webhook_intake == "web",
    )
    closers.append(wt.intake.stop)
    still_firing = wt.metrics.alerts_still_firing
    runbooks.on_still_firing = lambda runbook, _fingerprint: still_firing.labels(runbook).inc()
    return wt


def probe_credential(settings: Settings) -> ProbeCredential | None:
    """The probe's token source (WATCHTOWER_PROBE_TOKEN, _FILE or _COMMAND), if one is set."""
    if not (settings.probe_token or settings.probe_token_file or settings.probe_token_command):
        return None
    return ProbeCredential(
        token=settings.probe_token,
        file=settings.probe_token_file,
        command=settings.probe_token_command,
        now=time.time,
    )


def feeds_for(
    settings: Settings, probes: Mapping[str, Probe], checks: Mapping[str, Check]
) -> list[Feed]:
    """Every probe and check as the status rules read them: their rows and intervals."""
    return [
        *(
            Feed(
                name=p.name,
                kind="probe",
                title=p.title,
                component=p.component,
                interval=probe_interval(p, settings),
            )
            for p in probes.values()
        ),
        *(
            Feed(
                name=c.name,
                kind="check",
                title=c.title,
                component=c.component,
                interval=interval_for(c, settings),
            )
            for c in checks.values()
        ),
    ]


def _job_lock(settings: Settings, closers: list[Callable[[], None]]) -> JobLock:
    if not settings.redis_url:
        return LocalJobLock()
    lock = RedisJobLock.from_url(settings.redis_url, owner=f"{socket.gethostname()}:{os.getpid()}")
    closers.append(lock.client.close)
    return lock


def build_sources(settings: Settings, make_client: MakeClient | None = None) -> Sources:
    """The checks' sources (CloudWatch, Logs, Lambda, the legacy PostgreSQL) from settings."""
    make = make_client or functools.partial(aws.client, settings=settings)
    regions = {settings.region, CLOUDFRONT_METRICS_REGION}
    return Sources(
        metrics=CloudWatchMetrics({r: make("cloudwatch", region=r) for r in regions}),
        logs=CloudWatchLogs(make("logs")),
        functions=LambdaConfig(make("lambda")),
        legacy_sql=PostgresSql(settings.legacy_database_url, table=settings.legacy_table)
        if settings.legacy_database_url
        else None,
    )


def api_calls(sources: Sources) -> dict[str, int]:
    """AWS API calls made through these sources so far, by API: a monitor should cost little."""
    calls = {"GetMetricData": getattr(sources.metrics, "calls", 0)}
    if sources.logs is not None:
        calls["FilterLogEvents"] = getattr(sources.logs, "calls", 0)
    if sources.functions is not None:
        calls["GetFunctionConfiguration"] = getattr(sources.functions, "calls", 0)
    return calls


def build_cutover(
    settings: Settings,
    cutover: CutoverSettings,
    database: SqlEngine,
    history: HistoryStore,
    sources: Sources,
    make_client: MakeClient,
    *,
    runs: RunbookStore,
) -> CutoverService:
    """The cutover service over the history store's database and the checks' sources; it reads
    the runbook engine's cutover events from `runs`."""
    store = CutoverStore(database)
    store.create_schema()
    # Clients are cheap to make and only connect when first used: a web start does not Scan.
    return CutoverService(
        settings=settings,
        cutover=cutover,
        store=store,
        evidence_ports=EvidencePorts(
            metrics=sources.metrics,
            results=history,
            functions=sources.functions,
            legacy_sql=sources.legacy_sql,
            alerts=history,
        ),
        preflight_ports=PreflightPorts(
            metrics=sources.metrics,
            catalog=CloudWatchCatalog(make_client("cloudwatch")),
            images=DynamoDbImages(make_client("dynamodb"), settings.table),
            legacy_sql=sources.legacy_sql,
        ),
        results=history,
        runbook_events=RunbookAuditEvents(database, runs),
        costs=CostExplorer(make_client("ce", region=COST_EXPLORER_REGION)),
    )


def build_engine(
    settings: Settings,
    store: RunbookStore,
    *,
    sources: Sources,
    checks: Mapping[str, Check],
    http: urllib3.PoolManager,
    make_client: MakeClient,
    cutover: CutoverService,
    closers: list[Callable[[], None]],
) -> Engine:
    """The runbook engine over the settings' runbooks directory; the scheduler starts its worker."""
    known = catalog()
    directory = Path(settings.runbooks_dir) if settings.runbooks_dir else default_dir()
    runbooks, problems = load([directory], known)
    engine = Engine(
        store=store,
        runbooks=runbooks,
        catalog=known,
        settings=settings,
        checks=WatchtowerChecks(checks, settings, sources),
        queries=PlatformQueries(
            settings=settings,
            sources=sources,
            http=http,
            prometheus_url=settings.prometheus_url,
            legacy_database_url=settings.legacy_database_url,
        ),
        aws=functools.cache(lambda service: make_client(service)),
        redis=_image_redis(settings, closers),
        problems=problems,
        approval_timeout=timedelta(seconds=settings.runbook_approval_timeout),
        workers=settings.runbook_workers,
        nice=settings.runbook_worker_nice,
        lease=timedelta(seconds=settings.runbook_lease_seconds),
        cutover=cutover,
    )
    closers.append(engine.stop_worker)
    return engine


def _image_redis(settings: Settings, closers: list[Callable[[], None]]) -> Callable[[], Any] | None:
    """The image service's Redis for the cache actions, connected on first use."""
    if not settings.image_redis_url:
        return None
    url = str(settings.image_redis_url)
    lock = threading.Lock()
    made: list[Any] = []

    def redis_client() -> Any:
        with lock:
            if not made:
                import redis

                made.append(
                    redis.Redis.from_url(
                        url, socket_timeout=5, socket_connect_timeout=2, decode_responses=True
                    )
                )
            return made[0]

    def close_redis() -> None:
        with lock:
            for made_client in made:
                made_client.close()
            made.clear()

    closers.append(close_redis)
    return redis_client
