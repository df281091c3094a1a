"""The runbook engine: runs executions step by step, persisted, on a worker thread pool.

It knows nothing of Flask, boto3, redis or psycopg: checks and queries come through the small
ports below, actions through `watchtower.runbook.actions` and the clients their context hands
them, state through `RunbookStore`. The web layer, the CLI and the alert webhook all drive it
through the same methods.

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
* **Alerts.** One open execution per runbook and alert fingerprint; a resolution closes runs that
  wait (for a person or a lock), and stops a running one after the step in flight.
* **Restarts.** A worker holds the runs it advances with a heartbeat. When one stops (a restart,
  a crash) its runs are taken over: a read that was in flight runs again; an action that was in
  flight is marked failed (interrupted: it may or may not have taken effect) and the run fails;
  runs waiting for a person keep waiting.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol

from watchtower.errors import WatchtowerError
from watchtower.model import Alert, Result
from watchtower.runbook.actions.base import Action, ActionContext, CutoverPort
from watchtower.runbook.errors import (
    ApprovalExpired,
    ExpressionError,
    ParamError,
    Refused,
    RunbookError,
    SelfApproval,
    UnknownRunbook,
)
from watchtower.runbook.expressions import compile_expression, evaluate, render
from watchtower.runbook.model import (
    OPEN_STATUSES,
    AuditEntry,
    Execution,
    ExecutionStatus,
    Mode,
    Runbook,
    Step,
    StepRun,
    StepStatus,
    settings_view,
)
from watchtower.runbook.parser import Catalog, Problem, parse_source

if TYPE_CHECKING:
    from watchtower.config import Settings
    from watchtower.runbook.store import Record, RunbookStore

log = logging.getLogger(__name__)

SYSTEM = "watchtower"
ALERTMANAGER = "alertmanager"
PROMQL_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:/-")


class CheckRunner(Protocol):
    def run_check(self, name: str, overrides: Mapping[str, float], *, now: datetime) -> Result:
        """Run one Watchtower check now, with some of its parameters overridden."""


class QueryRunner(Protocol):
    def promql(self, query: str, *, now: datetime) -> dict[str, Any]: ...

    def cloudwatch(self, spec: Mapping[str, Any], *, now: datetime) -> dict[str, Any]: ...

    def logs(self, spec: Mapping[str, Any], *, now: datetime) -> dict[str, Any]: ...

    def sql(self, text: str, params: Mapping[str, Any]) -> dict[str, Any]: ...


class StepTimeout(RunbookError):
    pass


class _LostOwnership(Exception):
    """Another worker took this run over (ours stopped sending heartbeats): stop touching it."""


Outcome = Literal["next", "wait", "stop"]


@dataclass(frozen=True)
class _Done:
    status: StepStatus
    outputs: dict[str, Any]
    error: str = ""


def needs_approval(step: Step, action: Action | None, mode: Mode) -> bool:
    """Whether a person must approve this step before it runs (the rule in the module doc)."""
    if step.kind in ("approval", "manual"):
        return True
    if step.kind != "action" or action is None or not action.mutating:
        return False
    if step.approval == "required" or mode == "suggest":
        return True
    if mode == "automatic":
        return False
    return action.gated


def reads(step: Step, action: Action | None) -> bool:
    """Checks, queries and read-only actions: safe to retry, to resume, and to run in dry-run."""
    return step.kind in ("check", "query") or (action is not None and not action.mutating)


class Engine:
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
        self._snapshots: dict[str, Runbook] = {}
        self._busy: set[str] = set()
        self._busy_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._dispatcher: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None

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
    ) -> str | None:
        """A run for a firing alert; None when this alert's run of this runbook is still open.

        Labels reach the steps only as the runbook's declared parameters, typed and checked
        against their patterns; labels it does not declare are dropped. When a label does not
        match, nothing runs: the execution is recorded as failed, saying which label and why
        (raising would make Alertmanager retry the same labels forever).
        """
        runbook = self.runbook(runbook_id)
        if alert.status != "firing":
            return None
        if mode not in ("automatic", "suggest"):
            raise ValueError(f"mode {mode!r} must be automatic or suggest")
        claim = f"alert:{runbook.id}:{alert.fingerprint}"
        if self.store.holder(claim) is not None:
            return None
        problem = ""
        params: dict[str, Any] = {}
        lock_key = None
        try:
            params = self._params(runbook, alert.labels, from_labels=True)
            lock_key = self._lock_key(runbook, params)
        except (ParamError, ExpressionError) as exc:
            problem = f"refused: the alert's labels do not fit this runbook: {exc}"
        execution_id = self._create(
            runbook,
            params=params,
            mode=mode,
            started_by=ALERTMANAGER,
            dry_run=False,
            alert=alert,
            lock_key=lock_key,
            claim=None if problem else claim,
            failed=problem,
        )
        if execution_id is not None:
            note = f"alert {alert.name} ({alert.fingerprint}), {mode}"
            self._audit(execution_id, runbook.id, ALERTMANAGER, "started", comment=note)
            if problem:
                self._audit(execution_id, runbook.id, SYSTEM, "refused", comment=problem)
        return execution_id

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
        values = self._params(runbook, params, from_labels=False)
        lock_key = None if dry_run else self._lock_key(runbook, values)
        execution_id = self._create(
            runbook,
            params=values,
            mode="manual",
            started_by=started_by,
            dry_run=dry_run,
            alert=None,
            lock_key=lock_key,
            claim=None,
            failed="",
        )
        assert execution_id is not None  # no claim: nothing can conflict
        self._audit(
            execution_id, runbook.id, started_by, "started", comment="dry run" if dry_run else ""
        )
        return execution_id

    def _params(
        self, runbook: Runbook, given: Mapping[str, Any], *, from_labels: bool
    ) -> dict[str, Any]:
        if not from_labels:
            declared = {p.name for p in runbook.params}
            for name in given:
                if name not in declared:
                    raise ParamError(name, f"runbook {runbook.id} has no such parameter")
        settings = {"settings": settings_view(self.settings)}
        values: dict[str, Any] = {}
        for param in runbook.params:
            key = param.alert_label if from_labels else param.name
            raw = given.get(key)
            if raw is None or raw == "":
                if param.default is None:
                    if param.required:
                        raise ParamError(param.name, "is required and has no default")
                    values[param.name] = None
                    continue
                raw = render(param.default, settings)
            values[param.name] = param.coerce(raw)
        return values

    def defaults(self, runbook: Runbook) -> dict[str, Any]:
        """Each parameter's default as a run would get it (settings filled in)."""
        scope = {"settings": settings_view(self.settings)}
        out: dict[str, Any] = {}
        for param in runbook.params:
            try:
                out[param.name] = render(param.default, scope)
            except ExpressionError:
                out[param.name] = param.default
        return out

    def _lock_key(self, runbook: Runbook, params: Mapping[str, Any]) -> str | None:
        if runbook.lock is None:
            return None
        target = render(runbook.lock, {"params": params, "settings": settings_view(self.settings)})
        return f"lock:{runbook.id}:{target}"

    def _create(
        self,
        runbook: Runbook,
        *,
        params: Mapping[str, Any],
        mode: Mode,
        started_by: str,
        dry_run: bool,
        alert: Alert | None,
        lock_key: str | None,
        claim: str | None,
        failed: str,
    ) -> str | None:
        now = self.now()
        execution_id = secrets.token_hex(8)
        status = ExecutionStatus.FAILED if failed else ExecutionStatus.PENDING
        row = {
            "id": execution_id,
            "runbook_id": runbook.id,
            "title": runbook.title,
            "status": status.value,
            "mode": mode,
            "dry_run": dry_run,
            "params": params,
            "started_by": started_by,
            "alert_fingerprint": alert.fingerprint if alert else None,
            "alert_name": alert.name if alert else None,
            "source": runbook.source,
            "path": runbook.path,
            "lock_key": lock_key,
            "reason": failed,
            "cursor": 0,
            "created_at": now,
            "finished_at": now if failed else None,
        }
        steps = [
            {
                "step_id": s.id,
                "position": n,
                "kind": s.kind,
                "title": s.label,
                "status": StepStatus.PENDING.value,
                "inputs": {},
                "outputs": {},
                "plan": [],
                "error": "",
                "attempts": 0,
                "comment": "",
            }
            for n, s in enumerate(runbook.steps)
        ]
        if not self.store.create(row, steps, claim):
            return None
        self._wake.set()
        return execution_id

    # -- people ---------------------------------------------------------------------------------

    def approve(self, execution_id: str, *, by: str, comment: str = "") -> None:
        """Approve the waiting step (or confirm a manual one); the run goes on."""
        record = self.store.record(execution_id)
        execution = record.execution
        step = self._waiting(execution)
        now = self.now()
        assert step.approval is not None
        if step.approval.expires_at <= now:
            self._expire(execution_id, step.step_id)
            raise ApprovalExpired(
                f"the approval request for step {step.step_id!r} expired at "
                f"{step.approval.expires_at:%Y-%m-%d %H:%M:%S} UTC; the run failed"
            )
        if step.kind != "manual" and execution.mode == "manual" and by == execution.started_by:
            self._audit(
                execution_id,
                execution.runbook_id,
                by,
                "approval-refused",
                step.step_id,
                "who started a run cannot approve it alone",
            )
            raise SelfApproval(
                f"{by} started this run and cannot approve it alone: a second operator must"
            )
        decision = "confirmed" if step.kind == "manual" else "approved"
        done = self.store.decide(
            execution_id,
            step.step_id,
            to=ExecutionStatus.RUNNING,
            step_values={
                "decision": decision,
                "decided_by": by,
                "decided_at": now,
                "comment": comment,
            },
            values={"reason": f"step {step.step_id!r} {decision} by {by}", "owner": None},
        )
        if not done:
            raise Refused("the execution changed meanwhile (decided, cancelled or expired)")
        self._audit(execution_id, execution.runbook_id, by, decision, step.step_id, comment)
        self._wake.set()

    def reject(self, execution_id: str, *, by: str, comment: str = "") -> None:
        """Refuse the waiting step; the run ends, cancelled, saying who refused and why."""
        execution = self.store.get(execution_id)
        step = self._waiting(execution)
        now = self.now()
        said = f": {comment}" if comment else ""
        done = self.store.decide(
            execution_id,
            step.step_id,
            to=ExecutionStatus.CANCELLED,
            step_values={
                "status": StepStatus.REJECTED.value,
                "decision": "rejected",
                "decided_by": by,
                "decided_at": now,
                "comment": comment,
                "finished_at": now,
            },
            values={
                "reason": f"step {step.step_id!r} rejected by {by}{said}",
                "finished_at": now,
                "owner": None,
            },
        )
        if not done:
            raise Refused("the execution changed meanwhile (decided, cancelled or expired)")
        self._audit(execution_id, execution.runbook_id, by, "rejected", step.step_id, comment)
        self._wake.set()

    def cancel(self, execution_id: str, *, by: str, comment: str = "") -> None:
        """End a run: at once if no step is running, else right after the step in flight."""
        execution = self.store.get(execution_id)
        if execution.status.final:
            raise Refused(f"the execution already ended: {execution.status.value}")
        said = f": {comment}" if comment else ""
        self._stop(execution, f"cancelled by {by}{said}", actor=by, comment=comment)

    def _stop(self, execution: Execution, reason: str, *, actor: str, comment: str = "") -> None:
        now = self.now()
        waiting = execution.waiting_step
        closed = self.store.update(
            execution.id,
            held_by=None,
            statuses=OPEN_STATUSES,
            status=ExecutionStatus.CANCELLED.value,
            reason=reason,
            finished_at=now,
            stop_reason=None,
        )
        if closed:
            if waiting is not None:
                self.store.update_step(
                    execution.id,
                    waiting.step_id,
                    held_by=None,
                    status=StepStatus.CANCELLED.value,
                    finished_at=now,
                )
            self._audit(execution.id, execution.runbook_id, actor, "cancelled", comment=reason)
            return
        # A worker is in the middle of a step: it ends the run once that step is done.
        from watchtower.runbook.store import ANY_OWNER

        self.store.update(
            execution.id, held_by=ANY_OWNER, statuses=OPEN_STATUSES, stop_reason=reason
        )
        self._audit(execution.id, execution.runbook_id, actor, "cancel-requested", comment=reason)
        self._wake.set()

    def alert_resolved(self, fingerprint: str, *, at: datetime) -> None:
        """Record the resolution on the alert's open runs, and close those no longer needed."""
        from watchtower.runbook.store import ANY_OWNER

        for execution_id in self.store.open_ids(fingerprint=fingerprint):
            self.store.update(
                execution_id, held_by=ANY_OWNER, statuses=OPEN_STATUSES, resolved_at=at
            )
            execution = self.store.get(execution_id)
            when = at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            self._audit(
                execution_id, execution.runbook_id, ALERTMANAGER, "alert-resolved", comment=when
            )
            if not execution.status.final:
                self._stop(
                    execution,
                    f"no longer needed: the alert resolved at {when}",
                    actor=ALERTMANAGER,
                )

    def _waiting(self, execution: Execution) -> StepRun:
        step = execution.waiting_step
        if execution.status is not ExecutionStatus.WAITING or step is None:
            raise Refused(
                f"execution {execution.id} is {execution.status.value}, not waiting for approval"
            )
        return step

    # -- reading --------------------------------------------------------------------------------

    def get(self, execution_id: str) -> Execution:
        return self.store.get(execution_id)

    def list(self, limit: int = 50, *, runbook_id: str | None = None) -> list[Execution]:
        """Newest first."""
        return self.store.list(limit, runbook_id=runbook_id)

    def audit(self, execution_id: str | None = None) -> builtins.list[AuditEntry]:
        return self.store.audit_entries(execution_id)

    # -- the worker -----------------------------------------------------------------------------

    def start_worker(self) -> None:
        if self._dispatcher is not None:
            return
        self._stopping.clear()
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="runbook")
        self._dispatcher = threading.Thread(
            target=self._dispatch_forever, name="runbook-dispatcher", daemon=True
        )
        self._dispatcher.start()

    def stop_worker(self, timeout: float = 10.0) -> None:
        """Stop taking runs; runs in hand stop after their current step (others take them up)."""
        if self._dispatcher is None:
            return
        self._stopping.set()
        self._wake.set()
        self._dispatcher.join(timeout)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            deadline = time.monotonic() + timeout
            while self._busy and time.monotonic() < deadline:
                time.sleep(0.02)
        self._dispatcher = None
        self._pool = None

    @property
    def running(self) -> bool:
        return self._dispatcher is not None and self._dispatcher.is_alive()

    def _dispatch_forever(self) -> None:
        while not self._stopping.is_set():
            try:
                self._dispatch_once()
            except Exception:  # the store down must not kill the worker
                log.exception("runbook dispatcher pass failed")
            self._wake.wait(self.poll_seconds)
            self._wake.clear()

    def _dispatch_once(self) -> None:
        self.expire_approvals()
        with self._busy_lock:
            busy = set(self._busy)
        free = self.workers - len(busy)
        if free <= 0 or self._pool is None:
            return
        for execution_id in self.store.runnable(stale_before=self._stale(), limit=free + len(busy)):
            if free <= 0:
                break
            if execution_id in busy or not self._take(execution_id):
                continue
            with self._busy_lock:
                self._busy.add(execution_id)
            free -= 1
            self._pool.submit(self._advance_then_release, execution_id)

    def _advance_then_release(self, execution_id: str) -> None:
        try:
            self._advance(execution_id)
        finally:
            with self._busy_lock:
                self._busy.discard(execution_id)
            self._wake.set()

    def run_pending(self, *, max_passes: int = 1000) -> int:
        """Advance every runnable run in this thread until each waits or ends (CLI and tests).

        Returns how many times a run moved on.
        """
        moved = 0
        for _ in range(max_passes):
            self.expire_approvals()
            progressed = False
            for execution_id in self.store.runnable(stale_before=self._stale(), limit=100):
                with self._busy_lock:
                    if execution_id in self._busy:
                        continue
                if self._take(execution_id) and self._advance(execution_id):
                    progressed = True
                    moved += 1
            if not progressed:
                break
        return moved

    def expire_approvals(self) -> int:
        expired = self.store.expired(now=self.now())
        for execution_id, step_id in expired:
            self._expire(execution_id, step_id)
        return len(expired)

    def _expire(self, execution_id: str, step_id: str) -> None:
        now = self.now()
        execution = self.store.get(execution_id)
        done = self.store.decide(
            execution_id,
            step_id,
            to=ExecutionStatus.FAILED,
            step_values={
                "status": StepStatus.EXPIRED.value,
                "decision": "expired",
                "decided_at": now,
                "finished_at": now,
            },
            values={
                "reason": f"nobody answered the approval request of step {step_id!r} in time",
                "finished_at": now,
                "owner": None,
            },
        )
        if done:
            self._audit(execution_id, execution.runbook_id, SYSTEM, "expired", step_id)

    def _stale(self) -> datetime:
        return self.now() - self.lease

    def _take(self, execution_id: str) -> bool:
        return self.store.take(
            execution_id, owner=self.worker_id, now=self.now(), stale_before=self._stale()
        )

    # -- advancing one run ----------------------------------------------------------------------

    def _advance(self, execution_id: str) -> bool:
        """Run this (taken) execution's steps until it waits, ends or we must stop."""
        with self._heartbeat(execution_id):
            return self._advance_held(execution_id)

    @contextlib.contextmanager
    def _heartbeat(self, execution_id: str) -> Iterator[None]:
        """Tell other workers, while this run is advanced here, that its worker is alive."""
        stop = threading.Event()
        every = max(self.lease.total_seconds() / 4, 0.05)

        def beat() -> None:
            while not stop.wait(every):
                try:
                    self.store.heartbeat(owner=self.worker_id, ids=[execution_id], now=self.now())
                except Exception:  # the next beat may get through; the lease allows for three
                    log.exception("heartbeat of execution %s failed", execution_id)

        thread = threading.Thread(target=beat, name="runbook-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def _advance_held(self, execution_id: str) -> bool:
        moved = False
        try:
            while True:
                record = self.store.record(execution_id)
                execution = record.execution
                if record.owner != self.worker_id or execution.status.final:
                    return moved
                if self._stopping.is_set():
                    self._release(record)
                    return moved
                if record.stop_reason:
                    self._finish(record, ExecutionStatus.CANCELLED, record.stop_reason)
                    self._audit(
                        execution_id,
                        execution.runbook_id,
                        SYSTEM,
                        "cancelled",
                        comment=record.stop_reason,
                    )
                    return True
                try:
                    runbook = self._snapshot(record)
                except RunbookError as exc:
                    self._finish(record, ExecutionStatus.FAILED, f"the runbook is invalid: {exc}")
                    return True
                if execution.status is ExecutionStatus.PENDING:
                    if not self._begin(record):
                        return moved
                    moved = True
                    continue
                if record.cursor >= len(runbook.steps):
                    self._complete(record)
                    return True
                outcome = self._step(record, runbook, runbook.steps[record.cursor])
                moved = True
                if outcome != "next":
                    return moved
        except _LostOwnership:
            log.warning("execution %s was taken over by another worker", execution_id)
            return moved
        except Exception as exc:
            log.exception("execution %s failed inside the engine", execution_id)
            try:
                record = self.store.record(execution_id)
                self._finish(record, ExecutionStatus.FAILED, f"engine error: {_said(exc)}")
            except Exception:
                log.exception("could not record the failure of execution %s", execution_id)
            return True

    def _snapshot(self, record: Record) -> Runbook:
        execution_id = record.execution.id
        if execution_id not in self._snapshots:
            if len(self._snapshots) > 256:
                self._snapshots.clear()
            self._snapshots[execution_id] = parse_source(
                record.source, path=record.path, catalog=self.catalog
            )
        return self._snapshots[execution_id]

    def _begin(self, record: Record) -> bool:
        """pending -> running, once the run holds its lock (a dry run takes none)."""
        execution = record.execution
        key = execution.lock_key
        if key is not None and not self.store.claim(key, execution_id=execution.id, now=self.now()):
            holder = self.store.holder(key)
            target = key.split(":", 2)[-1]
            self._update(
                record,
                reason=f"waiting: execution {holder} of {execution.runbook_id} holds the lock on "
                f"{target}",
                owner=None,
            )
            return False
        self._update(
            record,
            statuses=(ExecutionStatus.PENDING,),
            status=ExecutionStatus.RUNNING.value,
            started_at=self.now(),
            reason="",
        )
        return True

    def _release(self, record: Record) -> None:
        self.store.update(record.execution.id, held_by=self.worker_id, owner=None)

    def _update(
        self,
        record: Record,
        *,
        statuses: tuple[ExecutionStatus, ...] | None = None,
        **values: Any,
    ) -> None:
        if not self.store.update(
            record.execution.id, held_by=self.worker_id, statuses=statuses, **values
        ):
            raise _LostOwnership

    def _update_step(self, record: Record, step_id: str, **values: Any) -> None:
        if not self.store.update_step(
            record.execution.id, step_id, held_by=self.worker_id, **values
        ):
            raise _LostOwnership

    def _finish(self, record: Record, status: ExecutionStatus, reason: str) -> None:
        self.store.update(
            record.execution.id,
            held_by=self.worker_id,
            statuses=OPEN_STATUSES,
            status=status.value,
            reason=reason,
            finished_at=self.now(),
            owner=None,
            stop_reason=None,
        )
        self._snapshots.pop(record.execution.id, None)

    def _complete(self, record: Record) -> None:
        execution = record.execution
        failed = [s for s in execution.steps if s.status is StepStatus.FAILED]
        if execution.dry_run:
            if failed:
                names = ", ".join(s.step_id for s in failed)
                self._finish(record, ExecutionStatus.FAILED, f"dry run: steps {names} would fail")
            else:
                planned = sum(s.status is StepStatus.PLANNED for s in execution.steps)
                self._finish(
                    record,
                    ExecutionStatus.SUCCEEDED,
                    f"dry run: every parameter resolved; {planned} steps planned, nothing changed",
                )
            return
        if failed:
            names = ", ".join(s.step_id for s in failed)
            self._finish(
                record, ExecutionStatus.SUCCEEDED, f"done; went on past failed steps: {names}"
            )
        else:
            self._finish(record, ExecutionStatus.SUCCEEDED, "done")

    def _step(self, record: Record, runbook: Runbook, step: Step) -> Outcome:
        execution = record.execution
        run = execution.steps[record.cursor]
        action = self.catalog.actions.get(step.target) if step.kind == "action" else None
        if run.status is StepStatus.RUNNING:
            # Taken over from a worker that stopped while this step ran.
            if reads(step, action):
                # A read is safe to run again: from the start, inputs resolved afresh.
                self._audit(execution.id, runbook.id, SYSTEM, "resumed", step.id)
                self._update_step(record, step.id, status=StepStatus.PENDING.value)
                return "next"
            error = (
                "interrupted: Watchtower stopped while this step ran; it may or may not have "
                "taken effect, so it is not repeated"
            )
            self._update_step(
                record, step.id, status=StepStatus.FAILED.value, error=error, finished_at=self.now()
            )
            self._audit(execution.id, runbook.id, SYSTEM, "interrupted", step.id, error)
            self._finish(record, ExecutionStatus.FAILED, f"step {step.id!r} {error}")
            return "stop"
        if run.status is StepStatus.WAITING:
            decision = run.approval.decision if run.approval else None
            if decision not in ("approved", "confirmed"):
                self._update(
                    record, status=ExecutionStatus.WAITING.value, owner=None
                )  # pragma: no cover - a waiting step is only taken once decided
                return "wait"
            if step.kind in ("approval", "manual"):
                assert run.approval is not None
                outputs = {"decision": decision, "by": run.approval.decided_by}
                return self._record_done(
                    record, runbook, step, _Done(StepStatus.SUCCEEDED, outputs)
                )
            return self._execute(record, runbook, step, dict(run.inputs))
        if run.status is not StepStatus.PENDING:
            # Its result was written but the run did not move on (a stop in between): move on.
            return self._after(record, runbook, step, run.status, run.error)

        namespace = self._namespace(execution)
        if step.when is not None:
            try:
                go = bool(evaluate(step.when, namespace))
            except ExpressionError as exc:
                return self._record_done(
                    record, runbook, step, _Done(StepStatus.FAILED, {}, f"when: {exc}")
                )
            if not go:
                note = f"skipped: when {step.when} is false"
                self._update_step(
                    record,
                    step.id,
                    status=StepStatus.SKIPPED.value,
                    error=note,
                    finished_at=self.now(),
                )
                return self._move(record, record.cursor + 1)
        if execution.dry_run and step.dry_run == "skip":
            self._update_step(
                record,
                step.id,
                status=StepStatus.SKIPPED.value,
                error="skipped in a dry run (dry_run: skip)",
                finished_at=self.now(),
            )
            return self._move(record, record.cursor + 1)
        try:
            inputs = self._inputs(step, action, namespace)
        except (ExpressionError, ParamError) as exc:
            self._update_step(record, step.id, started_at=self.now())
            return self._record_done(record, runbook, step, _Done(StepStatus.FAILED, {}, str(exc)))
        if execution.dry_run and not (reads(step, action) and step.dry_run != "plan"):
            return self._plan_only(record, runbook, step, action, inputs, namespace)
        if needs_approval(step, action, execution.mode):
            return self._ask(record, runbook, step, action, inputs)
        return self._execute(record, runbook, step, inputs)

    def _namespace(self, execution: Execution) -> dict[str, Any]:
        steps: dict[str, Any] = {}
        for run in execution.steps:
            entry = dict(run.outputs)
            entry["state"] = run.status.value
            entry["passed"] = run.status is StepStatus.SUCCEEDED
            steps[run.step_id] = entry
        return {
            "params": dict(execution.params),
            "settings": settings_view(self.settings),
            "steps": steps,
            "alert": {
                "name": execution.alert_name or "",
                "fingerprint": execution.alert_fingerprint or "",
            },
            "execution": {
                "id": execution.id,
                "mode": execution.mode,
                "dry_run": execution.dry_run,
                "started_by": execution.started_by,
            },
        }

    def _inputs(
        self, step: Step, action: Action | None, namespace: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The step's inputs resolved and checked: what runs, and what an approver sees."""
        if step.kind == "check":
            values = render(dict(step.with_), namespace)
            out: dict[str, Any] = {}
            for key, value in values.items():
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ParamError(key, f"a check parameter must be a number, not {value!r}")
                out[key] = float(value)
            return {"check": step.target, "params": out}
        if step.kind == "query":
            kind, spec = next(iter(step.target.items()))
            if kind == "promql":
                return {"promql": _promql(spec, namespace)}
            if kind == "sql":
                return {"sql": spec, "params": render(dict(step.with_), namespace)}
            rendered = render(spec, namespace)
            if kind == "logs":
                rendered.setdefault("group", self.settings.log_group)
            return {kind: rendered}
        if step.kind == "action":
            assert action is not None
            return action.validate(render(dict(step.with_), namespace))
        return {"text": render(step.target, namespace)}

    def _plan_only(
        self,
        record: Record,
        runbook: Runbook,
        step: Step,
        action: Action | None,
        inputs: dict[str, Any],
        namespace: Mapping[str, Any],
    ) -> Outcome:
        """Dry run: what the step would do, with every parameter resolved; no side effect."""
        started = self.now()
        plan: list[dict[str, Any]] = []
        outputs: dict[str, Any] = {"dry_run": True}
        error = ""
        try:
            if action is not None:
                ctx = self._context(record.execution, step.id)
                plan = [c.as_json() for c in action.plan(inputs, ctx)]
                outputs.update(self._planned_verification(step, namespace))
            elif step.kind in ("approval", "manual"):
                who = "a second operator's approval" if step.kind == "approval" else "a person"
                outputs["would_wait_for"] = who
        except Exception as exc:
            error = _said(exc)
        self._update_step(
            record,
            step.id,
            status=(StepStatus.FAILED if error else StepStatus.PLANNED).value,
            inputs=inputs,
            plan=plan,
            outputs=outputs,
            error=error,
            started_at=started,
            finished_at=self.now(),
        )
        return self._move(record, record.cursor + 1)

    def _planned_verification(self, step: Step, namespace: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if step.post_check is not None:
            out["post_check"] = {
                "kind": step.post_check.kind,
                "target": step.post_check.target,
                "expect": step.post_check.expect,
            }
        if step.compensate is not None:
            out["compensate"] = {"action": step.compensate.action}
        return out

    def _ask(
        self,
        record: Record,
        runbook: Runbook,
        step: Step,
        action: Action | None,
        inputs: dict[str, Any],
    ) -> Outcome:
        """Stop at this step until a person approves (or confirms) it."""
        execution = record.execution
        now = self.now()
        if execution.resolved_at is not None:
            reason = "no longer needed: the alert resolved before this step was approved"
            self._finish(record, ExecutionStatus.CANCELLED, reason)
            self._audit(execution.id, runbook.id, SYSTEM, "cancelled", step.id, reason)
            return "stop"
        plan: list[dict[str, Any]] = []
        outputs: dict[str, Any] = {}
        if action is not None:
            try:
                plan = [c.as_json() for c in action.plan(inputs, self._context(execution, step.id))]
            except Exception as exc:
                return self._record_done(
                    record,
                    runbook,
                    step,
                    _Done(StepStatus.FAILED, {}, f"could not prepare the call: {_said(exc)}"),
                )
            outputs = self._planned_verification(step, {})
        self._update_step(
            record,
            step.id,
            status=StepStatus.WAITING.value,
            inputs=inputs,
            plan=plan,
            outputs=outputs,
            requested_at=now,
            expires_at=now + self.approval_timeout,
        )
        what = {"manual": "confirmation", "approval": "approval"}.get(step.kind, "approval")
        self._update(
            record,
            status=ExecutionStatus.WAITING.value,
            reason=f"waiting for {what} of step {step.id!r}",
            owner=None,
        )
        self._audit(execution.id, runbook.id, SYSTEM, "approval-requested", step.id)
        return "wait"

    def _execute(
        self, record: Record, runbook: Runbook, step: Step, inputs: dict[str, Any]
    ) -> Outcome:
        execution = record.execution
        action = self.catalog.actions.get(step.target) if step.kind == "action" else None
        run = execution.steps[record.cursor]
        started = self.now()
        self._update_step(
            record,
            step.id,
            status=StepStatus.RUNNING.value,
            inputs=inputs,
            started_at=started,
            attempts=run.attempts + 1,
            error="",
        )
        tries = 1 + (step.retries if reads(step, action) else 0)
        outputs: dict[str, Any] = {}
        error = ""
        for attempt in range(tries):
            if attempt:
                self._stopping.wait(self.retry_delay * attempt)
                self._update_step(record, step.id, attempts=run.attempts + 1 + attempt)
            try:
                outputs = _plain(
                    _with_timeout(
                        lambda: self._perform(step, action, inputs, execution), step.timeout
                    )
                )
                error = ""
                break
            except Exception as exc:
                error = _said(exc)
        if error:
            return self._record_done(record, runbook, step, _Done(StepStatus.FAILED, {}, error))
        namespace = self._namespace(execution)
        if step.expect is not None:
            held, why = _judge(step.expect, namespace, outputs)
            if not held:
                return self._record_done(
                    record, runbook, step, _Done(StepStatus.FAILED, outputs, why)
                )
        if step.post_check is not None:
            verified, evidence = self._verify(step, execution, namespace, outputs)
            outputs["post_check"] = evidence
            if not verified:
                why = f"post-check failed: {evidence.get('error', 'its expectation did not hold')}"
                if step.compensate is not None:
                    compensation = self._compensate(step, execution, namespace, outputs)
                    outputs["compensation"] = compensation
                    if compensation["ok"]:
                        why += f"; compensated by {step.compensate.action}"
                    else:
                        why += (
                            f"; the compensation {step.compensate.action} failed too: "
                            f"{compensation['error']}"
                        )
                    self._audit(
                        execution.id,
                        runbook.id,
                        SYSTEM,
                        "compensated" if compensation["ok"] else "compensation-failed",
                        step.id,
                        why,
                    )
                return self._record_done(
                    record, runbook, step, _Done(StepStatus.FAILED, outputs, why)
                )
        return self._record_done(record, runbook, step, _Done(StepStatus.SUCCEEDED, outputs))

    def _perform(
        self, step: Step, action: Action | None, inputs: Mapping[str, Any], execution: Execution
    ) -> dict[str, Any]:
        now = self.now()
        if step.kind == "check":
            return _result(self.checks.run_check(step.target, inputs["params"], now=now))
        if step.kind == "query":
            if "promql" in inputs:
                return self.queries.promql(inputs["promql"], now=now)
            if "cloudwatch" in inputs:
                return self.queries.cloudwatch(inputs["cloudwatch"], now=now)
            if "logs" in inputs:
                return self.queries.logs(inputs["logs"], now=now)
            return self.queries.sql(inputs["sql"], inputs["params"])
        assert action is not None
        return action.run(inputs, self._context(execution, step.id))

    def _verify(
        self,
        step: Step,
        execution: Execution,
        namespace: Mapping[str, Any],
        outputs: Mapping[str, Any],
    ) -> tuple[bool, dict[str, Any]]:
        check = step.post_check
        assert check is not None
        scope = {**namespace, "this": dict(outputs)}
        evidence: dict[str, Any] = {
            "kind": check.kind,
            "target": check.target,
            "expect": check.expect,
        }
        error = ""
        for attempt in range(check.attempts):
            if attempt:
                # Not cut short by a shutdown: a verification stopped early would count as failed
                # and compensate a change that was right. A worker that dies here leaves the step
                # in flight, and the run is failed as interrupted, never undone blindly.
                time.sleep(check.delay)
            evidence["attempts"] = attempt + 1
            try:
                values = render(dict(check.with_), scope)
                if check.kind == "check":
                    numbers = {k: float(v) for k, v in values.items()}
                    seen = _result(self.checks.run_check(check.target, numbers, now=self.now()))
                else:
                    action = self.catalog.actions[check.target]
                    seen = _plain(
                        action.run(action.validate(values), self._context(execution, step.id))
                    )
                evidence["outputs"] = seen
                held, error = _judge(check.expect, scope, seen)
                if held:
                    evidence["held"] = True
                    return True, evidence
            except Exception as exc:
                error = _said(exc)
        evidence["held"] = False
        evidence["error"] = error
        return False, evidence

    def _compensate(
        self,
        step: Step,
        execution: Execution,
        namespace: Mapping[str, Any],
        outputs: Mapping[str, Any],
    ) -> dict[str, Any]:
        compensate = step.compensate
        assert compensate is not None
        action = self.catalog.actions[compensate.action]
        try:
            inputs = action.validate(
                render(dict(compensate.with_), {**namespace, "this": dict(outputs)})
            )
            ctx = self._context(execution, step.id)
            result = _plain(_with_timeout(lambda: action.run(inputs, ctx), step.timeout))
        except Exception as exc:
            return {"action": compensate.action, "ok": False, "error": _said(exc)}
        return {"action": compensate.action, "ok": True, "inputs": inputs, "outputs": result}

    def _record_done(self, record: Record, runbook: Runbook, step: Step, done: _Done) -> Outcome:
        self._update_step(
            record,
            step.id,
            status=done.status.value,
            outputs=done.outputs,
            error=done.error,
            finished_at=self.now(),
        )
        return self._after(record, runbook, step, done.status, done.error)

    def _after(
        self, record: Record, runbook: Runbook, step: Step, status: StepStatus, error: str
    ) -> Outcome:
        """Where the run goes after a step ended with `status`."""
        position = runbook.position(step.id)
        if status is not StepStatus.FAILED or record.execution.dry_run:
            return self._move(record, position + 1)
        if step.on_failure == "continue":
            return self._move(record, position + 1)
        if step.on_failure == "abort":
            self._finish(record, ExecutionStatus.FAILED, f"step {step.id!r} failed: {error}")
            return "stop"
        target = runbook.position(step.on_failure)
        for passed in runbook.steps[position + 1 : target]:
            self._update_step(
                record,
                passed.id,
                status=StepStatus.SKIPPED.value,
                error=f"passed over: {step.id} failed and its on_failure goes to {step.on_failure}",
            )
        return self._move(record, target)

    def _move(self, record: Record, cursor: int) -> Outcome:
        self._update(record, cursor=cursor)
        return "next"

    def _context(self, execution: Execution, step_id: str) -> ActionContext:
        def record(kind: str, detail: Mapping[str, Any]) -> None:
            comment = ", ".join(f"{k}={v}" for k, v in detail.items())
            self._audit(execution.id, execution.runbook_id, SYSTEM, kind, step_id, comment)

        return ActionContext(
            settings=self.settings,
            aws=self.aws,
            redis=self.redis,
            cutover=self.cutover,
            now=self.now(),
            execution_id=execution.id,
            step_id=step_id,
            record=record,
        )

    def _audit(
        self,
        execution_id: str,
        runbook_id: str,
        actor: str,
        action: str,
        step_id: str | None = None,
        comment: str = "",
    ) -> None:
        self.store.audit(
            AuditEntry(
                at=self.now(),
                execution_id=execution_id,
                runbook_id=runbook_id,
                actor=actor,
                action=action,
                step_id=step_id,
                comment=comment,
            )
        )


# -- helpers (pure) --------------------------------------------------------------------------


def _promql(text: str, namespace: Mapping[str, Any]) -> str:
    """PromQL with `${...}` filled in; a value that is not a plain name or number is refused, so
    a parameter can never change the query's shape."""

    def safe(value: Any) -> str:
        shown = str(value) if not isinstance(value, bool) else str(value).lower()
        if not shown or not set(shown) <= PROMQL_SAFE:
            raise ExpressionError(
                f"{shown!r} cannot go into a PromQL query (letters, digits, _ . : / - only)"
            )
        return shown

    return str(render(text, namespace, text_of=safe))


def _judge(
    expect: str, namespace: Mapping[str, Any], outputs: Mapping[str, Any]
) -> tuple[bool, str]:
    """Whether `expect` holds over the step's outputs (and figures), and if not, what was seen."""
    scope = {**namespace, **_flat(outputs)}
    try:
        held = bool(evaluate(expect, scope))
    except ExpressionError as exc:
        return False, f"expect: {exc}"
    if held:
        return True, ""
    names = sorted(compile_expression(expect).names())
    seen = ", ".join(f"{n}={scope[n]!r}" for n in names if n in scope and n not in namespace)
    return False, f"expected {expect}" + (f"; saw {seen}" if seen else "")


def _flat(outputs: Mapping[str, Any]) -> dict[str, Any]:
    """Outputs as names an `expect:` reads: a check's figures are names of their own."""
    scope = dict(outputs)
    figures = outputs.get("figures")
    if isinstance(figures, dict):
        scope = {**figures, **scope}
    return scope


def _result(result: Result) -> dict[str, Any]:
    return {
        "status": result.status.value,
        "reason": result.reason,
        "figures": dict(result.figures),
        "thresholds": dict(result.thresholds),
        "observed_at": result.observed_at.isoformat(),
    }


def _plain(value: Any) -> Any:
    """JSON-safe data."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _with_timeout(fn: Callable[[], Any], seconds: float) -> Any:
    """Run `fn` on its own thread; give up waiting after `seconds`.

    Python cannot stop a thread: a call that hangs is left to finish (or fail) on its own, and
    its result is dropped. Clients have their own timeouts, so it does not hang forever.
    """
    box: dict[str, Any] = {}
    done = threading.Event()

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=target, name="runbook-step", daemon=True).start()
    if not done.wait(seconds):
        raise StepTimeout(f"timed out after {seconds:g}s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _said(exc: BaseException) -> str:
    if isinstance(exc, WatchtowerError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
