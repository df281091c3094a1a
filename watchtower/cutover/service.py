"""The cutover workflow over the store and the sources: open, sample, judge, sign, freeze.

Every method takes `now`: the scheduler and the web edge read the clock, nothing here does.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from watchtower.config import Settings
from watchtower.cutover import backfill, evidence
from watchtower.cutover.canonical import verify_chain
from watchtower.cutover.config import CutoverSettings
from watchtower.cutover.document import preflight_document
from watchtower.cutover.errors import NoWindow, Refused
from watchtower.cutover.gate import Decision, Gate, Override, decide, decide_gate
from watchtower.cutover.judge import Verdict, detect_flip, judge, slot_at
from watchtower.cutover.model import (
    CloseReason,
    PreflightReport,
    Sample,
    Window,
    iso,
)
from watchtower.cutover.ports import (
    CostSource,
    EvidencePorts,
    PreflightPorts,
    ResultHistory,
    RunbookEvents,
)
from watchtower.cutover.preflight import gather_preflight
from watchtower.cutover.runbook_sync import RunbookSync
from watchtower.cutover.runbook_sync import parse_moment as parse_moment  # the forms' parser
from watchtower.cutover.runbook_sync import versions_comment as versions_comment
from watchtower.cutover.signing import (
    MAX_NAME,
    Signing,
    _text,
)
from watchtower.cutover.store import CutoverStore

log = logging.getLogger(__name__)

CLOCK_SKEW = timedelta(minutes=5)  # a flip time this far in the future is still accepted


@dataclass(frozen=True, kw_only=True)
class Preflight:
    report: PreflightReport
    gate: Gate
    document: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class DetectedFlip:
    last_on: datetime
    first_off: datetime


class CutoverService(Signing):
    def __init__(
        self,
        *,
        settings: Settings,
        cutover: CutoverSettings,
        store: CutoverStore,
        evidence_ports: EvidencePorts,
        preflight_ports: PreflightPorts,
        results: ResultHistory,
        runbook_events: RunbookEvents | None = None,
        costs: CostSource | None = None,
    ) -> None:
        self.settings = settings
        self.cutover = cutover
        self.store = store
        self.evidence_ports = evidence_ports
        self.preflight_ports = preflight_ports
        self.results = results
        self.runbook_events = runbook_events
        self.costs = costs

    # -- the window -----------------------------------------------------------------------------

    def latest(self) -> Window | None:
        found = self.store.windows()
        return found[0] if found else None

    def window(self, window_id: str | None = None) -> Window:
        if window_id is not None:
            return self.store.window(window_id)
        latest = self.latest()
        if latest is None:
            raise NoWindow("no cutover window has been opened yet")
        return latest

    def open_window(
        self,
        *,
        flipped_by: str,
        at: datetime,
        now: datetime,
        via: str = "runbook",
        confirmed_by: str | None = None,
        comment: str = "",
        execution_id: str | None = None,
        runbook_event: str | None = None,
    ) -> Window:
        """Open the window for a flip of the flag to false at `at` (refused while one is open)."""
        flipped_by = _text(flipped_by, "who flipped the flag", limit=MAX_NAME, required=True)
        comment = _text(comment, "the comment")
        if at > now + CLOCK_SKEW:
            raise Refused(f"the flip time {iso(at)} is in the future")
        if at < now - timedelta(seconds=self.cutover.window_seconds):
            raise Refused(
                f"the flip time {iso(at)} is more than a whole window ago: its evidence cannot "
                "be collected any more; turn dual-write on and off again, or open it at the "
                "time it really happened if that is recent"
            )
        window = Window(
            id=uuid.uuid4().hex,
            opened_at=at,
            opened_by=flipped_by,
            via=via,
            confirmed_by=confirmed_by,
            comment=comment,
            duration_seconds=self.cutover.window_seconds,
            interval_seconds=self.cutover.sample_interval,
            recorded_at=now,
        )
        self.store.add_window(window)
        baseline = self._baseline(window)
        self.store.set_baseline(window.id, baseline)
        self.store.append(
            at=now,
            actor=confirmed_by or flipped_by,
            action="window-opened",
            window_id=window.id,
            detail={
                "flipped_at": iso(at),
                "flipped_by": flipped_by,
                "via": via,
                "confirmed_by": confirmed_by,
                "comment": comment,
                "execution_id": execution_id,
                "runbook_event": runbook_event,
                "ends_at": iso(window.ends_at),
                "baseline_error": baseline.error,
            },
        )
        log.info("cutover window %s opened: flag off at %s by %s", window.id, iso(at), flipped_by)
        return self.store.window(window.id)

    def _baseline(self, window: Window) -> Any:
        return evidence.fetch_baseline(
            window.opened_at,
            settings=self.settings,
            cutover=self.cutover,
            ports=self.evidence_ports,
        )

    def detected_flip(self, *, now: datetime) -> DetectedFlip | None:
        """A flip of the flag to false seen by the dual_write check, that no window covers yet."""
        since = now - timedelta(seconds=self.cutover.window_seconds)
        points = [
            (r.observed_at, r.figures.get("flag"))
            for r in self.results.history("dual_write", since=since, until=now)
        ]
        found = detect_flip(points)
        if found is None:
            return None
        last_on, first_off = found
        latest = self.latest()
        if latest is not None and latest.opened_at > last_on - timedelta(minutes=1):
            return None  # this flip has its window already
        return DetectedFlip(last_on=last_on, first_off=first_off)

    def sync_runbook_events(self, *, now: datetime) -> list[str]:
        """Open and close windows for the runbooks' `cutover.record_event` steps (`RunbookSync`)."""
        if self.runbook_events is None:
            return []
        return RunbookSync(self, self.runbook_events).sync(now=now)

    def tick(self, *, now: datetime) -> Sample | None:
        """The scheduler's job: act on the runbooks' cutover events, then take the open window's
        sample for the slot that ended last."""
        self.sync_runbook_events(now=now)
        window = self.store.open_window()
        if window is None:
            return None
        at = slot_at(now, window.interval_seconds)
        if at <= window.opened_at or self.store.has_sample(window.id, at):
            return None
        if window.baseline is None or window.baseline.error is not None:
            baseline = self._baseline(window)
            if window.baseline is None or baseline.error is None:
                self.store.set_baseline(window.id, baseline)
                window = self.store.window(window.id)
        sample = evidence.take_sample(
            window,
            at=at,
            taken_at=now,
            settings=self.settings,
            cutover=self.cutover,
            ports=self.evidence_ports,
        )
        if not self.store.add_sample(sample):
            return None
        self.backfill(window, now=now)
        return sample

    def backfill(self, window: Window, *, now: datetime) -> list[datetime]:
        """Read back the slots of the window the sampler missed (see `cutover.backfill`)."""
        return backfill.backfill(
            self.store,
            window,
            now=now,
            settings=self.settings,
            cutover=self.cutover,
            ports=self.evidence_ports,
        )

    def verdict(self, window_id: str | None = None, *, now: datetime) -> Verdict:
        window = self.window(window_id)
        return judge(
            window,
            self.store.samples(window.id),
            now=now,
            settings=self.cutover,
            signoffs=self.signoffs(window.id),
        )

    def close(
        self,
        window_id: str,
        *,
        reason: CloseReason,
        by: str,
        at: datetime,
        comment: str,
        now: datetime,
        runbook_event: str | None = None,
    ) -> Window:
        """Close a window as rolled back (dual-write turned on again) or abandoned."""
        if reason is CloseReason.SIGNED:
            raise Refused("a window is closed as signed by its last sign-off, not by hand")
        by = _text(by, "who", limit=MAX_NAME, required=True)
        comment = _text(comment, "the reason", required=True)
        window = self.store.window(window_id)
        if at < window.opened_at or at > now + CLOCK_SKEW:
            raise Refused(
                f"{iso(at)} is not between the flip ({iso(window.opened_at)}) and now ({iso(now)})"
            )
        self.store.close(window_id, reason=reason, by=by, at=at, comment=comment)
        self.store.append(
            at=now,
            actor=by,
            action="rolled-back" if reason is CloseReason.ROLLED_BACK else "abandoned",
            window_id=window_id,
            detail={"at": iso(at), "reason": comment, "runbook_event": runbook_event},
        )
        return self.store.window(window_id)

    # -- the pre-flight report ------------------------------------------------------------------

    def preflight(self, *, now: datetime, days: int | None = None) -> Preflight:
        days = days or self.cutover.preflight_days
        report = gather_preflight(
            settings=self.settings,
            cutover=self.cutover,
            ports=self.preflight_ports,
            now=now,
            days=days,
        )
        gate = decide_gate(
            report,
            min_success_ratio=self.cutover.min_success_ratio,
            tolerance=self.cutover.reconciliation_tolerance,
        )
        document = preflight_document(report, gate, cutover=self.cutover, generated_at=now)
        return Preflight(report=report, gate=gate, document=document)

    def record_preflight(
        self,
        preflight: Preflight,
        *,
        actor: str,
        now: datetime,
        override: Override | None = None,
        execution_id: str | None = None,
    ) -> Decision:
        """Decide whether to proceed, and write the decision in the audit log (an override
        always; a plain pass or refusal too, so the timeline shows every pre-flight)."""
        decision = decide(preflight.gate, override)
        detail: dict[str, Any] = {
            "summary": _preflight_summary(preflight.document),
            "decision": decision.text,
            "proceed": decision.proceed,
            "execution_id": execution_id,
        }
        if decision.overridden and override is not None:
            detail["override"] = {"by": override.by.strip(), "reason": override.reason.strip()}
            self.store.append(at=now, actor=override.by.strip(), action="override", detail=detail)
        else:
            self.store.append(at=now, actor=actor, action="preflight", detail=detail)
        return decision

    # -- the audit log --------------------------------------------------------------------------

    def audit_problems(self) -> list[str]:
        return verify_chain(self.store.audit())


def _preflight_summary(document: Mapping[str, Any]) -> dict[str, Any]:
    keys = (
        "start",
        "end",
        "days",
        "attempts",
        "failures",
        "failures_by_reason",
        "success_ratio",
        "reconciliation",
        "gate",
        "sha256",
    )
    return {k: document.get(k) for k in keys}
