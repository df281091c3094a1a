"""The runbook engine: runs executions step by step, persisted, on a worker thread pool.

It knows nothing of Flask, boto3, redis or psycopg: checks and queries come through the small
ports in `watchtower.runbook.steps`, actions through `watchtower.runbook.actions` and the clients
their context hands them, state through `RunbookStore`. The web layer, the CLI and the alert
webhook all drive it through the same methods of `Engine`, a thin facade over three parts:

* `watchtower.runbook.machine`: the state machine, pure (a run, an event and the time in; the
  new state and the audit entries out), tested without a database;
* `watchtower.runbook.worker`: the dispatcher, the pool, heartbeats and leases;
* `watchtower.runbook.steps`: step execution (inputs, plan, dry run, post-check, compensation).

Rules (docs/runbooks.md says the same for people):

* **Approval.** Approval steps and manual steps always wait for a person. A mutating action waits
  for approval when the step says `approval: required`, when the run is `suggest` (an alert route
  that only proposes), or when the run was started by hand and the action is gated (it changes
  what users see or pay for). In an `automatic` run (a route that allows automation) gated
  actions run unattended. The approver sees the resolved inputs, the exact calls (`plan`) and
  the earlier steps' evidence, and what is approved is what runs: inputs are resolved once, when
  the request is made. A request expires after `approval_timeout`; the run then fails. Whoever
  started a run by hand cannot approve it (a second operator must); they may reject or cancel.
* **Locks.** A runbook that changes things declares `lock: ${params.table}`; one execution per
  runbook and target holds it from its first step to its end. A second one *waits* (pending,
  saying for whom) and starts when the lock is free; if its alert resolves meanwhile it is closed
  as no longer needed. Dry runs change nothing and take no lock.
* **Alerts.** One run per alert episode (runbook, fingerprint, `startsAt`), whatever arrives
  when and where; one open execution per runbook and fingerprint; a delivery after the run
  ended marks it still firing (a route's `rerun_after` may allow one more run); a resolution
  closes runs that wait (for a person or a lock), stops a running one after the step in flight,
  and is recorded on an episode's run that had already ended.
* **Restarts.** A worker holds the runs it advances with a heartbeat. When one stops (a restart,
  a crash) its runs are taken over: a read that was in flight runs again; an action that was in
  flight is marked failed (interrupted: it may or may not have taken effect) and the run fails;
  runs waiting for a person keep waiting.
"""

from __future__ import annotations

import builtins
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from watchtower.alerting import AlertStart, Route, parse_notification
from watchtower.alerting import select as select_routes
from watchtower.model import Alert
from watchtower.runbook import machine, scope
from watchtower.runbook.actions.base import CutoverPort
from watchtower.runbook.alert_runs import AlertRuns
from watchtower.runbook.errors import Refused, UnknownRunbook
from watchtower.runbook.machine import (
    ALERTMANAGER,
    CHANGED_MEANWHILE,
    SYSTEM,
    Transition,
    needs_approval,
    reads,
)
from watchtower.runbook.model import (
    ANY_OWNER,
    AuditEntry,
    Execution,
    Mode,
    Record,
    Runbook,
)
from watchtower.runbook.parser import Catalog, Problem
from watchtower.runbook.steps import CheckRunner, QueryRunner, StepRunner, StepTimeout
from watchtower.runbook.worker import Ledger, Worker

if TYPE_CHECKING:
    from watchtower.config import Settings
    from watchtower.runbook.store import RunbookStore

__all__ = [
    "ALERTMANAGER",
    "SYSTEM",
    "CheckRunner",
    "Engine",
    "QueryRunner",
    "StepTimeout",
    "needs_approval",
    "reads",
]


class Engine:
    """Starts runs, takes people's decisions, and hands the runs to its worker."""

    def __init__(
        self,
        *,
        store: RunbookStore,
        runbooks: Mapping[str, Runbook],
        catalog: Catalog,
        settings: Settings,
        checks: CheckRunner,
        queries: QueryRunner,
        aws: Callable[[str], Any],
        redis: Callable[[], Any] | None = None,
        problems: list[Problem] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        approval_timeout: timedelta = timedelta(hours=1),
        lease: timedelta = timedelta(seconds=60),
        workers: int = 4,
        nice: int = 0,
        poll_seconds: float = 0.5,
        retry_delay: float = 1.0,
        worker_id: str | None = None,
        cutover: CutoverPort | None = None,
    ) -> None:
        self.store = store
        self.cutover = cutover
        self.runbooks = dict(runbooks)
        self.catalog = catalog
        self.settings = settings
        self.checks = checks
        self.queries = queries
        self.aws = aws
        self.redis = redis
        self.problems = list(problems or [])
        self.clock = clock
        self.approval_timeout = approval_timeout
        self.lease = lease
        self.workers = workers
        self.poll_seconds = poll_seconds
        self.retry_delay = retry_delay
        self.worker_id = worker_id or f"worker-{secrets.token_hex(6)}"
        self.ledger = Ledger(store)
        # Told (runbook, fingerprint) when an episode is delivered firing after its run ended;
        # the web edge counts it in watchtower_alerts_still_firing_total.
        self.on_still_firing: Callable[[str, str], None] = lambda runbook, fingerprint: None
        stopping = threading.Event()
        self.steps = StepRunner(
            catalog=catalog,
            settings=settings,
            checks=checks,
            queries=queries,
            aws=aws,
            redis=redis,
            clock=clock,
            audit=store.audit,
            stopping=stopping,
            approval_timeout=approval_timeout,
            cutover=cutover,
            retry_delay=retry_delay,
        )
        self.worker = Worker(
            store=store,
            steps=self.steps,
            catalog=catalog,
            clock=clock,
            lease=lease,
            workers=workers,
            nice=nice,
            poll_seconds=poll_seconds,
            worker_id=self.worker_id,
            stopping=stopping,
        )

    def now(self) -> datetime:
        return self.clock()

    # -- starting runs ------------------------------------------------------------------------

    def runbook(self, runbook_id: str) -> Runbook:
        try:
            return self.runbooks[runbook_id]
        except KeyError:
            known = ", ".join(sorted(self.runbooks)) or "none"
            raise UnknownRunbook(f"no runbook {runbook_id!r} (known: {known})") from None

    def start_from_alert(
        self,
        runbook_id: str,
        *,
        alert: Alert,
        mode: Literal["automatic", "suggest"],
        rerun_after: timedelta | None = None,
    ) -> str | None:
        """A run for a firing alert's episode; None when that episode already has its run
        (watchtower.runbook.alert_runs says when)."""
        return AlertRuns(self).start(runbook_id, alert=alert, mode=mode, rerun_after=rerun_after)

    def start_from_alerts(
        self, starts: Sequence[AlertStart]
    ) -> builtins.list[str | Exception | None]:
        """`start_from_alert` for many, new episodes' runs created together (one transaction);
        for each, its run, None, or what starting it raised."""
        return AlertRuns(self).start_many(starts)

    def start(
        self,
        runbook_id: str,
        *,
        params: Mapping[str, Any],
        started_by: str,
        dry_run: bool = False,
    ) -> str:
        """A run started by a person; raises ParamError when a parameter does not fit."""
        runbook = self.runbook(runbook_id)
        if not started_by:
            raise Refused("a run needs the name of who started it")
        values = scope.run_params(runbook, params, self.settings, from_labels=False)
        lock_key = None if dry_run else scope.lock_key(runbook, values, self.settings)
        return self._create(
            runbook,
            params=values,
            mode="manual",
            started_by=started_by,
            dry_run=dry_run,
            lock_key=lock_key,
            note="dry run" if dry_run else "",
        )

    def replay(
        self, notification_id: int, *, routes: Sequence[Route], started_by: str
    ) -> builtins.list[str]:
        """Dry runs of what a stored notification's routes select, one per firing alert and
        runbook: labels become parameters as for a real delivery; nothing changes, no lock, no
        episode (a replay never stands in for the alert's real run)."""
        stored = self.store.notification(notification_id)
        notification = parse_notification(stored.body.encode())
        started = []
        for alert in notification.alerts:
            if alert.status != "firing":
                continue
            for route in select_routes(routes, alert.labels):
                runbook = self.runbook(route.runbook)
                params = scope.run_params(runbook, alert.labels, self.settings, from_labels=True)
                created = self._create(
                    runbook,
                    params=params,
                    mode="manual",
                    started_by=started_by,
                    dry_run=True,
                    lock_key=None,
                    alert=alert,
                    note=f"replay of notification {stored.id} ({route.mode} route), dry run",
                )
                started.append(created)
        return started

    def defaults(self, runbook: Runbook) -> dict[str, Any]:
        """Each parameter's default as a run would get it (settings filled in)."""
        return scope.param_defaults(runbook, self.settings)

    def _create(
        self,
        runbook: Runbook,
        *,
        params: Mapping[str, Any],
        mode: Mode,
        started_by: str,
        dry_run: bool,
        lock_key: str | None,
        alert: Alert | None = None,
        note: str = "",
    ) -> str:
        """A person's run, or a replay's: made and stored (alert runs: runbook/alert_runs.py).
        It takes no claim, so nothing can turn it down."""
        record, audit = self.new_run(
            runbook,
            params=params,
            mode=mode,
            started_by=started_by,
            dry_run=dry_run,
            lock_key=lock_key,
            alert=alert,
            note=note,
        )
        created = self.store.create(record, None, audit=audit)
        assert created  # no claim, no episode: nothing to conflict with
        self.worker.wake()
        return record.execution.id

    def new_run(
        self,
        runbook: Runbook,
        *,
        params: Mapping[str, Any],
        mode: Mode,
        started_by: str,
        dry_run: bool,
        lock_key: str | None,
        alert: Alert | None = None,
        note: str = "",
        refused: str = "",
    ) -> tuple[Record, tuple[AuditEntry, ...]]:
        """A new run and its first audit entries, not stored yet."""
        return machine.created(
            execution_id=secrets.token_hex(8),
            runbook=runbook,
            params=params,
            mode=mode,
            started_by=started_by,
            dry_run=dry_run,
            lock_key=lock_key,
            now=self.now(),
            alert_fingerprint=alert.fingerprint if alert else None,
            alert_name=alert.name if alert else None,
            note=note,
            refused=refused,
        )

    # -- people ---------------------------------------------------------------------------------

    def approve(self, execution_id: str, *, by: str, comment: str = "") -> None:
        """Approve the waiting step (or confirm a manual one); the run goes on."""
        record = self.store.record(execution_id)
        self._decide(machine.approve(record, by=by, comment=comment, now=self.now()))

    def reject(self, execution_id: str, *, by: str, comment: str = "") -> None:
        """Refuse the waiting step; the run ends, cancelled, saying who refused and why."""
        record = self.store.record(execution_id)
        self._decide(machine.reject(record, by=by, comment=comment, now=self.now()))

    def _decide(self, transition: Transition) -> None:
        done = self.ledger.apply(transition, held_by=ANY_OWNER)
        if transition.refusal is not None:
            raise transition.refusal
        if not done:
            raise Refused(CHANGED_MEANWHILE)
        self.worker.wake()

    def cancel(self, execution_id: str, *, by: str, comment: str = "") -> None:
        """End a run: at once if no step is running, else right after the step in flight."""
        record = self.store.record(execution_id)
        self._stop(*machine.cancel(record, by=by, comment=comment, now=self.now()))

    def _stop(self, close: Transition, ask: Transition) -> None:
        if self.ledger.apply(close, held_by=None):
            return
        # A worker is in the middle of a step: it ends the run once that step is done.
        self.ledger.apply(ask, held_by=ANY_OWNER)
        self.worker.wake()

    def alert_resolved(
        self, fingerprint: str, *, at: datetime, starts_at: datetime | None = None
    ) -> None:
        """Record the resolution on the alert's runs; close those no longer needed."""
        AlertRuns(self).resolved(fingerprint, at=at, starts_at=starts_at)

    # -- reading --------------------------------------------------------------------------------

    def get(self, execution_id: str) -> Execution:
        return self.store.get(execution_id)

    def list(
        self,
        limit: int = 50,
        *,
        runbook_id: str | None = None,
        step_started_since: datetime | None = None,
    ) -> builtins.list[Execution]:
        """Newest first; with `step_started_since`, only runs with a step started since then."""
        return self.store.list(limit, runbook_id=runbook_id, step_started_since=step_started_since)

    def audit(self, execution_id: str | None = None) -> builtins.list[AuditEntry]:
        return self.store.audit_entries(execution_id)

    # -- the worker -----------------------------------------------------------------------------

    def start_worker(self) -> None:
        self.worker.start()

    def stop_worker(self, timeout: float = 10.0) -> None:
        """Stop taking runs; runs in hand stop after their current step (others take them up)."""
        self.worker.stop(timeout)

    @property
    def running(self) -> bool:
        return self.worker.running

    def run_pending(self, *, max_passes: int = 1000) -> int:
        """Advance every runnable run in this thread until each waits or ends (CLI and tests).

        Returns how many times a run moved on.
        """
        return self.worker.run_pending(max_passes=max_passes)

    def expire_approvals(self) -> int:
        return self.worker.expire_approvals()
