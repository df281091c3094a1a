"""Where a cutover window has evidence: its slots, the coverage and gaps, the timeline. Pure.

The window runs from the flip to `duration` later, cut into slots aligned on the epoch; each slot
should have one sample. A slot without a sample, or whose sample could not read a source, is a
gap: shown, and counted against the coverage the window needs to be signed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from watchtower.cutover.criteria.base import CriterionResult, Evidence, Slot
from watchtower.cutover.model import BACKFILL, CRITERIA, Sample, Window


@dataclass(frozen=True, kw_only=True)
class Gap:
    start: datetime
    end: datetime
    reason: str


@dataclass(frozen=True, kw_only=True)
class Backfilled:
    """A slot the sampler missed, read back later from the sources' history."""

    start: datetime
    end: datetime
    taken_at: str  # when it was read back
    sources: dict[str, str]  # criterion -> where its reading came from


@dataclass(frozen=True, kw_only=True)
class Coverage:
    ratio: float | None  # evidence over the part of the window due so far
    required: float
    covered_seconds: float
    due_seconds: float
    window_seconds: float
    gaps: tuple[Gap, ...]
    backfilled: tuple[Backfilled, ...] = ()  # counted as covered when they read every source


@dataclass(frozen=True, kw_only=True)
class TimelineSlot:
    start: datetime
    end: datetime
    state: str  # ok, breach, gap, pending
    note: str = ""


def slots(window: Window) -> list[Slot]:
    """The window's slots: boundaries on multiples of the interval, the first and last clipped."""
    step = window.interval_seconds
    start, end = window.opened_at, window.ends_at
    boundary = (math.floor(start.timestamp() / step) + 1) * step
    out = []
    while boundary - step < end.timestamp():
        at = datetime.fromtimestamp(boundary, UTC)
        out.append(Slot(start=max(start, at - timedelta(seconds=step)), end=min(at, end), at=at))
        boundary += step
    return out


def slot_at(now: datetime, interval: int) -> datetime:
    """The boundary of the slot that ended last at `now`: what a sample taken now is stamped."""
    return datetime.fromtimestamp(math.floor(now.timestamp() / interval) * interval, UTC)


def due_grace(window: Window) -> timedelta:
    """How long after its boundary a slot's sample may arrive before the slot is a gap."""
    return timedelta(seconds=min(60, window.interval_seconds))


def gap_reason(sample: Sample | None) -> str | None:
    """Why a slot is a gap, or None when its sample read every criterion's sources."""
    if sample is None:
        return "no sample (Watchtower was not running or could not sample)"
    unreadable = [
        f"{name}: {sample.reading(name).error}"
        for name in CRITERIA
        if not sample.reading(name).readable
    ]
    return "unreadable: " + "; ".join(unreadable) if unreadable else None


def coverage(ev: Evidence) -> Coverage:
    covered = 0.0
    due_seconds = 0.0
    gaps: list[Gap] = []
    for slot in ev.due:
        due_seconds += slot.seconds
        reason = gap_reason(ev.by_slot.get(slot.at))
        if reason is None:
            covered += slot.seconds
        elif gaps and gaps[-1].end == slot.start and gaps[-1].reason == reason:
            gaps[-1] = Gap(start=gaps[-1].start, end=slot.end, reason=reason)
        else:
            gaps.append(Gap(start=slot.start, end=slot.end, reason=reason))
    window_seconds = float(ev.window.duration_seconds)
    denominator = window_seconds if ev.complete else due_seconds
    return Coverage(
        ratio=covered / denominator if denominator else None,
        required=ev.settings.min_coverage,
        covered_seconds=covered,
        due_seconds=due_seconds,
        window_seconds=window_seconds,
        gaps=tuple(gaps),
        backfilled=backfilled(ev),
    )


def backfilled(ev: Evidence) -> tuple[Backfilled, ...]:
    """The due slots whose sample was read back after a gap, marked by its `backfill` reading."""
    out = []
    for slot in ev.due:
        sample = ev.by_slot.get(slot.at)
        mark = sample.readings.get(BACKFILL) if sample is not None else None
        if mark is not None and mark.readable:
            out.append(
                Backfilled(
                    start=slot.start,
                    end=slot.end,
                    taken_at=str(mark.figures.get("taken_at")),
                    sources=dict(mark.figures.get("sources") or {}),
                )
            )
    return tuple(out)


def timeline(ev: Evidence, results: Sequence[CriterionResult]) -> tuple[TimelineSlot, ...]:
    """Every slot: pending (not due yet), breach (a criterion's), gap, or ok."""
    due = {s.at for s in ev.due}
    out = []
    for slot in ev.slots:
        if slot.at not in due:
            out.append(TimelineSlot(start=slot.start, end=slot.end, state="pending"))
            continue
        gap = gap_reason(ev.by_slot.get(slot.at))
        breaches = [f"{c.title}: {c.breaches[slot.at]}" for c in results if slot.at in c.breaches]
        if breaches:
            note = "; ".join(breaches) + (f" ({gap})" if gap else "")
            out.append(TimelineSlot(start=slot.start, end=slot.end, state="breach", note=note))
        elif gap:
            out.append(TimelineSlot(start=slot.start, end=slot.end, state="gap", note=gap))
        else:
            out.append(TimelineSlot(start=slot.start, end=slot.end, state="ok"))
    return tuple(out)
