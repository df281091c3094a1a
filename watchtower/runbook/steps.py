"""Step execution: one step of a run, taken from where it is to where it goes.

Inputs resolved and checked, the plan an approver sees, a dry run's plan, the call itself (with
its retries and timeout), the expectation, the post-check and the compensation. Every state
change goes through the state machine (`watchtower.runbook.machine`) and is handed to `apply`,
which writes it (or raises when the run was taken over).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from watchtower.errors import WatchtowerError
from watchtower.model import Result
from watchtower.runbook import machine, scope
from watchtower.runbook.actions.base import Action, ActionContext, CutoverPort
from watchtower.runbook.errors import ExpressionError, ParamError, RunbookError
from watchtower.runbook.expressions import evaluate, render
from watchtower.runbook.machine import SYSTEM, Outcome, Transition
from watchtower.runbook.model import (
    AuditEntry,
    Execution,
    Record,
    Runbook,
    Step,
    StepChange,
    StepStatus,
)

if TYPE_CHECKING:
    from watchtower.runbook.parser import Catalog


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


Apply = Callable[[Transition], Outcome]


@dataclass
class StepRunner:
    """Runs steps with the engine's ports: checks, queries, actions and their clients."""

    catalog: Catalog
    settings: Any
    checks: CheckRunner
    queries: QueryRunner
    aws: Callable[[str], Any]
    redis: Callable[[], Any] | None
    clock: Callable[[], datetime]
    audit: Callable[[AuditEntry], None]
    stopping: threading.Event
    approval_timeout: timedelta = timedelta(hours=1)
    retry_delay: float = 1.0
    cutover: CutoverPort | None = None  # the cutover service, for actions that record events

    def __post_init__(self) -> None:
        self.verifier = Verifier(self.catalog, self.checks, self.clock, self.context)

    def step(self, record: Record, runbook: Runbook, step: Step, apply: Apply) -> Outcome:
        """Take the step at the run's cursor one move on."""
        execution = record.execution
        run = execution.steps[record.cursor]
        action = self.action(step)
        if run.status is StepStatus.RUNNING:
            # Taken over from a worker that stopped while this step ran.
            rerun = machine.reads(step, action)
            return apply(machine.taken_over(record, step, rerun=rerun, now=self.clock()))
        if run.status is StepStatus.WAITING:
            decision = run.approval.decision if run.approval else None
            if decision not in ("approved", "confirmed"):  # pragma: no cover - taken once decided
                return apply(machine.undecided(record))
            if step.kind in ("approval", "manual"):
                assert run.approval is not None
                outputs = {"decision": decision, "by": run.approval.decided_by}
                return apply(
                    machine.done(
                        record, runbook, step, StepStatus.SUCCEEDED, outputs, now=self.clock()
                    )
                )
            return self._execute(record, runbook, step, dict(run.inputs), apply)
        if run.status is not StepStatus.PENDING:
            # Its result was written but the run did not move on (a stop in between): move on.
            return apply(
                machine.after(record, runbook, step, run.status, run.error, now=self.clock())
            )
        names = scope.namespace(execution, self.settings)
        if step.when is not None:
            try:
                go = bool(evaluate(step.when, names))
            except ExpressionError as exc:
                return apply(
                    machine.done(
                        record,
                        runbook,
                        step,
                        StepStatus.FAILED,
                        {},
                        f"when: {exc}",
                        now=self.clock(),
                    )
                )
            if not go:
                note = f"skipped: when {step.when} is false"
                return apply(machine.skipped(record, step, note, now=self.clock()))
        if execution.dry_run and step.dry_run == "skip":
            note = "skipped in a dry run (dry_run: skip)"
            return apply(machine.skipped(record, step, note, now=self.clock()))
        try:
            inputs = scope.inputs(step, action, names, self.settings)
        except (ExpressionError, ParamError) as exc:
            now = self.clock()
            return apply(
                machine.done(
                    record, runbook, step, StepStatus.FAILED, {}, str(exc), now=now, started_at=now
                )
            )
        if execution.dry_run and not (machine.reads(step, action) and step.dry_run != "plan"):
            return apply(self._plan_only(record, step, action, inputs))
        if machine.needs_approval(step, action, execution.mode):
            return self._ask(record, runbook, step, action, inputs, apply)
        return self._execute(record, runbook, step, inputs, apply)

    def action(self, step: Step) -> Action | None:
        return self.catalog.actions.get(step.target) if step.kind == "action" else None

    def _plan_only(
        self, record: Record, step: Step, action: Action | None, inputs: dict[str, Any]
    ) -> Transition:
        """Dry run: what the step would do, with every parameter resolved; no side effect."""
        started = self.clock()
        plan: list[dict[str, Any]] = []
        outputs: dict[str, Any] = {"dry_run": True}
        error = ""
        try:
            if action is not None:
                ctx = self.context(record.execution, step.id)
                plan = [c.as_json() for c in action.plan(inputs, ctx)]
                outputs.update(scope.planned_verification(step))
            elif step.kind in ("approval", "manual"):
                who = "a second operator's approval" if step.kind == "approval" else "a person"
                outputs["would_wait_for"] = who
        except Exception as exc:
            error = said(exc)
        return machine.planned(
            record,
            step,
            inputs=inputs,
            plan=plan,
            outputs=outputs,
            error=error,
            started_at=started,
            now=self.clock(),
        )

    def _ask(
        self,
        record: Record,
        runbook: Runbook,
        step: Step,
        action: Action | None,
        inputs: dict[str, Any],
        apply: Apply,
    ) -> Outcome:
        """Stop at this step until a person approves (or confirms) it."""
        if record.execution.resolved_at is not None:
            return apply(machine.unneeded(record, step, now=self.clock()))
        plan: list[dict[str, Any]] = []
        outputs: dict[str, Any] = {}
        if action is not None:
            try:
                ctx = self.context(record.execution, step.id)
                plan = [c.as_json() for c in action.plan(inputs, ctx)]
            except Exception as exc:
                error = f"could not prepare the call: {said(exc)}"
                return apply(
                    machine.done(
                        record, runbook, step, StepStatus.FAILED, {}, error, now=self.clock()
                    )
                )
            outputs = scope.planned_verification(step)
        transition = machine.ask(
            record,
            step,
            inputs=inputs,
            plan=plan,
            outputs=outputs,
            now=self.clock(),
            timeout=self.approval_timeout,
        )
        return apply(transition)

    def _execute(
        self,
        record: Record,
        runbook: Runbook,
        step: Step,
        inputs: dict[str, Any],
        apply: Apply,
    ) -> Outcome:
        execution = record.execution
        action = self.action(step)
        attempts = execution.steps[record.cursor].attempts
        started = StepChange(
            status=StepStatus.RUNNING,
            inputs=inputs,
            started_at=self.clock(),
            attempts=attempts + 1,
            error="",
        )
        record = self._then(record, machine.changed(record, step.id, started), apply)
        tries = 1 + (step.retries if machine.reads(step, action) else 0)
        outputs: dict[str, Any] = {}
        error = ""
        for attempt in range(tries):
            if attempt:
                self.stopping.wait(self.retry_delay * attempt)
                again = StepChange(attempts=attempts + 1 + attempt)
                record = self._then(record, machine.changed(record, step.id, again), apply)
            try:
                outputs = scope.plain(
                    with_timeout(
                        lambda: self._perform(step, action, inputs, execution), step.timeout
                    )
                )
                error = ""
                break
            except Exception as exc:
                error = said(exc)

        def end(status: StepStatus, why: str = "", audit: tuple[AuditEntry, ...] = ()) -> Outcome:
            return apply(
                machine.done(
                    record, runbook, step, status, outputs, why, now=self.clock(), audit=audit
                )
            )

        if error:
            outputs = {}
            return end(StepStatus.FAILED, error)
        names = scope.namespace(execution, self.settings)
        if step.expect is not None:
            held, why = scope.judge(step.expect, names, outputs)
            if not held:
                return end(StepStatus.FAILED, why)
        if step.post_check is None:
            return end(StepStatus.SUCCEEDED)
        verified, evidence = self.verifier.verify(step, execution, names, outputs)
        outputs["post_check"] = evidence
        if verified:
            return end(StepStatus.SUCCEEDED)
        why = f"post-check failed: {evidence.get('error', 'its expectation did not hold')}"
        if step.compensate is None:
            return end(StepStatus.FAILED, why)
        compensation = self.verifier.compensate(step, execution, names, outputs)
        outputs["compensation"] = compensation
        if compensation["ok"]:
            why += f"; compensated by {step.compensate.action}"
        else:
            why += (
                f"; the compensation {step.compensate.action} failed too: {compensation['error']}"
            )
        kind = "compensated" if compensation["ok"] else "compensation-failed"
        note = machine.entry(record, SYSTEM, kind, self.clock(), step.id, why)
        return end(StepStatus.FAILED, why, (note,))

    @staticmethod
    def _then(record: Record, transition: Transition, apply: Apply) -> Record:
        """Write a move that does not end the step; the run as it is afterwards."""
        apply(transition)
        return transition.record

    def _perform(
        self, step: Step, action: Action | None, inputs: Mapping[str, Any], execution: Execution
    ) -> dict[str, Any]:
        now = self.clock()
        if step.kind == "check":
            return scope.result_json(self.checks.run_check(step.target, inputs["params"], now=now))
        if step.kind == "query":
            if "promql" in inputs:
                return self.queries.promql(inputs["promql"], now=now)
            if "cloudwatch" in inputs:
                return self.queries.cloudwatch(inputs["cloudwatch"], now=now)
            if "logs" in inputs:
                return self.queries.logs(inputs["logs"], now=now)
            return self.queries.sql(inputs["sql"], inputs["params"])
        assert action is not None
        return action.run(inputs, self.context(execution, step.id))

    def context(self, execution: Execution, step_id: str) -> ActionContext:
        def record(kind: str, detail: Mapping[str, Any]) -> None:
            comment = ", ".join(f"{k}={v}" for k, v in detail.items())
            self.audit(
                AuditEntry(
                    at=self.clock(),
                    execution_id=execution.id,
                    runbook_id=execution.runbook_id,
                    actor=SYSTEM,
                    action=kind,
                    step_id=step_id,
                    comment=comment,
                )
            )

        return ActionContext(
            settings=self.settings,
            aws=self.aws,
            redis=self.redis,
            cutover=self.cutover,
            now=self.clock(),
            execution_id=execution.id,
            step_id=step_id,
            record=record,
        )


@dataclass
class Verifier:
    """After an action: its post-check (looked at again a few times), and its compensation."""

    catalog: Catalog
    checks: CheckRunner
    clock: Callable[[], datetime]
    context: Callable[[Execution, str], ActionContext]
    sleep: Callable[[float], None] = time.sleep  # between a post-check's attempts (tests: none)

    def verify(
        self,
        step: Step,
        execution: Execution,
        names: Mapping[str, Any],
        outputs: Mapping[str, Any],
    ) -> tuple[bool, dict[str, Any]]:
        check = step.post_check
        assert check is not None
        seen_scope = {**names, "this": dict(outputs)}
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
                self.sleep(check.delay)
            evidence["attempts"] = attempt + 1
            try:
                values = render(dict(check.with_), seen_scope)
                if check.kind == "check":
                    numbers = {k: float(v) for k, v in values.items()}
                    result = self.checks.run_check(check.target, numbers, now=self.clock())
                    seen = scope.result_json(result)
                else:
                    action = self.catalog.actions[check.target]
                    ctx = self.context(execution, step.id)
                    seen = scope.plain(action.run(action.validate(values), ctx))
                evidence["outputs"] = seen
                held, error = scope.judge(check.expect, seen_scope, seen)
                if held:
                    evidence["held"] = True
                    return True, evidence
            except Exception as exc:
                error = said(exc)
        evidence["held"] = False
        evidence["error"] = error
        return False, evidence

    def compensate(
        self,
        step: Step,
        execution: Execution,
        names: Mapping[str, Any],
        outputs: Mapping[str, Any],
    ) -> dict[str, Any]:
        compensate = step.compensate
        assert compensate is not None
        action = self.catalog.actions[compensate.action]
        try:
            inputs = action.validate(
                render(dict(compensate.with_), {**names, "this": dict(outputs)})
            )
            ctx = self.context(execution, step.id)
            result = scope.plain(with_timeout(lambda: action.run(inputs, ctx), step.timeout))
        except Exception as exc:
            return {"action": compensate.action, "ok": False, "error": said(exc)}
        return {"action": compensate.action, "ok": True, "inputs": inputs, "outputs": result}


def with_timeout(fn: Callable[[], Any], seconds: float) -> Any:
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


def said(exc: BaseException) -> str:
    if isinstance(exc, WatchtowerError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
