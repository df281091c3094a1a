"""What a cutover criterion is, the evidence it judges, and the one builder of its result.

A criterion is one class in one module of this package, decorated with `@register`: a name (one
of `model.CRITERIA`), a title, the story it comes from, and `judge(evidence)`. It reads the
readings of its name from the window's samples and says `ok`, `failing`, `failed` or `unknown`
through a `Finding`: the threshold, chart, figure, events and breaches it found, and one method
per status. Pure: no I/O, no clock (`Evidence.now` is the judging moment).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, ClassVar

from watchtower import figures as fig
from watchtower.cutover.config import CutoverSettings
from watchtower.cutover.model import Reading, Sample, Window
from watchtower.registry import Registry


class CriterionStatus(enum.StrEnum):
    OK = "ok"
    FAILING = "failing"
    FAILED = "failed"
    UNKNOWN = "unknown"


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
class Evidence:
    """The window's samples at the judging moment, slot by slot."""

    window: Window
    settings: CutoverSettings
    now: datetime  # the judging moment, never later than a rollback or abandonment
    slots: tuple[Slot, ...]
    due: tuple[Slot, ...]
    by_slot: Mapping[datetime, Sample]
    latest: Sample | None  # the newest sample, after the window's end too
    complete: bool

    def readings(self, criterion: str) -> list[tuple[Slot, Sample, Reading]]:
        """The readable readings of one criterion, in the slots due so far."""
        out = []
        for slot in self.due:
            sample = self.by_slot.get(slot.at)
            if sample is not None and sample.reading(criterion).readable:
                out.append((slot, sample, sample.reading(criterion)))
        return out

    def series(
        self, value: Callable[[Sample, Reading], float | None], criterion: str
    ) -> tuple[tuple[datetime, float | None], ...]:
        """One chart point per slot of the whole window: None where there is no reading."""
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


@dataclass(frozen=True, kw_only=True)
class Finding:
    """What a criterion found; its methods make the result, one per status (the one builder)."""

    criterion: Criterion
    threshold: str
    chart: Chart
    figure: str = ""
    events: tuple[Event, ...] = ()
    breaches: Mapping[datetime, str] = field(default_factory=dict)

    def found(
        self,
        *,
        figure: str | None = None,
        events: Iterable[Event] | None = None,
        breaches: Mapping[datetime, str] | None = None,
    ) -> Finding:
        """This finding with a figure, events or breaches; what is not given stays."""
        return replace(
            self,
            figure=self.figure if figure is None else figure,
            events=self.events if events is None else tuple(events),
            breaches=self.breaches if breaches is None else dict(breaches),
        )

    def result(
        self, status: CriterionStatus, detail: str, *, failed_at: datetime | None = None
    ) -> CriterionResult:
        c = self.criterion
        return CriterionResult(
            name=c.name,
            title=c.title,
            story=c.story,
            status=status,
            figure=self.figure,
            threshold=self.threshold,
            detail=detail,
            chart=self.chart,
            failed_at=failed_at,
            events=tuple(sorted(self.events, key=lambda e: e.at)),
            breaches=dict(self.breaches),
        )

    def ok(self, detail: str) -> CriterionResult:
        return self.result(CriterionStatus.OK, detail)

    def failing(self, detail: str) -> CriterionResult:
        return self.result(CriterionStatus.FAILING, detail)

    def failed(self, detail: str, *, at: datetime) -> CriterionResult:
        return self.result(CriterionStatus.FAILED, detail, failed_at=at)

    def unknown(self, detail: str) -> CriterionResult:
        return self.result(CriterionStatus.UNKNOWN, detail)

    def not_met(self, ev: Evidence, detail: str) -> CriterionResult:
        """Over the window's limit: failed once the window is complete, failing until then."""
        if ev.complete:
            return self.failed(detail, at=ev.window.ends_at)
        return self.failing(detail)

    def no_evidence(self) -> CriterionResult:
        return replace(self, figure="no evidence yet", events=(), breaches={}).unknown(
            "no sample could read this yet"
        )


class Criterion:
    """Base of every criterion: a name of `model.CRITERIA`, its title and story, a judgement."""

    name: ClassVar[str]
    title: ClassVar[str]
    story: ClassVar[str]  # where it comes from: "AC 3", "checklist"

    def judge(self, ev: Evidence) -> CriterionResult:
        raise NotImplementedError

    def finding(self, threshold: str, chart: Chart) -> Finding:
        return Finding(criterion=self, threshold=threshold, chart=chart)

    def readings(self, ev: Evidence) -> list[tuple[Slot, Sample, Reading]]:
        return ev.readings(self.name)

    def series(
        self, ev: Evidence, value: Callable[[Sample, Reading], float | None]
    ) -> tuple[tuple[datetime, float | None], ...]:
        return ev.series(value, self.name)


REGISTRY: Registry[Criterion] = Registry("criterion")
register = REGISTRY.register
registered = REGISTRY.registered


def num(value: Any) -> float:
    """A figure as a number: 0 when it is missing or not a number."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def hm(moment: datetime) -> str:
    """'2026-11-27 12:30:00 UTC' (`[11:16]` of it is the time, '12:30')."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
