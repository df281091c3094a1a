"""The verdict on a cutover window, from its evidence and `now`. Pure: no I/O, no clock.

The window runs from the flip to `duration` later, cut into slots aligned on the epoch; each slot
should have one sample. Each criterion of Story 6.1 is judged from the samples' readings:

    flag               ENABLE_DYNAMODB_DUAL_WRITE read false in every sample (AC 3)
    legacy_inserts     no row inserted into gallery_images after the flip (AC 4)
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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from watchtower.cutover import figures as fig
from watchtower.cutover.config import CutoverSettings
from watchtower.cutover.model import (
    CRITERIA,
    CloseReason,
    Reading,
    Sample,
    SignOff,
    Window,
    parse_iso,
)


class CriterionStatus(enum.StrEnum):
    OK = "ok"
    FAILING = "failing"
    FAILED = "failed"
    UNKNOWN = "unknown"


class State(enum.StrEnum):
    COLLECTING = "collecting"
    READY = "ready"  # complete, covered, every criterion ok: stakeholders may sign
    SIGNED = "signed"
    FAILED = "failed"
    NOT_MET = "not_met"  # complete, but a criterion is failing or unknown
    INSUFFICIENT_COVERAGE = "insufficient_coverage"
    ROLLED_BACK = "rolled_back"
    ABANDONED = "abandoned"


TITLES = {
    "flag": ("Dual-write flag still off", "AC 3"),
    "legacy_inserts": ("PostgreSQL writes stopped", "AC 4"),
    "dynamodb_writes": ("Image Service writes continue", "AC 5"),
    "upload_success": ("Upload success rate", "AC 8"),
    "upload_latency": ("Upload latency stable", "AC 7"),
    "dual_write_errors": ("No errors from the missing dual-write", "checklist"),
    "critical_alerts": ("No unresolved critical alert", "AC 6"),
}


@dataclass(frozen=True, kw_only=True)
class Slot:
    start: datetime
    end: datetime  # min(at, window end)
    at: datetime  # the slot's boundary: its sample is stamped with it

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True, kw_only=True)
class Event:
    at: datetime
    text: str


@dataclass(frozen=True, kw_only=True)
class ChartLine:
    label: str
    points: tuple[tuple[datetime, float | None], ...]


@dataclass(frozen=True, kw_only=True)
class Chart:
    unit: str
    lines: tuple[ChartLine, ...]
    threshold: float | None = None


@dataclass(frozen=True, kw_only=True)
class CriterionResult:
    name: str
    title: str
    story: str
    status: CriterionStatus
    figure: str
    threshold: str
    detail: str
    chart: Chart
    failed_at: datetime | None = None
    events: tuple[Event, ...] = ()
    breaches: Mapping[datetime, str] = field(default_factory=dict)  # slot `at` -> what happened


@dataclass(frozen=True, kw_only=True)
class Gap:
    start: datetime
    end: datetime
    reason: str


@dataclass(frozen=True, kw_only=True)
class Coverage:
    ratio: float | None  # evidence over the part of the window due so far
    required: float
    covered_seconds: float
    due_seconds: float
    window_seconds: float
    gaps: tuple[Gap, ...]


@dataclass(frozen=True, kw_only=True)
class TimelineSlot:
    start: datetime
    end: datetime
    state: str  # ok, breach, gap, pending
    note: str = ""


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


# -- slots --------------------------------------------------------------------------------------


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


# -- the verdict --------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _Evidence:
    window: Window
    settings: CutoverSettings
    now: datetime  # the judging moment, never later than a rollback or abandonment
    slots: tuple[Slot, ...]
    due: tuple[Slot, ...]
    by_slot: Mapping[datetime, Sample]
    latest: Sample | None  # the newest sample, after the window's end too
    complete: bool

    def readings(self, criterion: str) -> list[tuple[Slot, Sample, Reading]]:
        out = []
        for slot in self.due:
            sample = self.by_slot.get(slot.at)
            if sample is not None and sample.reading(criterion).readable:
                out.append((slot, sample, sample.reading(criterion)))
        return out

    def series(self, value: Callable[[Sample, Reading], float | None], criterion: str) -> tuple:
        points = []
        for slot in self.slots:
            sample = self.by_slot.get(slot.at)
            reading = sample.reading(criterion) if sample is not None else None
            v = (
                value(sample, reading)
                if sample is not None and reading and reading.readable
                else None
            )
            points.append((slot.at, v))
        return tuple(points)

    def after_flip(self, moment: datetime) -> str:
        return fig.duration(moment - self.window.opened_at)


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
    ev = _Evidence(
        window=window,
        settings=settings,
        now=now,
        slots=all_slots,
        due=due,
        by_slot=in_window,
        latest=latest,
        complete=complete,
    )
    results = tuple(RULES[name](ev) for name in CRITERIA)
    coverage = _coverage(ev)
    timeline = _timeline(ev, results)
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
    ev: _Evidence,
    results: Sequence[CriterionResult],
    coverage: Coverage,
    missing: Sequence[str],
) -> tuple[State, str]:
    window = ev.window
    if window.close_reason is CloseReason.ROLLED_BACK and window.closed_at is not None:
        why = f": {window.close_comment}" if window.close_comment else ""
        return State.ROLLED_BACK, (
            f"Rolled back at {_hm(window.closed_at)} by {window.closed_by}, "
            f"{ev.after_flip(window.closed_at)} after the flip{why}"
        )
    if window.close_reason is CloseReason.ABANDONED and window.closed_at is not None:
        return State.ABANDONED, f"Abandoned at {_hm(window.closed_at)} by {window.closed_by}"
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
            f"the window ends at {_hm(window.ends_at)}"
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
    ev: _Evidence,
    coverage: Coverage,
    results: Sequence[CriterionResult],
    missing: Sequence[str],
) -> str | None:
    window = ev.window
    if state is State.READY:
        return None
    if state is State.COLLECTING:
        return (
            f"The window is not over: it ends at {_hm(window.ends_at)}, in "
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


def _hm(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# -- coverage and the timeline ------------------------------------------------------------------


def _gap_reason(sample: Sample | None) -> str | None:
    if sample is None:
        return "no sample (Watchtower was not running or could not sample)"
    unreadable = [
        f"{name}: {sample.reading(name).error}"
        for name in CRITERIA
        if not sample.reading(name).readable
    ]
    return "unreadable: " + "; ".join(unreadable) if unreadable else None


def _coverage(ev: _Evidence) -> Coverage:
    covered = 0.0
    due_seconds = 0.0
    gaps: list[Gap] = []
    for slot in ev.due:
        due_seconds += slot.seconds
        reason = _gap_reason(ev.by_slot.get(slot.at))
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
    )


def _timeline(ev: _Evidence, results: Sequence[CriterionResult]) -> tuple[TimelineSlot, ...]:
    due = {s.at for s in ev.due}
    out = []
    for slot in ev.slots:
        if slot.at not in due:
            out.append(TimelineSlot(start=slot.start, end=slot.end, state="pending"))
            continue
        gap = _gap_reason(ev.by_slot.get(slot.at))
        breaches = [f"{c.title}: {c.breaches[slot.at]}" for c in results if slot.at in c.breaches]
        if breaches:
            note = "; ".join(breaches) + (f" ({gap})" if gap else "")
            out.append(TimelineSlot(start=slot.start, end=slot.end, state="breach", note=note))
        elif gap:
            out.append(TimelineSlot(start=slot.start, end=slot.end, state="gap", note=gap))
        else:
            out.append(TimelineSlot(start=slot.start, end=slot.end, state="ok"))
    return tuple(out)


# -- the criteria -------------------------------------------------------------------------------


def _result(
    name: str,
    status: CriterionStatus,
    *,
    figure: str,
    threshold: str,
    detail: str,
    chart: Chart,
    failed_at: datetime | None = None,
    events: Iterable[Event] = (),
    breaches: Mapping[datetime, str] | None = None,
) -> CriterionResult:
    title, story = TITLES[name]
    return CriterionResult(
        name=name,
        title=title,
        story=story,
        status=status,
        figure=figure,
        threshold=threshold,
        detail=detail,
        chart=chart,
        failed_at=failed_at,
        events=tuple(sorted(events, key=lambda e: e.at)),
        breaches=dict(breaches or {}),
    )


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _no_evidence(name: str, threshold: str, chart: Chart) -> CriterionResult:
    return _result(
        name,
        CriterionStatus.UNKNOWN,
        figure="no evidence yet",
        threshold=threshold,
        detail="no sample could read this yet",
        chart=chart,
    )


def judge_flag(ev: _Evidence) -> CriterionResult:
    threshold = "ENABLE_DYNAMODB_DUAL_WRITE reads false on the function in every sample"
    chart = Chart(
        unit="flag (1 = on)",
        lines=(
            ChartLine(
                label="flag", points=ev.series(lambda s, r: _num(r.figures.get("flag")), "flag")
            ),
        ),
        threshold=None,
    )
    readings = ev.readings("flag")
    if not readings:
        return _no_evidence("flag", threshold, chart)
    on = [(slot, sample) for slot, sample, r in readings if _num(r.figures.get("flag")) >= 1]
    breaches = {slot.at: "the flag read true" for slot, _ in on}
    if on:
        first = on[0][1].taken_at
        return _result(
            "flag",
            CriterionStatus.FAILED,
            figure=f"true in {len(on)} sample{'' if len(on) == 1 else 's'}",
            threshold=threshold,
            detail=(
                f"ENABLE_DYNAMODB_DUAL_WRITE read true at {_hm(first)}, "
                f"{ev.after_flip(first)} after the flip: dual-write was turned back on"
            ),
            chart=chart,
            failed_at=first,
            events=[Event(at=sample.taken_at, text="flag read true") for _, sample in on],
            breaches=breaches,
        )
    return _result(
        "flag",
        CriterionStatus.OK,
        figure=f"false in all {len(readings)} samples",
        threshold=threshold,
        detail=f"read false in every one of {len(readings)} samples",
        chart=chart,
    )


def _after_grace(r: Reading) -> float:
    f = r.figures
    return _num(f["rows_after_grace"] if "rows_after_grace" in f else f.get("rows_since_flip"))


def judge_legacy_inserts(ev: _Evidence) -> CriterionResult:
    grace = fig.duration(ev.settings.grace_seconds)
    threshold = (
        f"0 rows inserted into gallery_images after the flip (rows in the first {grace}, from "
        "requests in flight at the flip, are shown, not failing)"
    )
    chart = Chart(
        unit="rows since the flip",
        lines=(
            ChartLine(
                label="rows",
                points=ev.series(
                    lambda s, r: _num(r.figures.get("rows_since_flip")), "legacy_inserts"
                ),
            ),
        ),
        threshold=0.0,
    )
    readings = ev.readings("legacy_inserts")
    if not readings:
        return _no_evidence("legacy_inserts", threshold, chart)
    rows = max(_num(r.figures.get("rows_since_flip")) for _, _, r in readings)
    after = max(_after_grace(r) for _, _, r in readings)
    breaches = {
        slot.at: fig.count(r.figures.get("rows_in_slot"), "row") + " inserted"
        for slot, _, r in readings
        if _num(r.figures.get("rows_in_slot")) > 0
    }
    events = [
        Event(at=slot.end, text=breaches[slot.at]) for slot, _, _ in readings if slot.at in breaches
    ]
    firsts = [
        parse_iso(r.figures["first_insert_at"])
        for _, _, r in readings
        if r.figures.get("first_insert_at")
    ]
    if firsts:
        events.append(Event(at=min(firsts), text="first row inserted into gallery_images"))
    if after > 0:
        late = [
            parse_iso(r.figures.get("first_after_grace_at") or r.figures["first_insert_at"])
            for _, _, r in readings
            if _after_grace(r) > 0
            and (r.figures.get("first_after_grace_at") or r.figures.get("first_insert_at"))
        ]
        first = (
            min(late) if late else next(s.taken_at for _, s, r in readings if _after_grace(r) > 0)
        )
        return _result(
            "legacy_inserts",
            CriterionStatus.FAILED,
            figure=fig.count(after, "row") + " since the flip",
            threshold=threshold,
            detail=(
                f"{fig.count(after, 'row')} inserted into gallery_images after the flip; the "
                f"first at {_hm(first)}, {ev.after_flip(first)} after the flip"
            ),
            chart=chart,
            failed_at=first,
            events=events,
            breaches=breaches,
        )
    if rows > 0:
        return _result(
            "legacy_inserts",
            CriterionStatus.OK,
            figure=f"0 rows since the flip ({fig.count(rows, 'row')} in the first {grace})",
            threshold=threshold,
            detail=(
                f"{fig.count(rows, 'row')} inserted within {grace} of the flip, by requests in "
                "flight then; none since"
            ),
            chart=chart,
            events=events,
            breaches=breaches,
        )
    return _result(
        "legacy_inserts",
        CriterionStatus.OK,
        figure="0 rows since the flip",
        threshold=threshold,
        detail=f"no row inserted since the flip, in {len(readings)} samples",
        chart=chart,
    )


def _expected_writes(ev: _Evidence, sample: Sample) -> float | None:
    baseline = ev.window.baseline
    if baseline is None or baseline.error is not None or len(baseline.writes_by_hour) != 24:
        return None
    hours = (sample.metrics_end - sample.metrics_start).total_seconds() / 3600
    middle = sample.metrics_start + (sample.metrics_end - sample.metrics_start) / 2
    return baseline.writes_by_hour[middle.astimezone(UTC).hour] * hours


def judge_dynamodb_writes(ev: _Evidence) -> CriterionResult:
    s = ev.settings
    days = ev.window.baseline.days if ev.window.baseline else s.baseline_days
    threshold = (
        f"each hour >= {s.min_write_ratio:.0%} of the same hour's {days}-day average "
        f"(at most {s.max_low_write_hours} hours below); never uploads without writes"
    )
    chart = Chart(
        unit="write units per slot",
        lines=(
            ChartLine(
                label="writes",
                points=ev.series(
                    lambda smp, r: _num(r.figures.get("write_units")), "dynamodb_writes"
                ),
            ),
            ChartLine(
                label="usual",
                points=ev.series(lambda smp, r: _expected_writes(ev, smp), "dynamodb_writes"),
            ),
        ),
    )
    readings = ev.readings("dynamodb_writes")
    if not readings:
        return _no_evidence("dynamodb_writes", threshold, chart)
    baseline_ok = _expected_writes(ev, readings[0][1]) is not None
    hours: dict[int, list[tuple[Slot, Sample, Reading]]] = {}
    for item in readings:
        # The hour of the window the slot ends in; a slot ending on the hour belongs to it.
        index = int(((item[0].end - ev.window.opened_at).total_seconds() - 1e-6) // 3600)
        hours.setdefault(max(index, 0), []).append(item)
    stopped: list[tuple[int, float]] = []
    low: list[tuple[int, float, float]] = []
    breaches: dict[datetime, str] = {}
    events: list[Event] = []
    actual_total = expected_total = 0.0
    for index, items in sorted(hours.items()):
        hour_start = ev.window.opened_at + timedelta(hours=index)
        hour_end = min(hour_start + timedelta(hours=1), ev.window.ends_at)
        actual = sum(_num(r.figures.get("write_units")) for _, _, r in items)
        uploads = sum(_num(r.figures.get("uploads")) for _, _, r in items)
        expected = sum(_expected_writes(ev, smp) or 0.0 for _, smp, _ in items)
        actual_total += actual
        expected_total += expected
        finished = ev.now >= hour_end
        label = f"hour {index + 1} ({_hm(hour_start)[11:16]}-{_hm(hour_end)[11:16]} UTC)"
        if uploads > 0 and actual == 0:
            stopped.append((index, uploads))
            events.append(Event(at=hour_start, text=f"{label}: {uploads:.0f} uploads, no writes"))
            for slot, _, _ in items:
                breaches[slot.at] = "uploads without DynamoDB writes"
        elif (
            finished
            and baseline_ok
            and expected >= s.min_baseline_write_units
            and actual < s.min_write_ratio * expected
        ):
            low.append((index, actual, expected))
            events.append(
                Event(
                    at=hour_start,
                    text=f"{label}: {actual:.0f} write units, {actual / expected:.0%} of the usual "
                    f"{expected:.0f}",
                )
            )
            for slot, _, _ in items:
                breaches.setdefault(slot.at, f"writes {actual / expected:.0%} of the usual")
    share = actual_total / expected_total if expected_total else None
    figure = f"{actual_total:,.0f} write units" + (
        f", {share:.0%} of the usual {expected_total:,.0f}" if share is not None else ""
    )
    if stopped:
        index, uploads = stopped[0]
        at = ev.window.opened_at + timedelta(hours=index)
        return _result(
            "dynamodb_writes",
            CriterionStatus.FAILED,
            figure=figure,
            threshold=threshold,
            detail=(
                f"{uploads:.0f} uploads succeeded but DynamoDB consumed no write capacity in "
                f"hour {index + 1} of the window (from {_hm(at)})"
            ),
            chart=chart,
            failed_at=at,
            events=events,
            breaches=breaches,
        )
    if len(low) > s.max_low_write_hours:
        index = low[s.max_low_write_hours][0]
        return _result(
            "dynamodb_writes",
            CriterionStatus.FAILED,
            figure=figure,
            threshold=threshold,
            detail=(
                f"{len(low)} hours had under {s.min_write_ratio:.0%} of their usual writes "
                f"(at most {s.max_low_write_hours} allowed)"
            ),
            chart=chart,
            failed_at=ev.window.opened_at + timedelta(hours=index + 1),
            events=events,
            breaches=breaches,
        )
    if not baseline_ok:
        why = ev.window.baseline.error if ev.window.baseline else "not fetched yet"
        return _result(
            "dynamodb_writes",
            CriterionStatus.UNKNOWN,
            figure=figure,
            threshold=threshold,
            detail=f"no baseline to compare the rate with ({why}); it is fetched again each sample",
            chart=chart,
            events=events,
            breaches=breaches,
        )
    detail = (
        "writes continue at the usual rate"
        if not low
        else (
            f"writes continue; {len(low)} quiet hour{'' if len(low) == 1 else 's'} "
            f"(at most {s.max_low_write_hours} allowed)"
        )
    )
    return _result(
        "dynamodb_writes",
        CriterionStatus.OK,
        figure=figure,
        threshold=threshold,
        detail=detail,
        chart=chart,
        events=events,
        breaches=breaches,
    )


def judge_upload_success(ev: _Evidence) -> CriterionResult:
    s = ev.settings
    threshold = f"> {fig.percent(s.min_success_ratio, 1)} of user uploads and probe runs"

    def slot_ratio(sample: Sample, r: Reading) -> float | None:
        total, failed = _upload_counts(r)
        return (1 - failed / total) * 100 if total else None

    chart = Chart(
        unit="% succeeded",
        lines=(ChartLine(label="success", points=ev.series(slot_ratio, "upload_success")),),
        threshold=s.min_success_ratio * 100,
    )
    readings = ev.readings("upload_success")
    if not readings:
        return _no_evidence("upload_success", threshold, chart)
    total = failed = 0.0
    breaches: dict[datetime, str] = {}
    events = []
    for slot, _, r in readings:
        t, f = _upload_counts(r)
        total += t
        failed += f
        if f:
            parts = []
            if _num(r.figures.get("server_errors")):
                parts.append(fig.count(r.figures.get("server_errors"), "server error"))
            if _num(r.figures.get("probe_failures")):
                parts.append(fig.count(r.figures.get("probe_failures"), "failed probe run"))
            breaches[slot.at] = ", ".join(parts)
            events.append(Event(at=slot.start, text=breaches[slot.at]))
    if not total:
        return _result(
            "upload_success",
            CriterionStatus.UNKNOWN,
            figure="no uploads yet",
            threshold=threshold,
            detail="no user upload and no probe run recorded in the window yet",
            chart=chart,
        )
    ratio = 1 - failed / total
    figure = f"{fig.percent(ratio)} of {total:,.0f} ({failed:,.0f} failed)"
    if ratio > s.min_success_ratio:
        return _result(
            "upload_success",
            CriterionStatus.OK,
            figure=figure,
            threshold=threshold,
            detail=f"{fig.percent(ratio)} of {total:,.0f} uploads and probe runs succeeded",
            chart=chart,
            events=events,
            breaches=breaches,
        )
    status = CriterionStatus.FAILED if ev.complete else CriterionStatus.FAILING
    return _result(
        "upload_success",
        status,
        figure=figure,
        threshold=threshold,
        detail=(
            f"{fig.percent(ratio)} succeeded ({failed:,.0f} of {total:,.0f} failed), not above "
            f"{fig.percent(s.min_success_ratio, 1)}"
        ),
        chart=chart,
        failed_at=ev.window.ends_at if status is CriterionStatus.FAILED else None,
        events=events,
        breaches=breaches,
    )


def _upload_counts(r: Reading) -> tuple[float, float]:
    """(attempts, failures) of one slot: user uploads (server errors fail) and probe runs."""
    f = r.figures
    uploads = _num(f.get("uploads"))
    failures = _num(f.get("server_errors"))
    return uploads + _num(f.get("probe_runs")), failures + _num(f.get("probe_failures"))


def _latency(r: Reading) -> tuple[float, dict[int, float]]:
    over = {int(k): _num(v) for k, v in (r.figures.get("over") or {}).items()}
    return _num(r.figures.get("samples")), over


def judge_upload_latency(ev: _Evidence) -> CriterionResult:
    s = ev.settings
    objective = int(s.max_p95_ms)
    baseline = ev.window.baseline.latency if ev.window.baseline else None
    base = fig.p95_estimate(baseline.samples, baseline.over) if baseline else None
    threshold = (
        f"P95 <= {objective} ms, at most {s.max_p95_regression:.0%} above the baseline's, no "
        f"breach longer than {fig.duration(s.max_breach_seconds)}"
    )

    def slot_p95(sample: Sample, r: Reading) -> float | None:
        n, over = _latency(r)
        if n < s.min_slot_latency_samples:
            return None
        estimate = fig.p95_estimate(n, over)
        return estimate if estimate is not None else float(max(over, default=objective))

    lines = [ChartLine(label="P95 (estimate)", points=ev.series(slot_p95, "upload_latency"))]
    if base is not None:
        lines.append(ChartLine(label="baseline", points=tuple((sl.at, base) for sl in ev.slots)))
    chart = Chart(unit="ms", lines=tuple(lines), threshold=float(objective))
    readings = ev.readings("upload_latency")
    if not readings:
        return _no_evidence("upload_latency", threshold, chart)
    total = 0.0
    over_total: dict[int, float] = {}
    breaches: dict[datetime, str] = {}
    runs: list[list[Slot]] = []
    current: list[Slot] = []
    for slot, _, r in readings:
        n, over = _latency(r)
        total += n
        for k, v in over.items():
            over_total[k] = over_total.get(k, 0.0) + v
        if n < s.min_slot_latency_samples:
            continue  # too few to say whether this slot breached: neither breach nor recovery
        share = fig.share_over(n, over, objective) or 0.0
        if share > fig.P95_SHARE:
            breaches[slot.at] = f"{share:.0%} of uploads over {objective} ms"
            current.append(slot)
        elif current:
            runs.append(current)
            current = []
    ongoing = current
    events = []
    sustained: tuple[datetime, float] | None = None
    for run in runs:
        seconds = (run[-1].end - run[0].start).total_seconds()
        events.append(
            Event(
                at=run[0].start,
                text=f"P95 over {objective} ms from {_hm(run[0].start)[11:16]} to "
                f"{_hm(run[-1].end)[11:16]} ({fig.duration(seconds)}), recovered",
            )
        )
        if seconds > s.max_breach_seconds and sustained is None:
            sustained = (run[0].start, seconds)
    if ongoing:
        seconds = (ongoing[-1].end - ongoing[0].start).total_seconds()
        events.append(
            Event(
                at=ongoing[0].start,
                text=f"P95 over {objective} ms since {_hm(ongoing[0].start)[11:16]} "
                f"({fig.duration(seconds)}), not recovered",
            )
        )
        if seconds > s.max_breach_seconds and sustained is None:
            sustained = (ongoing[0].start, seconds)
    window_share = fig.share_over(total, over_total, objective)
    estimate = fig.p95_estimate(total, over_total)
    bound = fig.p95_bound(total, over_total)
    shown = (
        f"P95 ~{fig.ms(estimate)}"
        if estimate is not None
        else f"P95 over {max(over_total, default=objective)} ms"
    )
    figure = (
        f"{shown} over {total:,.0f} uploads; baseline ~{fig.ms(base)}; "
        f"{fig.percent(window_share)} over {objective} ms"
    )
    if sustained is not None:
        start, seconds = sustained
        return _result(
            "upload_latency",
            CriterionStatus.FAILED,
            figure=figure,
            threshold=threshold,
            detail=(
                f"upload P95 stayed over {objective} ms for {fig.duration(seconds)} from "
                f"{_hm(start)} (at most {fig.duration(s.max_breach_seconds)} allowed)"
            ),
            chart=chart,
            failed_at=start + timedelta(seconds=s.max_breach_seconds),
            events=events,
            breaches=breaches,
        )
    if total < s.min_window_latency_samples:
        return _result(
            "upload_latency",
            CriterionStatus.UNKNOWN,
            figure=figure,
            threshold=threshold,
            detail=(
                f"only {total:,.0f} uploads timed so far; at least "
                f"{s.min_window_latency_samples} are needed to judge the P95"
            ),
            chart=chart,
            events=events,
            breaches=breaches,
        )
    problems = []
    if window_share is not None and window_share > fig.P95_SHARE:
        problems.append(
            f"{fig.percent(window_share)} of uploads took over {objective} ms "
            f"(P95 over {objective} ms)"
        )
    if base is not None:
        limit = base * (1 + s.max_p95_regression)
        if estimate is None or estimate > limit:
            problems.append(
                f"{shown} is more than {s.max_p95_regression:.0%} above the "
                f"baseline's ~{fig.ms(base)}"
            )
    if ongoing:
        problems.append(events[-1].text)
    if problems:
        status = CriterionStatus.FAILED if ev.complete and not ongoing else CriterionStatus.FAILING
        return _result(
            "upload_latency",
            status,
            figure=figure,
            threshold=threshold,
            detail="; ".join(problems),
            chart=chart,
            failed_at=ev.window.ends_at if status is CriterionStatus.FAILED else None,
            events=events,
            breaches=breaches,
        )
    detail = f"P95 at most {fig.ms(bound)} over the window"
    if base is None:
        detail += "; no baseline latency to compare with (too few uploads before the flip)"
    spikes = len(runs)
    if spikes:
        detail += f"; {spikes} short spike{'' if spikes == 1 else 's'}, recovered"
    return _result(
        "upload_latency",
        CriterionStatus.OK,
        figure=figure,
        threshold=threshold,
        detail=detail,
        chart=chart,
        events=events,
        breaches=breaches,
    )


def judge_dual_write_errors(ev: _Evidence) -> CriterionResult:
    s = ev.settings
    threshold = (
        "0 dual-writes attempted and 0 legacy_write_failed errors after the flip; Lambda errors "
        f"<= {fig.percent(s.max_lambda_error_ratio, 1)} of invocations"
    )
    grace_end = ev.window.opened_at + timedelta(seconds=s.grace_seconds)

    def slot_errors(sample: Sample, r: Reading) -> float:
        f = r.figures
        return (
            _num(f.get("dual_write_attempts"))
            + _num(f.get("legacy_errors"))
            + _num(f.get("lambda_errors"))
        )

    chart = Chart(
        unit="errors per slot",
        lines=(ChartLine(label="errors", points=ev.series(slot_errors, "dual_write_errors")),),
        threshold=0.0,
    )
    readings = ev.readings("dual_write_errors")
    if not readings:
        return _no_evidence("dual_write_errors", threshold, chart)
    attempts = legacy = lambda_errors = invocations = 0.0
    first: datetime | None = None
    breaches: dict[datetime, str] = {}
    events = []
    for slot, sample, r in readings:
        f = r.figures
        lambda_errors += _num(f.get("lambda_errors"))
        invocations += _num(f.get("lambda_invocations"))
        parts = []
        if _num(f.get("lambda_errors")):
            parts.append(fig.count(f.get("lambda_errors"), "Lambda error"))
        if sample.metrics_start >= grace_end:
            a, le = _num(f.get("dual_write_attempts")), _num(f.get("legacy_errors"))
            attempts += a
            legacy += le
            if a:
                parts.append(fig.count(a, "dual-write") + " attempted")
            if le:
                parts.append(fig.count(le, "legacy_write_failed error"))
            if (a or le) and first is None:
                first = sample.metrics_start
        if parts:
            breaches[slot.at] = ", ".join(parts)
            events.append(Event(at=sample.metrics_start, text=breaches[slot.at]))
    ratio = lambda_errors / invocations if invocations else None
    figure = (
        f"{attempts:,.0f} dual-writes, {legacy:,.0f} legacy errors, "
        f"{lambda_errors:,.0f} Lambda errors in {invocations:,.0f} invocations"
    )
    if first is not None:
        return _result(
            "dual_write_errors",
            CriterionStatus.FAILED,
            figure=figure,
            threshold=threshold,
            detail=(
                f"{attempts:,.0f} dual-writes attempted and {legacy:,.0f} legacy_write_failed "
                f"errors after the flip, the first between {_hm(first)} and "
                f"{_hm(first + timedelta(seconds=ev.window.interval_seconds))}: a process "
                "still runs with dual-write on"
            ),
            chart=chart,
            failed_at=first,
            events=events,
            breaches=breaches,
        )
    if lambda_errors and (ratio is None or ratio > s.max_lambda_error_ratio):
        status = CriterionStatus.FAILED if ev.complete else CriterionStatus.FAILING
        return _result(
            "dual_write_errors",
            status,
            figure=figure,
            threshold=threshold,
            detail=(
                f"{lambda_errors:,.0f} Lambda errors ({fig.percent(ratio)} of "
                f"{invocations:,.0f} invocations), over "
                f"{fig.percent(s.max_lambda_error_ratio, 1)}"
            ),
            chart=chart,
            failed_at=ev.window.ends_at if status is CriterionStatus.FAILED else None,
            events=events,
            breaches=breaches,
        )
    return _result(
        "dual_write_errors",
        CriterionStatus.OK,
        figure=figure,
        threshold=threshold,
        detail="no dual-write attempted and no legacy write error after the flip",
        chart=chart,
        events=events,
        breaches=breaches,
    )


def judge_critical_alerts(ev: _Evidence) -> CriterionResult:
    threshold = "no critical alert still firing"
    chart = Chart(
        unit="critical alerts firing",
        lines=(
            ChartLine(
                label="firing",
                points=ev.series(
                    lambda s, r: float(len(r.figures.get("firing") or ())), "critical_alerts"
                ),
            ),
        ),
        threshold=0.0,
    )
    readings = ev.readings("critical_alerts")
    latest = ev.latest
    latest_reading = latest.reading("critical_alerts") if latest else None
    if not readings and not (latest_reading and latest_reading.readable):
        return _no_evidence("critical_alerts", threshold, chart)
    seen: dict[str, dict[str, Any]] = {}
    breaches: dict[datetime, str] = {}
    for slot, sample, r in readings:
        firing = r.figures.get("firing") or []
        if firing:
            breaches[slot.at] = ", ".join(sorted({a["name"] for a in firing})) + " firing"
        for alert in firing:
            entry = seen.setdefault(
                alert["fingerprint"],
                {"name": alert["name"], "since": alert.get("since"), "first": sample.at},
            )
            entry["last"] = sample.at
    unresolved = (
        list(latest_reading.figures.get("firing") or [])
        if latest_reading and latest_reading.readable
        else []
    )
    open_prints = {a["fingerprint"] for a in unresolved}
    events = []
    for fingerprint, entry in seen.items():
        since = parse_iso(entry["since"]) if entry.get("since") else entry["first"]
        state = (
            "still firing"
            if fingerprint in open_prints
            else f"resolved by {_hm(entry['last'])[11:16]}"
        )
        events.append(Event(at=since, text=f"{entry['name']} fired ({state})"))
    if unresolved:
        names = ", ".join(
            f"{a['name']} (since {_hm(parse_iso(a['since'])) if a.get('since') else 'unknown'})"
            for a in unresolved
        )
        return _result(
            "critical_alerts",
            CriterionStatus.FAILING,
            figure=f"{len(unresolved)} firing",
            threshold=threshold,
            detail=f"unresolved: {names}",
            chart=chart,
            events=events,
            breaches=breaches,
        )
    resolved = len(seen)
    return _result(
        "critical_alerts",
        CriterionStatus.OK,
        figure="0 firing" + (f" ({resolved} fired and resolved)" if resolved else ""),
        threshold=threshold,
        detail="no critical alert firing at the latest sample",
        chart=chart,
        events=events,
        breaches=breaches,
    )


RULES: dict[str, Callable[[_Evidence], CriterionResult]] = {
    "flag": judge_flag,
    "legacy_inserts": judge_legacy_inserts,
    "dynamodb_writes": judge_dynamodb_writes,
    "upload_success": judge_upload_success,
    "upload_latency": judge_upload_latency,
    "dual_write_errors": judge_dual_write_errors,
    "critical_alerts": judge_critical_alerts,
}


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
