"""The engine's state machine, without a database, a clock or a thread: a run, an event and the
time in; the new state and the audit entries out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from watchtower.runbook import machine
from watchtower.runbook.errors import ApprovalExpired, Refused, SelfApproval
from watchtower.runbook.machine import Transition
from watchtower.runbook.model import (
    KEEP,
    OPEN_STATUSES,
    Approval,
    ExecutionStatus,
    Mode,
    Record,
    Runbook,
    RunChange,
    Step,
    StepChange,
    StepStatus,
)

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)

RUNBOOK = Runbook(
    id="flip",
    title="Flip a variable",
    path="runbooks/flip.md",
    source="the file",
    body="",
    body_line=1,
    lock="${params.function}",
    steps=(
        Step(id="read", kind="check", target="dual_write", line=3),
        Step(id="set", kind="action", target="lambda.set_environment_variable", line=8),
        Step(id="jump", kind="check", target="dual_write", line=12, on_failure="last"),
        Step(id="between", kind="check", target="dual_write", line=16),
        Step(id="last", kind="manual", target="Tell the team.", line=20),
    ),
)


def new(mode: Mode = "manual", *, dry_run: bool = False, refused: str = "") -> Record:
    record, _ = machine.created(
        execution_id="e1",
        runbook=RUNBOOK,
        params={"function": "image-api"},
        mode=mode,
        started_by="olive",
        dry_run=dry_run,
        lock_key=None if dry_run else "lock:flip:image-api",
        now=T0,
        refused=refused,
    )
    return record


def at(record: Record, cursor: int, status: ExecutionStatus = ExecutionStatus.RUNNING) -> Record:
    return machine.applied(record, RunChange(status=status, cursor=cursor, owner="w1"))


def waiting_on(record: Record, step_id: str, *, timeout: timedelta = timedelta(hours=1)) -> Record:
    position = RUNBOOK.position(step_id)
    ask = machine.ask(
        at(record, position),
        RUNBOOK.steps[position],
        inputs={"name": "FLAG"},
        plan=[{"operation": "UpdateFunctionConfiguration"}],
        outputs={},
        now=T0,
        timeout=timeout,
    )
    return ask.record


def audit(transition: Transition) -> list[tuple[str, str, str | None, str]]:
    return [(a.actor, a.action, a.step_id, a.comment) for a in transition.audit]


def steps(record: Record) -> dict[str, str]:
    return {s.step_id: s.status.value for s in record.execution.steps}


# -- intake ------------------------------------------------------------------------------------


def test_a_new_run_is_pending_with_every_step_pending_and_an_audit_entry() -> None:
    record, entries = machine.created(
        execution_id="e1",
        runbook=RUNBOOK,
        params={"function": "image-api"},
        mode="suggest",
        started_by="alertmanager",
        dry_run=False,
        lock_key="lock:flip:image-api",
        now=T0,
        alert_fingerprint="fp",
        alert_name="FlagWrong",
        note="alert FlagWrong (fp), suggest",
    )
    execution = record.execution
    assert execution.status is ExecutionStatus.PENDING
    assert execution.created_at == T0 and execution.finished_at is None
    assert (record.source, record.path, record.cursor, record.owner) == (
        "the file",
        "runbooks/flip.md",
        0,
        None,
    )
    assert [(s.step_id, s.position, s.status) for s in execution.steps][:2] == [
        ("read", 0, StepStatus.PENDING),
        ("set", 1, StepStatus.PENDING),
    ]
    assert [(e.actor, e.action, e.comment) for e in entries] == [
        ("alertmanager", "started", "alert FlagWrong (fp), suggest")
    ]


def test_a_refused_run_is_failed_at_once_and_says_why() -> None:
    record, entries = machine.created(
        execution_id="e1",
        runbook=RUNBOOK,
        params={},
        mode="automatic",
        started_by="alertmanager",
        dry_run=False,
        lock_key=None,
        now=T0,
        refused="refused: bad label",
    )
    assert record.execution.status is ExecutionStatus.FAILED
    assert record.execution.finished_at == T0
    assert record.execution.reason == "refused: bad label"
    assert [(e.actor, e.action) for e in entries] == [
        ("alertmanager", "started"),
        ("watchtower", "refused"),
    ]


# -- approvals ---------------------------------------------------------------------------------


def test_asking_for_approval_waits_and_lets_the_worker_go() -> None:
    record = waiting_on(new(), "set")
    execution = record.execution
    assert execution.status is ExecutionStatus.WAITING
    assert execution.reason == "waiting for approval of step 'set'"
    assert record.owner is None
    step = execution.waiting_step
    assert step is not None and step.step_id == "set"
    assert step.inputs == {"name": "FLAG"}
    assert step.approval == Approval(requested_at=T0, expires_at=T0 + timedelta(hours=1))


def test_approval_by_a_second_operator_moves_the_run_on() -> None:
    record = waiting_on(new(), "set")
    later = T0 + timedelta(minutes=5)
    t = machine.approve(record, by="ada", comment="checked", now=later)
    assert t.refusal is None
    assert t.requires == (ExecutionStatus.WAITING,)
    assert t.run == RunChange(
        status=ExecutionStatus.RUNNING, reason="step 'set' approved by ada", owner=None
    )
    assert t.steps == (
        (
            "set",
            StepChange(decision="approved", decided_by="ada", decided_at=later, comment="checked"),
        ),
    )
    approval = t.record.execution.steps[1].approval
    assert approval is not None and (approval.decision, approval.decided_by) == ("approved", "ada")
    assert audit(t) == [("ada", "approved", "set", "checked")]


def test_who_started_a_run_cannot_approve_it_alone() -> None:
    record = waiting_on(new(), "set")
    t = machine.approve(record, by="olive", comment="", now=T0)
    assert isinstance(t.refusal, SelfApproval)
    assert "olive started this run" in str(t.refusal)
    assert not t.writes  # nothing changes but the audit log
    assert audit(t) == [
        ("olive", "approval-refused", "set", "who started a run cannot approve it alone")
    ]


def test_a_manual_step_is_confirmed_by_whoever_did_it() -> None:
    record = waiting_on(new(), "last")
    t = machine.approve(record, by="olive", comment="", now=T0)
    assert t.refusal is None
    assert t.run.reason == "step 'last' confirmed by olive"
    assert record.execution.reason == "waiting for confirmation of step 'last'"


def test_an_alert_run_in_suggest_mode_may_be_approved_by_anyone() -> None:
    record = waiting_on(new("suggest"), "set")
    assert machine.approve(record, by="olive", comment="", now=T0).refusal is None


def test_an_expired_request_fails_the_run_and_refuses_the_approval() -> None:
    record = waiting_on(new(), "set")
    t = machine.approve(record, by="ada", comment="", now=T0 + timedelta(hours=1))
    assert isinstance(t.refusal, ApprovalExpired)
    assert "expired at 2026-05-01 13:00:00 UTC" in str(t.refusal)
    after = t.record.execution
    assert after.status is ExecutionStatus.FAILED
    assert after.reason == "nobody answered the approval request of step 'set' in time"
    assert after.steps[1].status is StepStatus.EXPIRED
    assert audit(t) == [("watchtower", "expired", "set", "")]


def test_rejection_cancels_the_run_saying_who_and_why() -> None:
    record = waiting_on(new(), "set")
    t = machine.reject(record, by="olive", comment="not during the sale", now=T0)
    execution = t.record.execution
    assert execution.status is ExecutionStatus.CANCELLED
    assert execution.reason == "step 'set' rejected by olive: not during the sale"
    assert execution.finished_at == T0
    assert steps(t.record)["set"] == "rejected"
    assert t.requires == (ExecutionStatus.WAITING,)
    assert audit(t) == [("olive", "rejected", "set", "not during the sale")]


def test_only_a_waiting_run_can_be_decided_on() -> None:
    with pytest.raises(Refused, match="is pending, not waiting for approval"):
        machine.approve(new(), by="ada", comment="", now=T0)
    with pytest.raises(Refused, match="not waiting for approval"):
        machine.reject(at(new(), 1), by="ada", comment="", now=T0)


# -- cancel and alerts -------------------------------------------------------------------------


def test_cancel_closes_a_run_nobody_holds_or_asks_its_worker_to_stop() -> None:
    record = waiting_on(new(), "set")
    close, ask = machine.cancel(record, by="ada", comment="wrong function", now=T0)
    assert close.requires == OPEN_STATUSES
    assert close.record.execution.status is ExecutionStatus.CANCELLED
    assert close.record.execution.reason == "cancelled by ada: wrong function"
    assert steps(close.record)["set"] == "cancelled"
    assert close.run.stop_reason is None
    assert audit(close) == [("ada", "cancelled", None, "cancelled by ada: wrong function")]
    assert ask.run == RunChange(stop_reason="cancelled by ada: wrong function")
    assert ask.record.execution.status is ExecutionStatus.WAITING
    assert audit(ask) == [("ada", "cancel-requested", None, "cancelled by ada: wrong function")]


def test_a_finished_run_cannot_be_cancelled() -> None:
    with pytest.raises(Refused, match="already ended: failed"):
        machine.cancel(new(refused="no"), by="ada", comment="", now=T0)


def test_a_stop_asked_while_a_step_ran_ends_the_run_after_it() -> None:
    record = machine.applied(at(new(), 1), RunChange(stop_reason="cancelled by ada"))
    t = machine.stopped(record, now=T0)
    assert t.outcome == "stop" and not t.strict
    assert t.record.execution.status is ExecutionStatus.CANCELLED
    assert t.record.execution.reason == "cancelled by ada"
    assert (t.record.owner, t.record.stop_reason) == (None, None)
    assert audit(t) == [("watchtower", "cancelled", None, "cancelled by ada")]


def test_a_resolved_alert_is_recorded_and_closes_what_waits() -> None:
    record = waiting_on(new("suggest"), "set")
    resolved = datetime(2026, 5, 1, 14, 0, tzinfo=UTC)
    t = machine.resolved(record, at=resolved, now=T0)
    assert t.run == RunChange(resolved_at=resolved)
    assert not t.strict  # recorded in the audit log even if the run ended meanwhile
    assert audit(t) == [("alertmanager", "alert-resolved", None, "2026-05-01 14:00:00 UTC")]
    close, _ = machine.stop(
        t.record, machine.no_longer_needed(resolved), actor="alertmanager", now=T0
    )
    assert close.record.execution.reason == (
        "no longer needed: the alert resolved at 2026-05-01 14:00:00 UTC"
    )
    step = RUNBOOK.steps[1]
    unneeded = machine.unneeded(at(t.record, 1), step, now=T0)
    assert unneeded.record.execution.status is ExecutionStatus.CANCELLED
    assert audit(unneeded)[0][:3] == ("watchtower", "cancelled", "set")


# -- the worker's moves ------------------------------------------------------------------------


def test_a_run_begins_once_it_holds_its_lock_else_it_waits_saying_for_whom() -> None:
    record = machine.applied(new(), RunChange(owner="w1"))
    go = machine.begin(record, free=True, now=T0)
    assert go.outcome == "next" and go.requires == (ExecutionStatus.PENDING,)
    assert go.record.execution.status is ExecutionStatus.RUNNING
    assert go.record.execution.started_at == T0
    held = machine.begin(record, free=False, holder="e0", now=T0)
    assert held.outcome == "wait"
    assert held.record.execution.status is ExecutionStatus.PENDING
    assert (
        held.record.execution.reason == "waiting: execution e0 of flip holds the lock on image-api"
    )
    assert held.record.owner is None


def test_a_step_that_succeeds_moves_the_cursor_on() -> None:
    record = at(new(), 0)
    t = machine.done(record, RUNBOOK, RUNBOOK.steps[0], StepStatus.SUCCEEDED, {"ok": 1}, now=T0)
    assert (t.outcome, t.record.cursor) == ("next", 1)
    read = t.record.execution.steps[0]
    assert (read.status, dict(read.outputs), read.finished_at) == (
        StepStatus.SUCCEEDED,
        {"ok": 1},
        T0,
    )


def test_a_failed_step_aborts_the_run() -> None:
    record = at(new(), 1)
    t = machine.done(record, RUNBOOK, RUNBOOK.steps[1], StepStatus.FAILED, {}, "boom", now=T0)
    assert t.outcome == "stop" and t.strict
    assert t.record.execution.status is ExecutionStatus.FAILED
    assert t.record.execution.reason == "step 'set' failed: boom"


def test_on_failure_jumps_over_the_steps_between() -> None:
    record = at(new(), 2)
    t = machine.done(record, RUNBOOK, RUNBOOK.steps[2], StepStatus.FAILED, {}, "no", now=T0)
    assert (t.outcome, t.record.cursor) == ("next", 4)
    assert steps(t.record)["jump"] == "failed"
    assert steps(t.record)["between"] == "skipped"
    between = t.record.execution.steps[3]
    assert between.error == "passed over: jump failed and its on_failure goes to last"


def test_a_failed_step_in_a_dry_run_goes_on() -> None:
    record = at(new(dry_run=True), 1)
    t = machine.done(record, RUNBOOK, RUNBOOK.steps[1], StepStatus.FAILED, {}, "no", now=T0)
    assert (t.outcome, t.record.cursor) == ("next", 2)


@pytest.mark.parametrize(
    ("dry_run", "statuses", "status", "reason"),
    [
        (False, {}, ExecutionStatus.SUCCEEDED, "done"),
        (
            False,
            {"jump": StepStatus.FAILED},
            ExecutionStatus.SUCCEEDED,
            "done; went on past failed steps: jump",
        ),
        (
            True,
            {"set": StepStatus.PLANNED, "last": StepStatus.PLANNED},
            ExecutionStatus.SUCCEEDED,
            "dry run: every parameter resolved; 2 steps planned, nothing changed",
        ),
        (
            True,
            {"set": StepStatus.FAILED},
            ExecutionStatus.FAILED,
            "dry run: steps set would fail",
        ),
    ],
)
def test_a_run_past_its_last_step_completes(
    dry_run: bool, statuses: dict[str, StepStatus], status: ExecutionStatus, reason: str
) -> None:
    changes = tuple((k, StepChange(status=v)) for k, v in statuses.items())
    record = machine.applied(at(new(dry_run=dry_run), 5), RunChange(), changes)
    t = machine.complete(record, now=T0)
    assert (t.record.execution.status, t.record.execution.reason) == (status, reason)
    assert t.record.execution.finished_at == T0 and t.record.owner is None


def test_a_step_in_flight_when_its_worker_stopped_reruns_if_it_reads() -> None:
    record = machine.applied(
        at(new(), 0), RunChange(), (("read", StepChange(status=StepStatus.RUNNING)),)
    )
    t = machine.taken_over(record, RUNBOOK.steps[0], rerun=True, now=T0)
    assert t.outcome == "next" and steps(t.record)["read"] == "pending"
    assert audit(t) == [("watchtower", "resumed", "read", "")]


def test_an_action_in_flight_when_its_worker_stopped_fails_the_run() -> None:
    record = machine.applied(
        at(new(), 1), RunChange(), (("set", StepChange(status=StepStatus.RUNNING)),)
    )
    t = machine.taken_over(record, RUNBOOK.steps[1], rerun=False, now=T0)
    assert t.outcome == "stop"
    assert t.record.execution.status is ExecutionStatus.FAILED
    assert "interrupted: Watchtower stopped while this step ran" in t.record.execution.reason
    assert steps(t.record)["set"] == "failed"
    assert [a[:3] for a in audit(t)] == [("watchtower", "interrupted", "set")]


def test_a_dry_run_records_the_plan_and_moves_on() -> None:
    record = at(new(dry_run=True), 1)
    t = machine.planned(
        record,
        RUNBOOK.steps[1],
        inputs={"name": "FLAG"},
        plan=[{"operation": "UpdateFunctionConfiguration"}],
        outputs={"dry_run": True},
        error="",
        started_at=T0,
        now=T0,
    )
    assert t.record.cursor == 2
    planned = t.record.execution.steps[1]
    assert planned.status is StepStatus.PLANNED
    assert planned.plan == ({"operation": "UpdateFunctionConfiguration"},)


def test_a_worker_that_stops_lets_the_run_go() -> None:
    t = machine.release(at(new(), 1))
    assert t.run == RunChange(owner=None) and t.record.owner is None and not t.strict


def test_a_move_the_transitions_table_does_not_allow_is_refused() -> None:
    ended = new(refused="bad label")
    with pytest.raises(Refused, match="cannot go from failed to succeeded"):
        machine.complete(ended, now=T0)
    with pytest.raises(Refused, match="cannot go from failed to failed"):
        machine.expire(ended, "set", now=T0)
    with pytest.raises(Refused, match="cannot go from pending to waiting"):
        machine.undecided(new())


def test_a_change_leaves_what_it_does_not_name() -> None:
    record = machine.applied(at(new(), 1), RunChange(stop_reason="asked"))
    assert RunChange().owner is KEEP
    again = machine.applied(record, RunChange(reason="x"))
    assert (again.owner, again.stop_reason, again.cursor) == ("w1", "asked", 1)
    assert again.execution.status is ExecutionStatus.RUNNING


# -- the rules ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FakeAction:
    mutating: bool
    gated: bool


@pytest.mark.parametrize(
    ("kind", "mutating", "gated", "approval", "mode", "needed"),
    [
        ("approval", False, False, None, "automatic", True),
        ("manual", False, False, None, "automatic", True),
        ("check", False, False, None, "manual", False),
        ("action", False, True, None, "manual", False),  # reads never wait
        ("action", True, False, "required", "automatic", True),
        ("action", True, False, None, "suggest", True),
        ("action", True, True, None, "automatic", False),
        ("action", True, True, None, "manual", True),
        ("action", True, False, None, "manual", False),
    ],
)
def test_who_must_approve(
    kind: Any, mutating: bool, gated: bool, approval: Any, mode: Mode, needed: bool
) -> None:
    step = Step(id="s", kind=kind, target="x", line=1, approval=approval)
    action = cast(Any, FakeAction(mutating, gated))
    assert machine.needs_approval(step, action, mode) is needed
    assert machine.reads(step, action) is (kind in ("check", "query") or not mutating)
