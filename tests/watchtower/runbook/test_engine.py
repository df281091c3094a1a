"""The engine's state machine against the moto server: approvals, rejections, expiry, the
two-person rule, cancel, verified remediation, dry runs, restarts, locks and alerts."""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.watchtower.runbook.conftest import FUNCTION, Aws, Harness, MakeHarness, write_runbook
from watchtower.errors import SourceError
from watchtower.model import Alert, Result
from watchtower.runbook.engine import CheckRunner
from watchtower.runbook.errors import ApprovalExpired, ParamError, Refused, SelfApproval
from watchtower.runbook.model import (
    ExecutionStatus,
    RunChange,
    StepChange,
    StepStatus,
    execution_json,
)

FLIP = """
---
id: flip
title: Flip a variable
params:
  function: {default: "${settings.lambda_function}", pattern: '[A-Za-z0-9_-]+'}
  value: {default: "false", pattern: 'true|false'}
  expect_after: {default: "false", pattern: 'true|false|never'}
lock: ${params.function}
---
Flip FLAG on the function, and check it.

```step
id: read
action: lambda.get_configuration
with: {function: "${params.function}", variables: [FLAG]}
```

```step
id: set
action: lambda.set_environment_variable
with: {function: "${params.function}", name: FLAG, value: "${params.value}"}
post_check:
  action: lambda.get_configuration
  with: {function: "${params.function}", variables: [FLAG]}
  expect: "variables.FLAG == params.expect_after"
  attempts: 2
  delay: 0
compensate:
  action: lambda.set_environment_variable
  with:
    function: ${params.function}
    name: FLAG
    value: ${this.previous}
    unset: ${this.previous is None}
```

```step
id: after
check: dual_write
```
"""

ALERTED = """
---
id: alerted
title: Alerted
triggers: [{alertname: FlagWrong}]
params:
  function: {default: "${settings.lambda_function}", pattern: '[A-Za-z0-9_-]+', label: function}
  value: {default: "false", choices: ["true", "false"], label: wanted}
lock: ${params.function}
---
```step
id: look
check: dual_write
```

```step
id: record
action: cutover.record_event
with: {event: rolled_back, function: "${params.function}"}
```

```step
id: set
action: lambda.set_environment_variable
with: {function: "${params.function}", name: FLAG, value: "${params.value}"}
```
"""

STEPS = """
---
id: steps
title: Reads that fail, retry and time out
---
```step
id: flaky
check: dynamodb_throttling
retries: 2
```

```step
id: hangs
check: lambda_cold_starts
timeout: 0.3
retries: 1
on_failure: continue
```

```step
id: broken
check: dual_write
expect: "flag == 1"
on_failure: last
```

```step
id: passed-over
check: dual_write
```

```step
id: last
check: dual_write
when: steps.broken.state == 'failed'
```
"""


class Gate:
    """Our own check port around the real one: makes chosen checks block, or fail at first."""

    def __init__(self, inner: CheckRunner) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()
        self.block: set[str] = set()
        self.fail_first: set[str] = set()
        self.entered = threading.Event()
        self.release = threading.Event()

    def run_check(self, name: str, overrides: Mapping[str, float], *, now: datetime) -> Result:
        self.calls[name] += 1
        if name in self.block:
            self.entered.set()
            self.release.wait(10)
        if name in self.fail_first and self.calls[name] == 1:
            raise SourceError("the source hiccupped")
        return self.inner.run_check(name, overrides, now=now)


@pytest.fixture
def books(tmp_path: Path) -> Path:
    directory = tmp_path / "books"
    write_runbook(directory, "flip", FLIP)
    write_runbook(directory, "alerted", ALERTED)
    write_runbook(directory, "steps", STEPS)
    return directory


@pytest.fixture
def gate() -> Gate:
    return Gate.__new__(Gate)  # filled in by `harness`


@pytest.fixture
def harness(make_harness: MakeHarness, books: Path, aws: Aws) -> Harness:
    aws.function({"FLAG": "true", "KEEP": "me"})
    return make_harness(runbooks=books)


def gated(make_harness: MakeHarness, books: Path, **kw: object) -> tuple[Harness, Gate]:
    made: list[Gate] = []

    def wrap(inner: CheckRunner) -> CheckRunner:
        made.append(Gate(inner))
        return made[0]

    return make_harness(runbooks=books, checks=wrap, **kw), made[0]


def alert(fingerprint: str = "fp-1", **labels: str) -> Alert:
    return Alert(
        fingerprint=fingerprint,
        status="firing",
        labels={"alertname": "FlagWrong", **labels},
        annotations={},
        starts_at=datetime.now(UTC),
    )


def wait_until(predicate: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def actions(h: Harness, execution_id: str) -> list[tuple[str, str]]:
    return [(a.actor, a.action) for a in h.engine.audit(execution_id)]


# -- approvals -----------------------------------------------------------------------------------


def test_a_change_waits_for_a_second_operator_with_the_evidence(harness: Harness, aws: Aws) -> None:
    h = harness
    run_id = h.engine.start("flip", params={}, started_by="olive")
    assert h.status(run_id) is ExecutionStatus.PENDING
    h.run()
    run = h.get(run_id)
    assert run.status is ExecutionStatus.WAITING
    assert run.reason == "waiting for approval of step 'set'"
    waiting = run.waiting_step
    assert waiting is not None and waiting.step_id == "set"
    assert waiting.inputs == {
        "function": FUNCTION,
        "name": "FLAG",
        "value": "false",
        "unset": False,
    }
    assert [c["operation"] for c in waiting.plan] == [
        "GetFunctionConfiguration",
        "UpdateFunctionConfiguration",
    ]
    assert [s.step_id for s in run.evidence()] == ["read"]
    assert run.evidence()[0].outputs["variables"] == {"FLAG": "true"}
    assert aws.environment()["FLAG"] == "true"  # nothing changed before the approval

    with pytest.raises(SelfApproval, match="olive started this run"):
        h.engine.approve(run_id, by="olive")
    assert h.status(run_id) is ExecutionStatus.WAITING
    h.engine.approve(run_id, by="ada", comment="checked the report")
    h.run()
    run = h.get(run_id)
    assert run.status is ExecutionStatus.SUCCEEDED, run.reason
    assert aws.environment() == {"FLAG": "false", "KEEP": "me"}
    step = {s.step_id: s for s in run.steps}["set"]
    assert step.approval is not None and step.approval.decided_by == "ada"
    assert step.outputs["post_check"]["held"] is True
    assert actions(h, run_id) == [
        ("olive", "started"),
        ("watchtower", "approval-requested"),
        ("olive", "approval-refused"),
        ("ada", "approved"),
    ]
    assert [a.comment for a in h.engine.audit(run_id)][3] == "checked the report"


def test_rejection_ends_the_run_and_changes_nothing(harness: Harness, aws: Aws) -> None:
    h = harness
    run_id = h.engine.start("flip", params={}, started_by="olive")
    h.run()
    h.engine.reject(run_id, by="olive", comment="not during the sale")
    run = h.get(run_id)
    assert run.status is ExecutionStatus.CANCELLED
    assert run.reason == "step 'set' rejected by olive: not during the sale"
    assert h.steps(run_id) == {"read": "succeeded", "set": "rejected", "after": "pending"}
    assert aws.environment()["FLAG"] == "true"
    with pytest.raises(Refused, match="not waiting for approval"):
        h.engine.approve(run_id, by="ada")


def test_approvals_expire(harness: Harness, aws: Aws) -> None:
    h = harness
    first = h.engine.start("flip", params={}, started_by="olive")
    h.run()
    h.clock.advance(minutes=61)
    with pytest.raises(ApprovalExpired, match="expired at"):
        h.engine.approve(first, by="ada")
    assert h.status(first) is ExecutionStatus.FAILED
    assert h.steps(first)["set"] == "expired"

    second = h.engine.start("flip", params={}, started_by="olive")  # the lock was released
    h.run()
    assert h.status(second) is ExecutionStatus.WAITING
    h.clock.advance(hours=2)
    h.run()  # the worker's pass expires it without anyone asking
    assert h.status(second) is ExecutionStatus.FAILED
    assert "nobody answered the approval request of step 'set'" in h.get(second).reason
    assert ("watchtower", "expired") in actions(h, second)
    assert aws.environment()["FLAG"] == "true"


def test_bad_parameters_are_refused_before_anything_is_created(harness: Harness) -> None:
    with pytest.raises(ParamError, match="'value'"):
        harness.engine.start("flip", params={"value": "maybe"}, started_by="olive")
    with pytest.raises(ParamError, match="'colour'"):
        harness.engine.start("flip", params={"colour": "red"}, started_by="olive")
    assert harness.engine.list() == []


# -- cancel --------------------------------------------------------------------------------------


def test_cancel_a_waiting_run(harness: Harness) -> None:
    h = harness
    run_id = h.engine.start("flip", params={}, started_by="olive")
    h.run()
    h.engine.cancel(run_id, by="ada", comment="wrong function")
    run = h.get(run_id)
    assert run.status is ExecutionStatus.CANCELLED
    assert run.reason == "cancelled by ada: wrong function"
    assert h.steps(run_id)["set"] == "cancelled"
    with pytest.raises(Refused, match="already ended"):
        h.engine.cancel(run_id, by="ada")


def test_cancel_never_cuts_a_running_step_off(
    make_harness: MakeHarness, books: Path, aws: Aws
) -> None:
    aws.function({"FLAG": "true"})
    h, gate = gated(make_harness, books)
    gate.block.add("dynamodb_throttling")
    h.engine.start_worker()
    run_id = h.engine.start("steps", params={}, started_by="olive")
    assert gate.entered.wait(10)
    h.engine.cancel(run_id, by="ada")
    assert h.status(run_id) is ExecutionStatus.RUNNING  # the step in flight goes on
    assert ("ada", "cancel-requested") in actions(h, run_id)
    gate.release.set()
    wait_until(lambda: h.status(run_id).final)
    run = h.get(run_id)
    assert run.status is ExecutionStatus.CANCELLED and run.reason == "cancelled by ada"
    assert h.steps(run_id)["flaky"] == "succeeded"
    assert h.steps(run_id)["hangs"] == "pending"


# -- verified remediation and dry runs -------------------------------------------------------------


def test_a_failed_post_check_runs_the_compensation(harness: Harness, aws: Aws) -> None:
    h = harness
    run_id = h.engine.start("flip", params={"expect_after": "never"}, started_by="olive")
    h.run()
    h.engine.approve(run_id, by="ada")
    h.run()
    run = h.get(run_id)
    assert run.status is ExecutionStatus.FAILED
    assert "post-check failed: expected variables.FLAG == params.expect_after" in run.reason
    assert "compensated by lambda.set_environment_variable" in run.reason
    step = {s.step_id: s for s in run.steps}["set"]
    assert step.outputs["post_check"]["attempts"] == 2
    assert step.outputs["compensation"]["ok"] is True
    assert step.outputs["compensation"]["inputs"]["value"] == "true"
    assert aws.environment() == {"FLAG": "true", "KEEP": "me"}  # undone
    assert ("watchtower", "compensated") in actions(h, run_id)


def test_compensation_can_remove_a_variable_that_was_not_there(
    make_harness: MakeHarness, books: Path, aws: Aws
) -> None:
    aws.function({"KEEP": "me"})
    h = make_harness(runbooks=books)
    run_id = h.engine.start("flip", params={"expect_after": "never"}, started_by="olive")
    h.run()
    h.engine.approve(run_id, by="ada")
    h.run()
    assert "compensated by" in h.get(run_id).reason
    assert aws.environment() == {"KEEP": "me"}


def test_a_dry_run_resolves_everything_and_changes_nothing(harness: Harness, aws: Aws) -> None:
    h = harness
    before = aws.environment()
    run_id = h.engine.start("flip", params={"value": "false"}, started_by="olive", dry_run=True)
    h.run()
    run = h.get(run_id)
    assert run.status is ExecutionStatus.SUCCEEDED, run.reason
    assert run.lock_key is None  # a dry run takes no lock
    assert h.steps(run_id) == {"read": "succeeded", "set": "planned", "after": "succeeded"}
    step = {s.step_id: s for s in run.steps}["set"]
    assert step.inputs["value"] == "false"
    update = step.plan[1]
    assert update["parameters"]["Environment"]["Variables"] == {
        "FLAG": "false",
        "KEEP": "<unchanged>",
    }
    assert step.outputs["post_check"]["target"] == "lambda.get_configuration"
    assert aws.environment() == before
    assert "approval-requested" not in [a for _, a in actions(h, run_id)]


# -- steps: retries, timeouts, on_failure ----------------------------------------------------------


def test_reads_are_retried_timed_out_and_jumped_over(
    make_harness: MakeHarness, books: Path, aws: Aws
) -> None:
    aws.function({})
    h, gate = gated(make_harness, books)
    gate.fail_first.add("dynamodb_throttling")
    gate.block.add("lambda_cold_starts")
    run_id = h.engine.start("steps", params={}, started_by="olive")
    h.run()
    gate.release.set()
    run = h.get(run_id)
    steps = {s.step_id: s for s in run.steps}
    assert steps["flaky"].status is StepStatus.SUCCEEDED and steps["flaky"].attempts == 2
    assert steps["hangs"].status is StepStatus.FAILED and steps["hangs"].attempts == 2
    assert steps["hangs"].error == "timed out after 0.3s"
    # dual_write sees no function flag: flag is None, so `flag == 1` does not hold.
    assert steps["broken"].status is StepStatus.FAILED
    assert steps["broken"].error.startswith("expected flag == 1; saw flag=")
    assert steps["passed-over"].status is StepStatus.SKIPPED
    assert "on_failure goes to last" in steps["passed-over"].error
    assert steps["last"].status is StepStatus.SUCCEEDED
    assert run.status is ExecutionStatus.SUCCEEDED
    assert run.reason == "done; went on past failed steps: hangs, broken"


# -- restarts --------------------------------------------------------------------------------------


def _interrupt(h: Harness, run_id: str, step_id: str) -> None:
    """Leave `run_id` as a worker that died in the middle of `step_id` would."""
    dead = "worker-that-died"
    assert h.store.take(run_id, owner=dead, now=h.clock(), stale_before=h.clock())
    position = [s.step_id for s in h.get(run_id).steps].index(step_id)
    running = StepChange(status=StepStatus.RUNNING, started_at=h.clock())
    assert h.store.apply(
        run_id,
        RunChange(status=ExecutionStatus.RUNNING, cursor=position),
        [(step_id, running)],
        held_by=dead,
    )


def test_after_a_restart_a_read_in_flight_runs_again(
    make_harness: MakeHarness, books: Path, aws: Aws
) -> None:
    aws.function({"FLAG": "true"})
    h = make_harness(runbooks=books)
    run_id = h.engine.start("flip", params={}, started_by="olive")
    _interrupt(h, run_id, "read")
    restarted = make_harness(runbooks=books)  # a new process on the same database
    restarted.run()
    assert restarted.status(run_id) is ExecutionStatus.RUNNING  # its worker still holds it
    h.clock.advance(minutes=2)  # its heartbeat is stale now
    restarted.run()
    run = restarted.get(run_id)
    assert run.status is ExecutionStatus.WAITING, run.reason
    assert restarted.steps(run_id)["read"] == "succeeded"
    assert ("watchtower", "resumed") in actions(restarted, run_id)


def test_after_a_restart_an_action_in_flight_is_failed_not_repeated(
    make_harness: MakeHarness, books: Path, aws: Aws
) -> None:
    aws.function({"FLAG": "true"})
    h = make_harness(runbooks=books)
    run_id = h.engine.start("flip", params={}, started_by="olive")
    h.run()
    h.engine.approve(run_id, by="ada")
    _interrupt(h, run_id, "set")
    h.clock.advance(minutes=2)
    restarted = make_harness(runbooks=books)
    restarted.run()
    run = restarted.get(run_id)
    assert run.status is ExecutionStatus.FAILED
    assert "interrupted: Watchtower stopped while this step ran" in run.reason
    assert aws.environment()["FLAG"] == "true"  # not repeated
    assert ("watchtower", "interrupted") in actions(restarted, run_id)


def test_after_a_restart_a_waiting_run_keeps_waiting(
    harness: Harness, make_harness: MakeHarness, books: Path
) -> None:
    run_id = harness.engine.start("flip", params={}, started_by="olive")
    harness.run()
    harness.clock.advance(minutes=5)
    restarted = make_harness(runbooks=books)
    restarted.run()
    assert restarted.status(run_id) is ExecutionStatus.WAITING
    restarted.engine.approve(run_id, by="ada")
    restarted.run()
    assert restarted.status(run_id) is ExecutionStatus.SUCCEEDED


def test_a_worker_that_lost_its_run_writes_nothing_more(
    make_harness: MakeHarness, books: Path, aws: Aws
) -> None:
    aws.function({"FLAG": "true"})
    # A long poll: once stuck in its step, the first worker sends no heartbeat.
    first, gate = gated(make_harness, books, worker_id="first", poll_seconds=60)
    gate.block.add("dynamodb_throttling")
    first.engine.start_worker()
    run_id = first.engine.start("steps", params={}, started_by="olive")
    assert gate.entered.wait(10)
    assert first.store.record(run_id).owner == "first"
    # Past its lease, a second worker takes the run over and finishes it.
    first.clock.advance(minutes=5)
    second = make_harness(runbooks=books, worker_id="second")
    second.run()
    assert second.status(run_id) is ExecutionStatus.SUCCEEDED
    assert ("watchtower", "resumed") in actions(second, run_id)
    taken = second.get(run_id)
    gate.release.set()
    first.engine.stop_worker()
    assert second.get(run_id) == taken  # the stuck worker's late result was dropped


# -- locks -----------------------------------------------------------------------------------------


def test_one_run_per_runbook_and_target_the_second_waits(harness: Harness, aws: Aws) -> None:
    h = harness
    aws.function({"FLAG": "true"}, name="other-fn")
    first = h.engine.start("flip", params={}, started_by="olive")
    second = h.engine.start("flip", params={}, started_by="ada")
    elsewhere = h.engine.start("flip", params={"function": "other-fn"}, started_by="ada")
    h.run()
    assert h.status(first) is ExecutionStatus.WAITING  # holds lock:flip:image-api
    assert h.status(second) is ExecutionStatus.PENDING
    assert h.get(second).reason == (
        f"waiting: execution {first} of flip holds the lock on {FUNCTION}"
    )
    assert h.status(elsewhere) is ExecutionStatus.WAITING  # another target: its own lock
    h.engine.approve(first, by="ada")
    h.run()
    assert h.status(first) is ExecutionStatus.SUCCEEDED
    assert h.status(second) is ExecutionStatus.WAITING  # it got the lock once the first ended
    assert h.get(second).lock_key == f"lock:flip:{FUNCTION}"


# -- alerts ----------------------------------------------------------------------------------------


def test_alert_runs_are_deduplicated_by_episode(harness: Harness) -> None:
    h = harness
    firing = alert("fp-1")
    first = h.engine.start_from_alert("alerted", alert=firing, mode="suggest")
    assert first is not None
    assert h.engine.start_from_alert("alerted", alert=firing, mode="suggest") is None
    other = h.engine.start_from_alert(
        "alerted", alert=alert("fp-2", function="other-fn"), mode="suggest"
    )
    assert other is not None and other != first
    h.engine.cancel(first, by="ada")
    # The same episode (same fingerprint, same startsAt), delivered again after its run ended:
    # a retry, the HA peer, repeat_interval. It starts nothing, and is shown as still firing.
    assert h.engine.start_from_alert("alerted", alert=firing, mode="suggest") is None
    assert h.get(first).still_firing and h.get(first).repeats == 1
    # A new episode of the same alert (it resolved and fired again) starts a new run.
    refired = dataclasses.replace(firing, starts_at=firing.starts_at + timedelta(minutes=5))
    again = h.engine.start_from_alert("alerted", alert=refired, mode="suggest")
    assert again not in (None, first)
    listed = h.engine.list()
    assert [e.id for e in listed] == [again, other, first]  # newest first
    assert execution_json(listed[2])["alert"] == {"fingerprint": "fp-1", "name": "FlagWrong"}
    assert execution_json(listed[2])["still_firing"] is True
    assert actions(h, first)[0] == ("alertmanager", "started")


def test_one_run_per_episode_across_two_engines_on_one_database(
    make_harness: MakeHarness, books: Path, aws: Aws
) -> None:
    aws.function({"FLAG": "true", "KEEP": "me"})
    a = make_harness(runbooks=books, worker_id="replica-a")
    b = make_harness(runbooks=books, worker_id="replica-b")
    firing = alert("fp-ha")
    started = []
    for n in range(40):  # deliveries spread over both replicas, runs finishing in between
        engine = (a if n % 2 else b).engine
        started.append(engine.start_from_alert("alerted", alert=firing, mode="automatic"))
        (a if n % 3 else b).run()
    runs = [s for s in started if s is not None]
    assert len(runs) == 1
    (run,) = runs
    assert a.status(run) is ExecutionStatus.SUCCEEDED
    assert a.get(run).repeats >= 30  # every delivery after it ended was counted on it


def test_a_route_may_allow_a_rerun_after_its_cool_down(harness: Harness) -> None:
    h = harness
    seen: list[tuple[str, str]] = []
    h.engine.on_still_firing = lambda runbook, fingerprint: seen.append((runbook, fingerprint))
    firing = alert("fp-cool")
    cool = timedelta(minutes=30)
    first = h.engine.start_from_alert("alerted", alert=firing, mode="automatic", rerun_after=cool)
    assert first is not None
    h.run()
    assert h.status(first) is ExecutionStatus.SUCCEEDED
    h.clock.advance(minutes=29)
    assert (
        h.engine.start_from_alert("alerted", alert=firing, mode="automatic", rerun_after=cool)
        is None
    )
    assert seen == [("alerted", "fp-cool")]
    h.clock.advance(minutes=2)
    second = h.engine.start_from_alert("alerted", alert=firing, mode="automatic", rerun_after=cool)
    assert second not in (None, first)
    # ... once: the re-run is the episode's run now, and it is still open.
    assert (
        h.engine.start_from_alert("alerted", alert=firing, mode="automatic", rerun_after=cool)
        is None
    )
    assert "a re-run after 0:30:00" in " ".join(a.comment for a in h.engine.audit(second))


def test_a_resolution_after_the_run_ended_is_recorded_on_it(harness: Harness) -> None:
    h = harness
    firing = alert("fp-late")
    run_id = h.engine.start_from_alert("alerted", alert=firing, mode="automatic")
    assert run_id is not None
    h.run()
    assert h.status(run_id) is ExecutionStatus.SUCCEEDED
    assert h.engine.start_from_alert("alerted", alert=firing, mode="automatic") is None
    assert h.get(run_id).still_firing
    at = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    h.engine.alert_resolved("fp-late", at=at, starts_at=firing.starts_at)
    run = h.get(run_id)
    assert (run.status, run.resolved_at, run.still_firing) == (
        ExecutionStatus.SUCCEEDED,
        at,
        False,
    )
    assert actions(h, run_id)[-1] == ("alertmanager", "alert-resolved")


def test_labels_reach_steps_only_as_validated_parameters(harness: Harness) -> None:
    h = harness
    bad = h.engine.start_from_alert(
        "alerted", alert=alert("fp-3", function="image-api; rm -rf /"), mode="automatic"
    )
    assert bad is not None
    run = h.get(bad)
    assert run.status is ExecutionStatus.FAILED and run.params == {}
    assert "parameter 'function': 'image-api; rm -rf /' does not match" in run.reason
    h.run()
    assert all(s.status is StepStatus.PENDING for s in h.get(bad).steps)  # nothing ran
    good = h.engine.start_from_alert(
        "alerted", alert=alert("fp-4", wanted="true", team="x"), mode="suggest"
    )
    assert good is not None
    assert h.get(good).params == {"function": FUNCTION, "value": "true"}  # `team` never gets in
    assert h.engine.start_from_alert("alerted", alert=alert("fp-3"), mode="suggest") is not None


def test_suggest_waits_before_any_change_automatic_does_not(harness: Harness, aws: Aws) -> None:
    h = harness
    suggested = h.engine.start_from_alert("alerted", alert=alert("fp-5"), mode="suggest")
    assert suggested is not None
    h.run()
    assert h.steps(suggested) == {"look": "succeeded", "record": "waiting", "set": "pending"}
    h.engine.cancel(suggested, by="ada")
    automatic = h.engine.start_from_alert("alerted", alert=alert("fp-6"), mode="automatic")
    assert automatic is not None
    h.run()
    assert h.status(automatic) is ExecutionStatus.SUCCEEDED
    assert aws.environment()["FLAG"] == "false"
    assert actions(h, automatic) == [
        ("alertmanager", "started"),
        ("watchtower", "cutover.rolled_back"),
    ]


def test_a_resolved_alert_closes_a_run_that_waits(harness: Harness) -> None:
    h = harness
    run_id = h.engine.start_from_alert("alerted", alert=alert("fp-7"), mode="suggest")
    assert run_id is not None
    h.run()
    at = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    h.engine.alert_resolved("fp-7", at=at)
    run = h.get(run_id)
    assert run.status is ExecutionStatus.CANCELLED
    assert run.reason == "no longer needed: the alert resolved at 2026-05-01 12:00:00 UTC"
    assert run.resolved_at == at
    assert actions(h, run_id)[-2:] == [
        ("alertmanager", "alert-resolved"),
        ("alertmanager", "cancelled"),
    ]
    h.engine.alert_resolved("unknown-fingerprint", at=at)  # nothing to do, no error


def test_a_resolved_alert_lets_the_running_step_finish(
    make_harness: MakeHarness, books: Path, aws: Aws
) -> None:
    aws.function({"FLAG": "true"})
    h, gate = gated(make_harness, books)
    gate.block.add("dual_write")
    h.engine.start_worker()
    run_id = h.engine.start_from_alert("alerted", alert=alert("fp-8"), mode="automatic")
    assert run_id is not None
    assert gate.entered.wait(10)
    h.engine.alert_resolved("fp-8", at=datetime.now(UTC))
    assert h.status(run_id) is ExecutionStatus.RUNNING
    gate.release.set()
    wait_until(lambda: h.status(run_id).final)
    assert h.status(run_id) is ExecutionStatus.CANCELLED
    assert h.steps(run_id) == {"look": "succeeded", "record": "pending", "set": "pending"}
    assert aws.environment()["FLAG"] == "true"


def test_a_run_waiting_for_its_lock_is_closed_when_its_alert_resolves(harness: Harness) -> None:
    h = harness
    holder = h.engine.start("flip", params={}, started_by="olive")
    h.run()
    queued = h.engine.start_from_alert("alerted", alert=alert("fp-9"), mode="automatic")
    assert queued is not None
    h.run()
    # `alerted` locks its own key (lock:alerted:...), so it is not queued behind `flip`.
    assert h.status(queued) is ExecutionStatus.SUCCEEDED
    second = h.engine.start_from_alert("alerted", alert=alert("fp-10"), mode="suggest")
    third = h.engine.start_from_alert("alerted", alert=alert("fp-11"), mode="suggest")
    assert second and third
    h.run()
    assert h.status(second) is ExecutionStatus.WAITING
    assert h.status(third) is ExecutionStatus.PENDING  # behind `second` on the same function
    h.engine.alert_resolved("fp-11", at=datetime.now(UTC))
    assert h.status(third) is ExecutionStatus.CANCELLED
    assert h.status(holder) is ExecutionStatus.WAITING


def test_the_worker_thread_runs_what_is_started(harness: Harness) -> None:
    harness.engine.start_worker()
    assert harness.engine.running
    run_id = harness.engine.start("flip", params={}, started_by="olive", dry_run=True)
    wait_until(lambda: harness.status(run_id).final)
    assert harness.status(run_id) is ExecutionStatus.SUCCEEDED
    harness.engine.stop_worker()
    assert not harness.engine.running


def test_runs_of_one_runbook_version_share_one_parse(harness: Harness) -> None:
    h = harness
    first, second = (h.engine.start("flip", params={}, started_by="olive") for _ in range(2))
    records = [h.store.record(first), h.store.record(second)]
    worker = h.engine.worker
    parsed = worker._snapshot(records[0])
    assert worker._snapshot(records[1]) is parsed
    edited = dataclasses.replace(records[1], source=records[1].source + "\nOne more line.\n")
    assert worker._snapshot(edited) is not parsed  # another version: its own parse
    assert worker._snapshot(edited).body.rstrip().endswith("One more line.")


@pytest.mark.skipif(sys.platform != "linux", reason="a thread's own nice value is Linux's")
def test_the_worker_threads_run_nicer_than_the_process(
    make_harness: MakeHarness, books: Path, aws: Aws
) -> None:
    aws.function({"FLAG": "true", "KEEP": "me"})
    h = make_harness(runbooks=books, nice=5)
    base = os.getpriority(os.PRIO_PROCESS, os.getpid())
    h.engine.start_worker()
    run_id = h.engine.start("flip", params={}, started_by="olive", dry_run=True)
    wait_until(lambda: h.status(run_id).final)
    # The dispatcher and the pool's threads live until the worker stops (a run's heartbeat
    # thread may already be gone: not read).
    workers = {
        t.name: t.native_id
        for t in threading.enumerate()
        if t.name == "runbook-dispatcher" or t.name.startswith("runbook_")
    }
    nice = {name: os.getpriority(os.PRIO_PROCESS, tid) for name, tid in workers.items() if tid}
    h.engine.stop_worker()
    assert {"runbook-dispatcher", "runbook_0"} <= set(nice)  # the dispatcher and the pool
    assert set(nice.values()) == {min(19, base + 5)}
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base  # not the caller


GATE = """
---
id: gate
title: A question, then a note
---
```step
id: ask
approval: Go ahead with the **migration**?
```

```step
id: note
manual: Tell the team.
```
"""


def test_approval_and_manual_steps(make_harness: MakeHarness, tmp_path: Path, aws: Aws) -> None:
    h = make_harness(runbooks=write_runbook(tmp_path / "gate", "gate", GATE).parent)
    dry = h.engine.start("gate", params={}, started_by="olive", dry_run=True)
    h.run()
    assert h.steps(dry) == {"ask": "planned", "note": "planned"}
    assert h.get(dry).steps[0].outputs["would_wait_for"] == "a second operator's approval"
    run_id = h.engine.start("gate", params={}, started_by="olive")
    h.run()
    waiting = h.get(run_id).waiting_step
    assert waiting is not None and waiting.inputs == {"text": "Go ahead with the **migration**?"}
    with pytest.raises(SelfApproval):
        h.engine.approve(run_id, by="olive")
    h.engine.approve(run_id, by="ada")
    h.run()
    assert h.get(run_id).reason == "waiting for confirmation of step 'note'"
    h.engine.approve(run_id, by="olive")  # a manual step: whoever did it confirms
    h.run()
    run = h.get(run_id)
    assert run.status is ExecutionStatus.SUCCEEDED
    assert [dict(s.outputs) for s in run.steps] == [
        {"decision": "approved", "by": "ada"},
        {"decision": "confirmed", "by": "olive"},
    ]
