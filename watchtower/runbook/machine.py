"""The runbook engine's state machine: a run, an event and the time in; the new state and the
audit entries out.

Pure: no store, no clock, no thread, no client. Each function takes the run as it is (a
`Record`) and returns a `Transition`: what changes on the run and its steps (`RunChange`,
`StepChange`, which the store writes in one transaction), the run as it is afterwards, the audit
entries to append, the statuses the run must still be in for the change to apply, and where the
worker goes next. A move `model.TRANSITIONS` does not allow is refused (`Refused`), never
written. The rules themselves are in `watchtower.runbook.engine`'s docstring.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from watchtower.runbook.errors import ApprovalExpired, Refused, RunbookError, SelfApproval
from watchtower.runbook.model import (
    KEEP,
    LOCK_WAIT,
    OPEN_STATUSES,
    Approval,
    AuditEntry,
    Execution,
    ExecutionStatus,
    Mode,
    Record,
    Runbook,
    RunChange,
    Step,
    StepChange,
    StepRun,
    StepStatus,
    allowed,
)

if TYPE_CHECKING:
    from watchtower.runbook.actions.base import Action

SYSTEM = "watchtower"
ALERTMANAGER = "alertmanager"
CHANGED_MEANWHILE = "the execution changed meanwhile (decided, cancelled or expired)"

Outcome = Literal["next", "wait", "stop"]
StepChanges = tuple[tuple[str, StepChange], ...]


@dataclass(frozen=True, kw_only=True)
class Transition:
    """One move of the machine."""

    record: Record  # the run afterwards
    run: RunChange = field(default_factory=RunChange)
    steps: StepChanges = ()
    audit: tuple[AuditEntry, ...] = ()
    requires: tuple[ExecutionStatus, ...] | None = None  # applies only from these statuses
    strict: bool = True  # False: the audit entries are written even when the change did not apply
    outcome: Outcome = "next"  # for the worker: go on, wait for someone, or stop
    refusal: RunbookError | None = None  # raised to the person who asked, once applied

    @property
    def writes(self) -> bool:
        return not self.run.empty or bool(self.steps)


def needs_approval(step: Step, action: Action | None, mode: Mode) -> bool:
    """Whether a person must approve this step before it runs (the rule in the engine's doc)."""
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


# -- applying a change (what the store does to its rows, done to the values) ----------------------


def applied(record: Record, run: RunChange, steps: StepChanges = ()) -> Record:
    """The run after `run` and `steps` are applied to it."""
    execution = record.execution
    runs = []
    for step_run in execution.steps:
        for step_id, change in steps:
            if step_id == step_run.step_id:
                step_run = _step_applied(step_run, change)
        runs.append(step_run)
    execution = replace(
        execution,
        status=_pick(run.status, execution.status),
        reason=_pick(run.reason, execution.reason),
        started_at=_pick(run.started_at, execution.started_at),
        finished_at=_pick(run.finished_at, execution.finished_at),
        resolved_at=_pick(run.resolved_at, execution.resolved_at),
        steps=tuple(runs),
    )
    return replace(
        record,
        execution=execution,
        cursor=_pick(run.cursor, record.cursor),
        owner=record.owner if run.owner is KEEP else run.owner,
        stop_reason=record.stop_reason if run.stop_reason is KEEP else run.stop_reason,
    )


def _step_applied(step: StepRun, change: StepChange) -> StepRun:
    approval = step.approval
    if change.requested_at is not None:
        approval = Approval(
            requested_at=change.requested_at,
            expires_at=_pick(change.expires_at, change.requested_at),
        )
    if approval is not None:
        approval = replace(
            approval,
            decision=_pick(change.decision, approval.decision),
            decided_by=_pick(change.decided_by, approval.decided_by),
            decided_at=_pick(change.decided_at, approval.decided_at),
            comment=_pick(change.comment, approval.comment),
        )
    return replace(
        step,
        status=_pick(change.status, step.status),
        inputs=_pick(change.inputs, step.inputs),
        outputs=_pick(change.outputs, step.outputs),
        plan=_pick(change.plan, step.plan),
        error=_pick(change.error, step.error),
        attempts=_pick(change.attempts, step.attempts),
        started_at=_pick(change.started_at, step.started_at),
        finished_at=_pick(change.finished_at, step.finished_at),
        approval=approval,
    )


def _pick(new: Any, old: Any) -> Any:
    return old if new is None else new


def _move(
    record: Record,
    run: RunChange | None = None,
    steps: StepChanges = (),
    audit: Sequence[AuditEntry] = (),
    **kw: Any,
) -> Transition:
    run = run or RunChange()
    before = record.execution.status
    to = run.status
    if to is not None and (before.final or to is not before) and not allowed(before, to):
        raise Refused(f"execution {record.execution.id} cannot go from {before} to {run.status}")
    return Transition(
        record=applied(record, run, steps), run=run, steps=steps, audit=tuple(audit), **kw
    )


def entry(
    record: Record, actor: str, action: str, now: datetime, step_id: str | None = None,
    comment: str = "",
) -> AuditEntry:  # fmt: skip
    """An audit entry about this run."""
    run = record.execution
    return AuditEntry(
        at=now, execution_id=run.id, runbook_id=run.runbook_id, actor=actor, action=action,
        step_id=step_id, comment=comment,
    )  # fmt: skip


# -- intake ------------------------------------------------------------------------------------


def created(
    *,
    execution_id: str,
    runbook: Runbook,
    params: Mapping[str, Any],
    mode: Mode,
    started_by: str,
    dry_run: bool,
    lock_key: str | None,
    now: datetime,
    alert_fingerprint: str | None = None,
    alert_name: str | None = None,
    note: str = "",
    refused: str = "",
) -> tuple[Record, tuple[AuditEntry, ...]]:
    """A new run, pending (or failed at once when its parameters were refused), and its audit."""
    execution = Execution(
        id=execution_id,
        runbook_id=runbook.id,
        title=runbook.title,
        status=ExecutionStatus.FAILED if refused else ExecutionStatus.PENDING,
        mode=mode,
        dry_run=dry_run,
        params=dict(params),
        started_by=started_by,
        created_at=now,
        reason=refused,
        alert_fingerprint=alert_fingerprint,
        alert_name=alert_name,
        lock_key=lock_key,
        finished_at=now if refused else None,
        steps=tuple(
            StepRun(step_id=s.id, position=n, kind=s.kind, title=s.label, status=StepStatus.PENDING)
            for n, s in enumerate(runbook.steps)
        ),
    )
    record = Record(execution=execution, source=runbook.source, path=runbook.path)
    audit = [entry(record, started_by, "started", now, comment=note)]
    if refused:
        audit.append(entry(record, SYSTEM, "refused", now, comment=refused))
    return record, tuple(audit)


# -- people ------------------------------------------------------------------------------------


def waiting(execution: Execution) -> StepRun:
    step = execution.waiting_step
    if execution.status is not ExecutionStatus.WAITING or step is None:
        raise Refused(
            f"execution {execution.id} is {execution.status.value}, not waiting for approval"
        )
    return step


def approve(record: Record, *, by: str, comment: str, now: datetime) -> Transition:
    """Approve (or confirm) the waiting step; refused when expired or approved by its starter."""
    execution = record.execution
    step = waiting(execution)
    assert step.approval is not None
    if step.approval.expires_at <= now:
        refusal = ApprovalExpired(
            f"the approval request for step {step.step_id!r} expired at "
            f"{step.approval.expires_at:%Y-%m-%d %H:%M:%S} UTC; the run failed"
        )
        return replace(expire(record, step.step_id, now=now), refusal=refusal)
    if step.kind != "manual" and execution.mode == "manual" and by == execution.started_by:
        why = "who started a run cannot approve it alone"
        return _move(
            record,
            audit=[entry(record, by, "approval-refused", now, step.step_id, why)],
            refusal=SelfApproval(
                f"{by} started this run and cannot approve it alone: a second operator must"
            ),
        )
    decision: Literal["confirmed", "approved"] = "approved"
    if step.kind == "manual":
        decision = "confirmed"
    reason = f"step {step.step_id!r} {decision} by {by}"
    change = StepChange(decision=decision, decided_by=by, decided_at=now, comment=comment)
    return _move(
        record,
        RunChange(status=ExecutionStatus.RUNNING, reason=reason, owner=None),
        ((step.step_id, change),),
        [entry(record, by, decision, now, step.step_id, comment)],
        requires=(ExecutionStatus.WAITING,),
    )


def reject(record: Record, *, by: str, comment: str, now: datetime) -> Transition:
    """Refuse the waiting step: the run ends, cancelled, saying who refused and why."""
    step = waiting(record.execution)
    said = f": {comment}" if comment else ""
    reason = f"step {step.step_id!r} rejected by {by}{said}"
    change = StepChange(
        status=StepStatus.REJECTED,
        decision="rejected",
        decided_by=by,
        decided_at=now,
        comment=comment,
        finished_at=now,
    )
    end = RunChange(status=ExecutionStatus.CANCELLED, reason=reason, finished_at=now, owner=None)
    return _move(
        record,
        end,
        ((step.step_id, change),),
        [entry(record, by, "rejected", now, step.step_id, comment)],
        requires=(ExecutionStatus.WAITING,),
    )


def expire(record: Record, step_id: str, *, now: datetime) -> Transition:
    """Nobody answered the approval request in time: the run fails."""
    reason = f"nobody answered the approval request of step {step_id!r} in time"
    change = StepChange(
        status=StepStatus.EXPIRED, decision="expired", decided_at=now, finished_at=now
    )
    end = RunChange(status=ExecutionStatus.FAILED, reason=reason, finished_at=now, owner=None)
    return _move(
        record,
        end,
        ((step_id, change),),
        [entry(record, SYSTEM, "expired", now, step_id)],
        requires=(ExecutionStatus.WAITING,),
    )


def cancel(
    record: Record, *, by: str, comment: str, now: datetime
) -> tuple[Transition, Transition]:
    """End a run: at once if no step is running, else right after the step in flight."""
    execution = record.execution
    if execution.status.final:
        raise Refused(f"the execution already ended: {execution.status.value}")
    said = f": {comment}" if comment else ""
    return stop(record, f"cancelled by {by}{said}", actor=by, now=now)


def stop(
    record: Record, reason: str, *, actor: str, now: datetime
) -> tuple[Transition, Transition]:
    """(close, ask): close a run nobody holds now; else ask its worker to stop after the step."""
    waiting_step = record.execution.waiting_step
    steps: StepChanges = ()
    if waiting_step is not None:
        cancelled = StepChange(status=StepStatus.CANCELLED, finished_at=now)
        steps = ((waiting_step.step_id, cancelled),)
    end = RunChange(
        status=ExecutionStatus.CANCELLED, reason=reason, finished_at=now, stop_reason=None
    )
    close = _move(
        record,
        end,
        steps,
        [entry(record, actor, "cancelled", now, comment=reason)],
        requires=OPEN_STATUSES,
    )
    ask = _move(
        record,
        RunChange(stop_reason=reason),
        audit=[entry(record, actor, "cancel-requested", now, comment=reason)],
        requires=OPEN_STATUSES,
    )
    return close, ask


def resolved_at(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def resolved(record: Record, *, at: datetime, now: datetime) -> Transition:
    """The alert resolved: recorded on the run (closing it is `stop`'s, if it is still open)."""
    return _move(
        record,
        RunChange(resolved_at=at),
        audit=[entry(record, ALERTMANAGER, "alert-resolved", now, comment=resolved_at(at))],
        requires=OPEN_STATUSES,
        strict=False,
    )


def no_longer_needed(at: datetime) -> str:
    return f"no longer needed: the alert resolved at {resolved_at(at)}"


# -- the worker --------------------------------------------------------------------------------


def begin(record: Record, *, free: bool, holder: str | None = None, now: datetime) -> Transition:
    """pending -> running once the run holds its lock (`free`); else it waits, saying for whom."""
    execution = record.execution
    if not free:
        target = (execution.lock_key or "").split(":", 2)[-1]
        reason = f"{LOCK_WAIT}{holder} of {execution.runbook_id} holds the lock on "
        return _move(record, RunChange(reason=reason + target, owner=None), outcome="wait")
    return _move(
        record,
        RunChange(status=ExecutionStatus.RUNNING, started_at=now, reason=""),
        requires=(ExecutionStatus.PENDING,),
    )


def undecided(record: Record) -> Transition:
    """A waiting step nobody decided on yet: the run goes back to waiting, nobody's."""
    return _move(record, RunChange(status=ExecutionStatus.WAITING, owner=None), outcome="wait")


def release(record: Record) -> Transition:
    """The worker stops: the run is nobody's until another worker takes it."""
    return _move(record, RunChange(owner=None), strict=False, outcome="stop")


def finish(
    record: Record,
    status: ExecutionStatus,
    reason: str,
    *,
    now: datetime,
    steps: StepChanges = (),
    audit: Sequence[AuditEntry] = (),
    strict: bool = False,
) -> Transition:
    return _move(
        record,
        RunChange(status=status, reason=reason, finished_at=now, owner=None, stop_reason=None),
        steps,
        audit,
        requires=OPEN_STATUSES,
        strict=strict,
        outcome="stop",
    )


def stopped(record: Record, *, now: datetime) -> Transition:
    """A cancel (or the alert's resolution) was asked while a step ran: the run ends now."""
    reason = record.stop_reason or ""
    audit = [entry(record, SYSTEM, "cancelled", now, comment=reason)]
    return finish(record, ExecutionStatus.CANCELLED, reason, now=now, audit=audit)


def complete(record: Record, *, now: datetime) -> Transition:
    """Every step is behind the run: it succeeded (a dry run fails if a step would)."""
    execution = record.execution
    failed = ", ".join(s.step_id for s in execution.steps if s.status is StepStatus.FAILED)
    if execution.dry_run:
        if failed:
            return finish(
                record, ExecutionStatus.FAILED, f"dry run: steps {failed} would fail", now=now
            )
        planned = sum(s.status is StepStatus.PLANNED for s in execution.steps)
        reason = f"dry run: every parameter resolved; {planned} steps planned, nothing changed"
        return finish(record, ExecutionStatus.SUCCEEDED, reason, now=now)
    if failed:
        reason = f"done; went on past failed steps: {failed}"
        return finish(record, ExecutionStatus.SUCCEEDED, reason, now=now)
    return finish(record, ExecutionStatus.SUCCEEDED, "done", now=now)


def taken_over(record: Record, step: Step, *, rerun: bool, now: datetime) -> Transition:
    """The step was in flight when its worker stopped: a read runs again, an action fails."""
    if rerun:  # from the start, inputs resolved afresh
        return _move(
            record,
            steps=((step.id, StepChange(status=StepStatus.PENDING)),),
            audit=[entry(record, SYSTEM, "resumed", now, step.id)],
        )
    error = (
        "interrupted: Watchtower stopped while this step ran; it may or may not have "
        "taken effect, so it is not repeated"
    )
    return finish(
        record,
        ExecutionStatus.FAILED,
        f"step {step.id!r} {error}",
        now=now,
        steps=((step.id, StepChange(status=StepStatus.FAILED, error=error, finished_at=now)),),
        audit=[entry(record, SYSTEM, "interrupted", now, step.id, error)],
        strict=True,
    )


def changed(record: Record, step_id: str, change: StepChange) -> Transition:
    """A step's row changes; the run stays where it is."""
    return _move(record, steps=((step_id, change),))


def move_to(
    record: Record,
    cursor: int,
    steps: StepChanges = (),
    audit: Sequence[AuditEntry] = (),
) -> Transition:
    return _move(record, RunChange(cursor=cursor), steps, audit)


def skipped(record: Record, step: Step, note: str, *, now: datetime) -> Transition:
    change = StepChange(status=StepStatus.SKIPPED, error=note, finished_at=now)
    return move_to(record, record.cursor + 1, ((step.id, change),))


def done(
    record: Record,
    runbook: Runbook,
    step: Step,
    status: StepStatus,
    outputs: Mapping[str, Any],
    error: str = "",
    *,
    now: datetime,
    started_at: datetime | None = None,
    audit: Sequence[AuditEntry] = (),
) -> Transition:
    """The step ended with `status`: its result is written and the run moves on."""
    change = StepChange(
        status=status, outputs=dict(outputs), error=error, started_at=started_at, finished_at=now
    )
    return after(
        record, runbook, step, status, error, now=now, steps=((step.id, change),), audit=audit
    )


def after(
    record: Record,
    runbook: Runbook,
    step: Step,
    status: StepStatus,
    error: str,
    *,
    now: datetime,
    steps: StepChanges = (),
    audit: Sequence[AuditEntry] = (),
) -> Transition:
    """Where the run goes after a step ended with `status`: on, on past it, to a later step
    (passing over those between), or to its end."""
    position = runbook.position(step.id)
    if status is not StepStatus.FAILED or record.execution.dry_run:
        return move_to(record, position + 1, steps, audit)
    if step.on_failure == "continue":
        return move_to(record, position + 1, steps, audit)
    if step.on_failure == "abort":
        reason = f"step {step.id!r} failed: {error}"
        return finish(
            record, ExecutionStatus.FAILED, reason, now=now, steps=steps, audit=audit, strict=True
        )
    target = runbook.position(step.on_failure)
    note = f"passed over: {step.id} failed and its on_failure goes to {step.on_failure}"
    passed = tuple(
        (s.id, StepChange(status=StepStatus.SKIPPED, error=note))
        for s in runbook.steps[position + 1 : target]
    )
    return move_to(record, target, steps + passed, audit)


def unneeded(record: Record, step: Step, *, now: datetime) -> Transition:
    """The alert resolved before this step was approved: the run is closed, not asked about."""
    reason = "no longer needed: the alert resolved before this step was approved"
    audit = [entry(record, SYSTEM, "cancelled", now, step.id, reason)]
    return finish(record, ExecutionStatus.CANCELLED, reason, now=now, audit=audit)


def ask(
    record: Record,
    step: Step,
    *,
    inputs: Mapping[str, Any],
    plan: Sequence[Mapping[str, Any]],
    outputs: Mapping[str, Any],
    now: datetime,
    timeout: timedelta,
) -> Transition:
    """Stop at this step until a person approves (or confirms) it."""
    what = "confirmation" if step.kind == "manual" else "approval"
    change = StepChange(
        status=StepStatus.WAITING,
        inputs=dict(inputs),
        plan=tuple(plan),
        outputs=dict(outputs),
        requested_at=now,
        expires_at=now + timeout,
    )
    return _move(
        record,
        RunChange(
            status=ExecutionStatus.WAITING,
            reason=f"waiting for {what} of step {step.id!r}",
            owner=None,
        ),
        ((step.id, change),),
        [entry(record, SYSTEM, "approval-requested", now, step.id)],
        outcome="wait",
    )


def planned(
    record: Record,
    step: Step,
    *,
    inputs: Mapping[str, Any],
    plan: Sequence[Mapping[str, Any]],
    outputs: Mapping[str, Any],
    error: str,
    started_at: datetime,
    now: datetime,
) -> Transition:
    """Dry run: what the step would do, every parameter resolved; the run moves on."""
    change = StepChange(
        status=StepStatus.FAILED if error else StepStatus.PLANNED,
        inputs=dict(inputs),
        plan=tuple(plan),
        outputs=dict(outputs),
        error=error,
        started_at=started_at,
        finished_at=now,
    )
    return move_to(record, record.cursor + 1, ((step.id, change),))
