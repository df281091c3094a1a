"""A cutover rehearsal: Story 6.1 walked on the sandbox, with the demo's compressed window.

The demo's cutover settings are a rehearsal (`rehearsal_of`): every window, document, report and
hash is marked REHEARSAL, and its sign-offs are by rehearsal roles only. A rehearsal walks, in the
demo's own Watchtower: the pre-flight report (minutes of sandbox history, so its gate is
overridden on the record), the disable-dual-write runbook with its approval by a second person,
the window's evidence, optionally a scenario injected half-way (`legacy-writes`), the verdict, and
then the sign-offs and the frozen, verified report, or the rollback runbook when it failed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from watchtower.errors import SandboxError

if TYPE_CHECKING:
    from watchtower.runtime import Watchtower
    from watchtower.sandbox.stack import Stack

log = logging.getLogger(__name__)

OPERATOR = "rehearsal-operator"
APPROVER = "rehearsal-approver"
INJECTABLE = ("legacy-writes",)
RUNBOOK_WAIT = 120.0  # seconds: the most a runbook step may take in the sandbox


class RehearsalBusy(SandboxError):
    """A rehearsal runs already, or a real window is open."""


@dataclass
class Progress:
    inject: str | None
    started_at: datetime
    steps: list[dict[str, str]] = field(default_factory=list)
    finished: bool = False
    outcome: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "rehearsal": True,
            "inject": self.inject,
            "started_at": self.started_at.isoformat(),
            "finished": self.finished,
            "steps": list(self.steps),
            "outcome": dict(self.outcome),
            "error": self.error,
        }


class Rehearsal:
    """One rehearsal at a time, in a thread of the demo process."""

    def __init__(
        self, wt: Watchtower, stack: Stack, *, sleep: Callable[[float], None] = time.sleep
    ):
        self._wt = wt
        self._stack = stack
        self._sleep = sleep
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.progress: Progress | None = None

    def describe(self) -> dict[str, Any]:
        cutover = self._wt.cutover.cutover
        return {
            "window_seconds": cutover.window_seconds,
            "sample_seconds": cutover.sample_interval,
            "signers": list(cutover.signers),
            "current": self.progress.describe() if self.progress else None,
        }

    def start(self, inject: str | None = None) -> dict[str, Any]:
        if inject is not None and inject not in INJECTABLE:
            raise ValueError(f"cannot inject {inject!r} (known: {', '.join(INJECTABLE)})")
        if not self._wt.cutover.cutover.rehearsal:
            raise RehearsalBusy("this Watchtower's cutover is not a rehearsal: nothing is started")
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                raise RehearsalBusy("a rehearsal runs already")
            if self._wt.cutover.store.open_window() is not None:
                raise RehearsalBusy("a cutover window is open: close it before rehearsing")
            self.progress = Progress(inject=inject, started_at=datetime.now(UTC))
            self._thread = threading.Thread(target=self._run, name="rehearsal", daemon=True)
            self._thread.start()
        return self.describe()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    # -- the walk ---------------------------------------------------------------------------

    def _step(self, name: str, text: str) -> None:
        assert self.progress is not None
        self.progress.steps.append(
            {"at": datetime.now(UTC).isoformat(timespec="seconds"), "step": name, "text": text}
        )
        log.info("REHEARSAL %s: %s", name, text)

    def _run(self) -> None:
        assert self.progress is not None
        try:
            self._walk(self.progress)
        except Exception as exc:  # the walk reports what stopped it; the demo runs on
            log.exception("the rehearsal stopped")
            self.progress.error = f"{type(exc).__name__}: {exc}"
            self._step("stopped", self.progress.error)
        finally:
            self.progress.finished = True

    def _walk(self, progress: Progress) -> None:
        wt, cutover = self._wt, self._wt.cutover
        settings = cutover.cutover
        self._step(
            "settings",
            f"REHEARSAL window {settings.window_seconds} s, a sample every "
            f"{settings.sample_interval} s, signers {', '.join(settings.signers)}",
        )
        # A rehearsal starts where a real cutover does, dual-write on: after an earlier flip or
        # rehearsal the flag is off, and the flip would record an "off" version to roll back to.
        if self._stack.scenarios.dual_write_on():
            self._step("dual-write", "the flag was off (an earlier flip): turned back on first")
        pre = cutover.preflight(now=wt.now())
        failures = "; ".join(pre.gate.failures) or "none"
        self._step(
            "pre-flight",
            f"gate {'passed' if pre.gate.passed else 'not passed'} (failures: {failures})",
        )
        engine = wt.runbooks
        params = {
            "override_by": OPERATOR,
            "override_reason": "REHEARSAL on the sandbox: minutes of history, not 7 days",
        }
        run = engine.start("disable-dual-write", params=params, started_by=OPERATOR)
        self._step("disable-dual-write", f"started by {OPERATOR} (execution {run})")
        waiting = self._wait(
            "the approval step", lambda: engine.get(run).waiting_step or _final(engine, run)
        )
        if _final(engine, run):
            raise RuntimeError(f"disable-dual-write ended {engine.get(run).status.value}")
        engine.approve(run, by=APPROVER, comment="REHEARSAL: approved by a second person")
        self._step("approval", f"{APPROVER} approved step {waiting.step_id}")
        self._wait("the runbook to finish", lambda: _final(engine, run))
        status = engine.get(run).status.value
        self._step("disable-dual-write", f"finished: {status}")
        if status != "succeeded":
            raise RuntimeError(f"disable-dual-write {status}")
        cutover.sync_runbook_events(now=wt.now())
        window = self._wait("the window to open", cutover.store.open_window)
        self._step(
            "window",
            f"REHEARSAL window {window.id} open from {window.opened_at:%H:%M:%S} to "
            f"{window.ends_at:%H:%M:%S} UTC",
        )
        half = window.opened_at + timedelta(seconds=window.duration_seconds / 2)
        if progress.inject:
            self._until(half)
            self._stack.scenarios.switch(progress.inject)
            self._step("inject", f"scenario {progress.inject} half-way through the window")
            self._sleep(2 * window.interval_seconds + 5)
            self._stack.scenarios.switch("healthy")
            self._step("inject", "scenario healthy again")
        self._until(window.ends_at + timedelta(seconds=window.interval_seconds + 2))
        cutover.tick(now=wt.now())
        verdict = cutover.verdict(window.id, now=wt.now())
        progress.outcome.update(window=window.id, verdict=verdict.state.value)
        self._step("verdict", f"{verdict.state.value}: {verdict.headline}")
        if verdict.can_sign:
            self._sign(window.id, verdict.missing_roles)
        else:
            self._roll_back(window.id)

    def _sign(self, window_id: str, roles: tuple[str, ...] | list[str]) -> None:
        cutover, now = self._wt.cutover, self._wt.now
        for number, role in enumerate(roles, 1):
            cutover.sign(
                window_id,
                name=f"Rehearsal signer {number}",
                role=role,
                comment="REHEARSAL sign-off",
                # One login signs one role, in a rehearsal too: each role its own signer.
                user=f"rehearsal-signer-{number}",
                via="rehearsal",
                now=now(),
            )
            self._step("sign-off", f"Rehearsal signer {number} signed as {role}")
        report = cutover.report(window_id, now=now())
        verified = bool(report.verification and report.verification.ok)
        assert self.progress is not None
        self.progress.outcome.update(
            verdict=report.document["verdict"]["state"],
            frozen=report.frozen,
            sha256=report.sha256,
            verified=verified,
            kind=report.document.get("kind"),
        )
        self._step(
            "report",
            f"REHEARSAL report {'frozen' if report.frozen else 'NOT frozen'}, "
            f"REHEARSAL sha256 {report.sha256}, {'verified' if verified else 'NOT verified'}",
        )

    def _roll_back(self, window_id: str) -> None:
        engine = self._wt.runbooks
        back = engine.start(
            self._wt.cutover.cutover.rollback_runbook, params={}, started_by=OPERATOR
        )
        self._step("rollback", f"the window cannot be signed: rollback runbook started ({back})")
        self._wait("the rollback", lambda: engine.get(back).waiting_step or _final(engine, back))
        if engine.get(back).waiting_step is not None:
            engine.approve(back, by=APPROVER, comment="REHEARSAL: roll back")
            self._wait("the rollback", lambda: _final(engine, back))
        self._wt.cutover.sync_runbook_events(now=self._wt.now())
        state = self._wt.cutover.verdict(window_id, now=self._wt.now()).state.value
        assert self.progress is not None
        self.progress.outcome.update(verdict=state, rollback=engine.get(back).status.value)
        ended = engine.get(back)
        why = "".join(
            f" (step {s.step_id}: {s.error})" for s in ended.steps if s.status.value == "failed"
        )
        self._step("rollback", f"{ended.status.value}{why}; the window is {state}")

    def _wait(self, what: str, found: Callable[[], Any], timeout: float = RUNBOOK_WAIT) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = found()
            if value:
                return value
            self._sleep(0.5)
        raise RuntimeError(f"gave up waiting for {what} after {timeout:.0f} s")

    def _until(self, moment: datetime) -> None:
        while (left := (moment - datetime.now(UTC)).total_seconds()) > 0:
            self._sleep(min(left, 1.0))


def _final(engine: Any, run: str) -> bool:
    return bool(engine.get(run).status.final)
