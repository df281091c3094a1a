"""`watchtower runbooks test`: every runbook proven against a throwaway sandbox, in three passes.

* **dry-run**: every step plans; every mutating action's exact calls are in its plan; nothing
  changes (the sandbox's state is snapshotted before and compared after).
* **real**: every step runs (waiting steps approved by a second person, `runbooks-test`); the run
  succeeds, or ends as the runbook's fixture says; post-checks hold. Each mutating action's
  calls, as the AWS clients saw them, are the calls its dry run planned.
* **failure injection**, for each mutating action the real run took: *fail* (the action raises
  before any call: the run fails and the state is as it was when the step began), *undone*
  (the change is made, then its post-check fails: the compensation must restore the state
  snapshotted right before the change; a step without a compensation fails this pass) and
  *killed* (the process ends right after the action's calls; another worker resumes the run,
  which fails as interrupted). No step runs twice in any pass (counted per step).

A runbook carries its fixtures in a fenced block whose info string is `runbook-test` (YAML):

    ```runbook-test
    setup: {dynamodb_table: {billing: PROVISIONED}}   # the sandbox's vocabulary (Sandbox.setup)
    params: {table: images}                           # the run's parameters
    alert: {alertname: ImageDynamoDBThrottling}       # the alert the real run starts from
    expect: {switch-to-on-demand: succeeded}          # step statuses after the real run
    ```

The sandbox is a port (`Sandbox`): its state as plain data, a way to reset it, and its setups.
Nothing here builds a client: the caller hands in an engine factory over its own clients.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import yaml

from watchtower.model import Alert
from watchtower.runbook.actions.base import Action, ActionContext
from watchtower.runbook.model import ApiCall, ExecutionStatus, Runbook, StepStatus
from watchtower.runbook.step_blocks import Catalog

APPROVER = "runbooks-test"
_FIXTURE = re.compile(r"^```runbook-test[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


class Sandbox(Protocol):
    def snapshot(self) -> dict[str, Any]:
        """The state a runbook may change, as plain data (compared for equality)."""

    def reset(self) -> None:
        """Back to the state the sandbox starts in."""

    def setup(self, name: str, spec: Any) -> None:
        """Apply one named fixture (`dynamodb_table`, `lambda_environment`, ...)."""


@dataclass(frozen=True, kw_only=True)
class Fixture:
    setup: Mapping[str, Any] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    alert: Mapping[str, str] | None = None
    expect: Mapping[str, str] = field(default_factory=dict)
    # Steps whose change cannot be undone (an invalidation): the runbook documents it, and the
    # `undone` pass then asks only that the run stops, failed, right there.
    irreversible: tuple[str, ...] = ()


FIXTURE_KEYS = {"setup", "params", "alert", "expect", "irreversible"}


def fixture(runbook: Runbook) -> Fixture:
    """The runbook's `runbook-test` block; an empty fixture when it has none."""
    found = _FIXTURE.search(runbook.source)
    if found is None:
        return Fixture()
    data = yaml.safe_load(found[1]) or {}
    if not isinstance(data, dict) or set(data) - FIXTURE_KEYS:
        raise ValueError(f"{runbook.path}: a runbook-test block takes {', '.join(FIXTURE_KEYS)}")
    return Fixture(
        setup=data.get("setup") or {},
        params=data.get("params") or {},
        alert={str(k): str(v) for k, v in (data.get("alert") or {}).items()} or None,
        expect={str(k): str(v) for k, v in (data.get("expect") or {}).items()},
        irreversible=tuple(str(s) for s in data.get("irreversible") or ()),
    )


@dataclass(frozen=True, kw_only=True)
class Outcome:
    runbook: str
    name: str  # dry-run, real, fail:<step>, undone:<step>
    ok: bool
    detail: str = ""

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.runbook:<32} {self.name:<36} {self.detail}"


@dataclass
class _Calls:
    """What the test sees of the actions: calls per step, by the AWS clients' own events."""

    step: str | None = None
    performed: dict[str, int] = field(default_factory=dict)  # step -> times its action ran
    seen: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # step -> (svc, op)
    fail: str | None = None  # the step whose action raises before any call
    undo: str | None = None  # the step whose post-check is made to fail after the change
    before: dict[str, Any] | None = None  # the state when the injected step began
    kill: str | None = None  # the step after whose action's calls the process "dies"


class _Killed(BaseException):
    """The worker's process ends right after an action's calls (escapes `except Exception`)."""


class _Watched(Action):
    """An action as the catalog holds it, counted and, for one step, made to fail."""

    def __init__(self, inner: Action, calls: _Calls, sandbox: Sandbox) -> None:
        self.inner = inner
        self.calls = calls
        self.sandbox = sandbox
        # The engine reads these as class attributes; this instance stands in for one action.
        vars(self).update(
            name=inner.name,
            title=inner.title,
            mutating=inner.mutating,
            gated=inner.gated,
            inputs=inner.inputs,
        )

    def validate(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        return self.inner.validate(raw)

    def plan(self, values: Mapping[str, Any], ctx: ActionContext) -> list[ApiCall]:
        return self.inner.plan(values, ctx)

    def run(self, values: Mapping[str, Any], ctx: ActionContext) -> dict[str, Any]:
        calls = self.calls
        compensating = ctx.step_id == calls.undo and calls.performed.get(ctx.step_id)
        if self.mutating and not compensating:
            calls.performed[ctx.step_id] = calls.performed.get(ctx.step_id, 0) + 1
            if ctx.step_id in (calls.fail, calls.undo) and calls.before is None:
                calls.before = self.sandbox.snapshot()
            if ctx.step_id == calls.fail:
                raise RuntimeError("injected: the action failed before any call")
        elif not self.mutating and compensating:  # the post-check reading the change back
            raise RuntimeError("injected: the post-check did not hold")
        calls.step = ctx.step_id
        try:
            result = self.inner.run(values, ctx)
        finally:
            calls.step = None
        if self.mutating and ctx.step_id == calls.kill:
            calls.kill = None  # once: the resumed run must not meet it again
            raise _Killed()
        return result


def watched_catalog(catalog: Catalog, calls: _Calls, sandbox: Sandbox) -> Catalog:
    return Catalog(
        checks=catalog.checks,
        actions={n: _Watched(a, calls, sandbox) for n, a in catalog.actions.items()},
    )


def watch_client(client: Any, calls: _Calls) -> Any:
    """Record every call a boto3 client makes, under the step whose action makes it."""
    service = client.meta.service_model.service_name

    def seen(model: Any, **_: Any) -> None:
        if calls.step is not None:
            calls.seen.setdefault(calls.step, []).append((service, model.name))

    client.meta.events.register("before-call", seen)
    return client


EngineFactory = Callable[[Catalog, "_Calls"], Any]  # -> watchtower.runbook.engine.Engine


class Tester:
    """Runs the passes for one runbook at a time over a sandbox and a fresh engine per pass."""

    __test__ = False  # not a pytest class

    def __init__(
        self,
        *,
        sandbox: Sandbox,
        catalog: Catalog,
        make_engine: EngineFactory,
        fixtures: Mapping[str, Fixture] | None = None,
    ) -> None:
        self.sandbox = sandbox
        self.catalog = catalog
        self.make_engine = make_engine
        self.fixtures = dict(fixtures or {})  # for runbooks that carry none of their own
        self._planned: dict[str, list[Any]] = {}

    def test(self, runbook: Runbook) -> list[Outcome]:
        try:
            fix = self.fixtures.get(runbook.id) or fixture(runbook)
        except (ValueError, yaml.YAMLError) as exc:
            return [Outcome(runbook=runbook.id, name="fixture", ok=False, detail=str(exc))]
        results = [self._dry(runbook, fix)]
        real, mutated = self._real(runbook, fix, results[0])
        results.append(real)
        for step_id in mutated:
            results.append(self._inject(runbook, fix, step_id, undo=False))
            results.append(self._inject(runbook, fix, step_id, undo=True))
            results.append(self._kill(runbook, fix, step_id))
        return results

    # -- the passes -------------------------------------------------------------------------------

    @contextmanager
    def _pass(self, fix: Fixture) -> Iterator[tuple[Any, _Calls]]:
        self.sandbox.reset()
        for name, spec in fix.setup.items():
            self.sandbox.setup(name, spec)
        calls = _Calls()
        engine = self.make_engine(watched_catalog(self.catalog, calls, self.sandbox), calls)
        try:
            yield engine, calls
        finally:
            engine.stop_worker()

    def _dry(self, runbook: Runbook, fix: Fixture) -> Outcome:
        out = _outcome(runbook, "dry-run")
        with self._pass(fix) as (engine, calls):
            before = self.sandbox.snapshot()
            run_id = engine.start(runbook.id, params=fix.params, started_by=APPROVER, dry_run=True)
            run = _drive(engine, run_id)
            after = self.sandbox.snapshot()
        # A read may find the sandbox healthy and say the real run's check would fail: that is
        # what a dry run is for. Anything else ending it is a failure of the runbook.
        reads_only = run.status is ExecutionStatus.FAILED and run.reason.startswith("dry run:")
        if run.status is not ExecutionStatus.SUCCEEDED and not reads_only:
            return out(False, f"ended {run.status.value}: {run.reason}")
        if before != after:
            return out(False, f"changed the sandbox: {_diff(before, after)}")
        if calls.performed:
            return out(False, f"performed actions in a dry run: {sorted(calls.performed)}")
        unplanned = [
            s.step_id
            for s in run.steps
            if self._mutating(runbook, s.step_id) and s.status is StepStatus.PLANNED and not s.plan
        ]
        if unplanned:
            return out(False, f"planned no calls: {', '.join(unplanned)}")
        self._planned = {s.step_id: list(s.plan) for s in run.steps}
        planned = sum(1 for s in run.steps if s.status is StepStatus.PLANNED)
        said = f"; {run.reason}" if reads_only else ""
        return out(True, f"{len(run.steps)} steps, {planned} planned, nothing changed{said}")

    def _real(self, runbook: Runbook, fix: Fixture, dry: Outcome) -> tuple[Outcome, list[str]]:
        out = _outcome(runbook, "real")
        with self._pass(fix) as (engine, calls):
            run_id = self._start(engine, runbook, fix)
            run = _drive(engine, run_id)
        statuses = {s.step_id: s.status.value for s in run.steps}
        mutated = [s for s in calls.performed if self._mutating(runbook, s)]
        wrong = {k: statuses.get(k) for k, v in fix.expect.items() if statuses.get(k) != v}
        if wrong:
            return out(False, f"steps ended {wrong}, the fixture expects {dict(fix.expect)}"), []
        if run.status is not ExecutionStatus.SUCCEEDED and not fix.expect:
            return out(False, f"ended {run.status.value}: {run.reason}"), mutated
        twice = {k: n for k, n in calls.performed.items() if n > 1}
        if twice:
            return out(False, f"steps ran more than once: {twice}"), mutated
        if dry.ok:
            # Calls made through the run's AWS clients; an action that reaches AWS another way
            # (the cutover service's own clients) is not seen, and its plan not compared.
            done = {s.step_id for s in run.steps if s.status is StepStatus.SUCCEEDED}
            for step_id in [s for s in mutated if s in done and calls.seen.get(s)]:
                differs = _differs(self._planned.get(step_id, []), calls, step_id)
                if differs:
                    return out(False, f"{step_id}: {differs}"), mutated
        return out(True, f"{run.status.value}, {len(mutated)} actions changed something"), mutated

    def _inject(self, runbook: Runbook, fix: Fixture, step_id: str, *, undo: bool) -> Outcome:
        out = _outcome(runbook, f"{'undone' if undo else 'fail'}:{step_id}")
        step = runbook.step(step_id)
        if undo and (step.post_check is None or step.post_check.kind != "action"):
            return out(True, "no post-check reading an action: nothing to undo on")
        with self._pass(fix) as (engine, calls):
            if undo:
                calls.undo = step_id
            else:
                calls.fail = step_id
            run = _drive(engine, self._start(engine, runbook, fix))
            after = self.sandbox.snapshot()
        failed_step = next((s for s in run.steps if s.step_id == step_id), None)
        if not undo and step.on_failure == "continue":
            # The runbook documents going on past this step's failure: the step must say it
            # failed, and the run must still end.
            if failed_step is None or failed_step.status.value != "failed":
                return out(False, f"step {step_id} did not end failed under on_failure: continue")
            if not run.status.final:
                return out(False, f"ended {run.status.value}, not final")
            return out(True, f"step failed; the run went on, as on_failure: continue documents "
                       f"(ended {run.status.value})")  # fmt: skip
        if run.status is not ExecutionStatus.FAILED:
            return out(False, f"ended {run.status.value}, not failed")
        twice = {k: n for k, n in calls.performed.items() if n > 1}
        if twice:
            return out(False, f"steps ran more than once: {twice}")
        if undo and step.compensate is None:
            if step_id in fix.irreversible:
                return out(True, "irreversible, as the runbook documents: the run stopped there")
            return out(False, "the change stays: the step has no compensation")
        if calls.before is not None and after != calls.before:
            return out(False, f"not restored: {_diff(calls.before, after)}")
        return out(True, "compensated, state restored" if undo else "failed, nothing changed")

    def _kill(self, runbook: Runbook, fix: Fixture, step_id: str) -> Outcome:
        """The process dies right after the action's calls; another worker resumes the run: the
        action in flight is failed as interrupted (it may have taken effect), and no step that
        completed runs again."""
        out = _outcome(runbook, f"killed:{step_id}")
        with self._pass(fix) as (engine, calls):
            calls.kill = step_id
            run_id = self._start(engine, runbook, fix)
            try:
                _drive(engine, run_id)
            except _Killed:
                pass
            else:
                if calls.performed.get(step_id):  # the action raised on its own (a refusal)
                    return out(True, "the action failed by itself here: nothing to resume after")
                return out(False, "the run never reached the step")
            resumed = self.make_engine(watched_catalog(self.catalog, calls, self.sandbox), calls)
            resumed.worker.lease = timedelta(0)  # the dead worker's lease is over at once
            try:
                run = _drive(resumed, run_id)
            finally:
                resumed.stop_worker()
        twice = {k: n for k, n in calls.performed.items() if n > 1}
        if twice:
            return out(False, f"resuming ran steps again: {twice}")
        if run.status is not ExecutionStatus.FAILED:
            return out(False, f"resumed and ended {run.status.value}, not failed as interrupted")
        return out(True, f"resumed by another worker: {run.reason[:80]}")

    # -- helpers ----------------------------------------------------------------------------------

    def _mutating(self, runbook: Runbook, step_id: str) -> bool:
        step = next((s for s in runbook.steps if s.id == step_id), None)
        if step is None or step.kind != "action":
            return False
        action = self.catalog.actions.get(step.target)
        return bool(action and action.mutating)

    @staticmethod
    def _start(engine: Any, runbook: Runbook, fix: Fixture) -> str:
        if fix.alert is None and not runbook.triggers:
            run_id: str = engine.start(runbook.id, params=fix.params, started_by="alertmanager")
            return run_id
        labels = dict(fix.alert or {"alertname": runbook.triggers[0].alertname})
        labels.update({k: str(v) for k, v in fix.params.items()})
        now = datetime.now(UTC)
        alert = Alert(
            fingerprint=f"{abs(hash((runbook.id, now))):x}"[:16],
            status="firing",
            labels=labels,
            annotations={},
            starts_at=now,
        )
        started = engine.start_from_alert(runbook.id, alert=alert, mode="automatic")
        assert started is not None
        return str(started)


def _outcome(runbook: Runbook, name: str) -> Callable[[bool, str], Outcome]:
    return lambda ok, detail: Outcome(runbook=runbook.id, name=name, ok=ok, detail=detail)


def _drive(engine: Any, run_id: str, *, rounds: int = 50) -> Any:
    """Run until it ends; approve or confirm every step that waits, as a second person."""
    for _ in range(rounds):
        engine.run_pending()
        run = engine.get(run_id)
        if run.status.final:
            return run
        if run.waiting_step is not None:
            engine.approve(run_id, by=APPROVER, comment="runbooks test")
    return engine.get(run_id)


def _differs(planned: list[dict[str, Any]], calls: _Calls, step_id: str) -> str:
    """The AWS calls a dry run planned against those the real run made; '' when they agree."""
    aws = {"lambda", "dynamodb", "cloudfront", "s3"}
    wanted = sorted(
        (p["service"], p["operation"]) for p in planned if p.get("service") in aws and p
    )
    made = sorted(
        (s, op)
        for s, op in calls.seen.get(step_id, [])
        if s in aws and not op.startswith(("Get", "Describe", "List", "Head"))
    )
    wanted = [c for c in wanted if not c[1].startswith(("Get", "Describe", "List", "Head"))]
    if wanted != made:
        return f"the dry run planned {wanted}, the real run called {made}"
    return ""


def _diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    changed = [k for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]
    return ", ".join(f"{k}: {before.get(k)!r} -> {after.get(k)!r}" for k in changed)[:400]
