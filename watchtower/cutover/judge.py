"""The verdict on a cutover window, from its evidence and `now`. Pure: no I/O, no clock.

The judge composes the registered criteria (`watchtower.cutover.criteria`, one module each),
the coverage and timeline (`watchtower.cutover.coverage`) and says it in a headline.

The window runs from the flip to `duration` later, cut into slots aligned on the epoch; each slot
should have one sample. Each criterion of Story 6.1 is judged from the samples' readings:

    flag               ENABLE_DYNAMODB_DUAL_WRITE read false in every sample (AC 3)
    legacy_inserts     no row inserted into the legacy table after the flip (AC 4)
    dynamodb_writes    writes continue: each hour >= min_write_ratio of the same hour's average
                       over the baseline days, and never uploads without writes (AC 5)
    upload_success     > 99.9% of user uploads and probe runs succeed over the window (AC 8)
    upload_latency     P95 <= 800 ms over the window, its estimate <= 10% above the baseline's,
                       and no breach of 800 ms lasting longer than max_breach_seconds (AC 7)
    dual_write_errors  no dual-write attempted and no legacy_write_failed error after the grace
                       period; Lambda errors <= 0.1% of invocations (checklist)
    critical_alerts    no critical alert still firing at the latest sample (checklist, AC 6)

A criterion is `ok` (holds so far), `failing` (does not hold now, may still recover), `failed`
(cannot recover: the window fails) or `unknown` (no evidence). Evidence gaps (a slot without a
sample, or a source that could not be read) are shown and count: the window can be signed only
when it is complete, at least `min_coverage` of it has evidence, and every criterion is `ok`.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from watchtower import figures as fig
from watchtower.cutover.config import CutoverSettings
from watchtower.cutover.coverage import (
    Coverage,
    Gap,
    TimelineSlot,
    due_grace,
    slot_at,
    slots,
)
from watchtower.cutover.coverage import coverage as coverage_of
from watchtower.cutover.coverage import timeline as timeline_of
from watchtower.cutover.criteria import registry as criteria_registry
from watchtower.cutover.criteria.base import (
    Chart,
    ChartLine,
    Criterion,
    CriterionResult,
    CriterionStatus,
    Event,
    Evidence,
    Slot,
    hm,
)
from watchtower.cutover.model import CRITERIA, CloseReason, Sample, SignOff, Window

__all__ = [
    "RULES",
    "TITLES",
    "Chart",
    "ChartLine",
    "Coverage",
    "Criterion",
    "CriterionResult",
    "CriterionStatus",
    "Event",
    "Evidence",
    "Gap",
    "Slot",
    "State",
    "TimelineSlot",
    "Verdict",
    "detect_flip",
    "due_grace",
    "judge",
    "slot_at",
    "slots",
]

RULES: dict[str, Criterion] = criteria_registry()  # every criterion, by name
if set(RULES) != set(CRITERIA):  # a sample reads model.CRITERIA; the judge judges RULES
    raise RuntimeError(f"criteria registered {sorted(RULES)}, samples read {sorted(CRITERIA)}")
TITLES = {name: (c.title, c.story) for name, c in RULES.items()}


class State(enum.StrEnum):
    COLLECTING = "collecting"
    READY = "ready"  # complete, covered, every criterion ok: stakeholders may sign
    SIGNED = "signed"
    FAILED = "failed"
    NOT_MET = "not_met"  # complete, but a criterion is failing or unknown
    INSUFFICIENT_COVERAGE = "insufficient_coverage"
    ROLLED_BACK = "rolled_back"
    ABANDONED = "abandoned"


@dataclass(frozen=True, kw_only=True)
class Verdict:
    window: Window
    now: datetime
    state: State
    headline: str
    complete: bool
    criteria: tuple[CriterionResult, ...]
    coverage: Coverage
    timeline: tuple[TimelineSlot, ...]
    signoffs: tuple[SignOff, ...]
    required_roles: tuple[str, ...]
    missing_roles: tuple[str, ...]
    can_sign: bool
    refusal: str | None  # why signing is refused now (None when it is allowed)

    def criterion(self, name: str) -> CriterionResult:
        return next(c for c in self.criteria if c.name == name)


def judge(
    window: Window,
    samples: Iterable[Sample],
    *,
    now: datetime,
    settings: CutoverSettings,
    signoffs: Sequence[SignOff] = (),
) -> Verdict:
    if window.closed_at is not None and window.close_reason in (
        CloseReason.ROLLED_BACK,
        CloseReason.ABANDONED,
    ):
        now = min(now, window.closed_at)
    all_slots = tuple(slots(window))
    grace = due_grace(window)
    by_at = {s.at: s for s in samples if s.window_id == window.id}
    in_window = {slot.at: by_at[slot.at] for slot in all_slots if slot.at in by_at}
    due = tuple(s for s in all_slots if s.at in in_window or now >= s.at + grace)
    last = all_slots[-1]
    complete = now >= window.ends_at and (last.at in in_window or now >= last.at + grace)
    latest = max(by_at.values(), key=lambda s: s.at) if by_at else None
    ev = Evidence(
        window=window,
        settings=settings,
        now=now,
        slots=all_slots,
        due=due,
        by_slot=in_window,
        latest=latest,
        complete=complete,
    )
    results = tuple(RULES[name].judge(ev) for name in CRITERIA)
    coverage = coverage_of(ev)
    timeline = timeline_of(ev, results)
    signed_roles = {s.role for s in signoffs}
    missing = tuple(r for r in settings.signers if r not in signed_roles)
    state, headline = _state(ev, results, coverage, missing)
    refusal = _refusal(state, ev, coverage, results, missing)
    return Verdict(
        window=window,
        now=now,
        state=state,
        headline=headline,
        complete=complete,
        criteria=results,
        coverage=coverage,
        timeline=timeline,
        signoffs=tuple(signoffs),
        required_roles=settings.signers,
        missing_roles=missing,
        can_sign=refusal is None,
        refusal=refusal,
    )


def _state(
    ev: Evidence,
    results: Sequence[CriterionResult],
    coverage: Coverage,
    missing: Sequence[str],
) -> tuple[State, str]:
    window = ev.window
    if window.close_reason is CloseReason.ROLLED_BACK and window.closed_at is not None:
        why = f": {window.close_comment}" if window.close_comment else ""
        return State.ROLLED_BACK, (
            f"Rolled back at {hm(window.closed_at)} by {window.closed_by}, "
            f"{ev.after_flip(window.closed_at)} after the flip{why}"
        )
    if window.close_reason is CloseReason.ABANDONED and window.closed_at is not None:
        return State.ABANDONED, f"Abandoned at {hm(window.closed_at)} by {window.closed_by}"
    failed = [c for c in results if c.status is CriterionStatus.FAILED]
    if failed:
        first = min(failed, key=lambda c: c.failed_at or window.ends_at)
        return State.FAILED, f"Failed: {first.title}: {first.detail}"
    if not ev.complete:
        hour = min(int((ev.now - window.opened_at).total_seconds() // 3600) + 1, _hours(window))
        holding = [c for c in results if c.status is not CriterionStatus.OK]
        so_far = (
            "every criterion holds so far"
            if not holding
            else f"not holding now: {', '.join(c.title for c in holding)}"
        )
        return State.COLLECTING, (
            f"Collecting evidence, hour {hour} of {_hours(window)}: {so_far}; "
            f"the window ends at {hm(window.ends_at)}"
        )
    if coverage.ratio is None or coverage.ratio < coverage.required:
        return State.INSUFFICIENT_COVERAGE, (
            f"Only {fig.percent(coverage.ratio)} of the window has evidence; "
            f"{fig.percent(coverage.required, 0)} is required to sign"
        )
    not_ok = [c for c in results if c.status is not CriterionStatus.OK]
    if not_ok:
        return State.NOT_MET, "Not met: " + "; ".join(f"{c.title}: {c.detail}" for c in not_ok)
    if not missing:
        return State.SIGNED, (
            f"Signed: all criteria held for {fig.duration(window.duration_seconds)} with "
            f"{fig.percent(coverage.ratio)} evidence coverage"
        )
    return State.READY, (
        f"All criteria held for {fig.duration(window.duration_seconds)} with "
        f"{fig.percent(coverage.ratio)} evidence coverage: ready for sign-off"
    )


def _refusal(
    state: State,
    ev: Evidence,
    coverage: Coverage,
    results: Sequence[CriterionResult],
    missing: Sequence[str],
) -> str | None:
    window = ev.window
    if state is State.READY:
        return None
    if state is State.COLLECTING:
        return (
            f"The window is not over: it ends at {hm(window.ends_at)}, in "
            f"{fig.duration(window.ends_at - ev.now)}; sign-off opens once "
            f"{fig.duration(window.duration_seconds)} of evidence have been judged"
        )
    if state is State.SIGNED:
        return "Every required stakeholder has signed; the report is frozen"
    if state is State.INSUFFICIENT_COVERAGE:
        return (
            f"Evidence covers {fig.percent(coverage.ratio)} of the window, under the required "
            f"{fig.percent(coverage.required, 0)}: this window cannot be signed"
        )
    return f"Cannot be signed: {_state(ev, results, coverage, missing)[1]}"


def _hours(window: Window) -> int:
    return math.ceil(window.duration_seconds / 3600)


def detect_flip(
    points: Sequence[tuple[datetime, float | None]],
) -> tuple[datetime, datetime] | None:
    """When the flag went from on to off, from the dual_write check's `flag` figure over time.

    Returns (last seen on, first seen off) for the latest on -> off change, when the newest known
    reading is off; None when the flag is on, unknown, or was never seen on.
    """
    known = sorted(((at, v) for at, v in points if v is not None), key=lambda p: p[0])
    if not known or known[-1][1] != 0:
        return None
    last_on = next((i for i in range(len(known) - 1, -1, -1) if known[i][1] >= 1), None)
    if last_on is None:
        return None
    return known[last_on][0], known[last_on + 1][0]
