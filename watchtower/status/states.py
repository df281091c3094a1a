"""A component's state now: its sources' newest results, read row by row, and the page's line.

Pure. The rules are the package's (see `watchtower.status`): the worst source decides a row,
a stale source shows as stale, the `upload_get` walk feeds two rows by its steps.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from watchtower.figures import ago, rough_duration, seconds
from watchtower.model import Kind, Result, Status
from watchtower.status.headline import headline

STALE_AFTER_INTERVALS = 2

# The upload_get probe declares component "image_api"; on the page it is the upload path, and
# the steps below are the get path.
ALIASES = {"image_api": "upload_path"}
SPLIT_ROW = "upload_path"
GET_PATH_STEPS = frozenset({"get", "thumbnail", "list"})


class State(enum.StrEnum):
    """What a row or a source shows: a result's status, or that there is no fresh one."""

    OK = "ok"
    WARNING = "warning"
    NO_DATA = "no_data"  # never produced a result
    UNKNOWN = "unknown"  # produced one, but could not read its source
    STALE = "stale"  # its newest result is older than twice its interval
    CRITICAL = "critical"

    @property
    def severity(self) -> int:
        return _STATE_ORDER.index(self)

    @property
    def label(self) -> str:
        return _STATE_LABELS[self]

    @classmethod
    def of(cls, status: Status) -> State:
        return cls(status.value)

    @classmethod
    def worst(cls, states: Iterable[State]) -> State:
        return max(states, key=lambda s: s.severity, default=cls.NO_DATA)


_STATE_ORDER = (
    State.OK,
    State.WARNING,
    State.NO_DATA,
    State.UNKNOWN,
    State.STALE,
    State.CRITICAL,
)
_STATE_LABELS = {
    State.OK: "OK",
    State.WARNING: "Warning",
    State.NO_DATA: "No data",
    State.UNKNOWN: "Unknown",
    State.STALE: "Stale",
    State.CRITICAL: "Critical",
}


@dataclass(frozen=True, kw_only=True)
class Component:
    id: str
    title: str
    covers: str  # what the row watches, in a few words


COMPONENTS: tuple[Component, ...] = (
    Component(
        id="upload_path",
        title="Upload path",
        covers="POST /images to S3 and DynamoDB: the probe's upload, replay, delete; user uploads",
    ),
    Component(
        id="get_path",
        title="Get path",
        covers="GET /images/{id}, the thumbnail via CloudFront or S3, the gallery list",
    ),
    Component(id="dynamodb", title="DynamoDB", covers="throttling and write volume of the table"),
    Component(id="lambda", title="Lambda", covers="cold starts of the image API function"),
    Component(id="cloudfront", title="CloudFront", covers="cache hit rate of the distribution"),
    Component(id="cache", title="Cache (Redis)", covers="the gallery listing cache"),
    Component(
        id="legacy",
        title="Legacy PostgreSQL / dual-write",
        covers="the dual-write flag and success rate, rows still inserted into the legacy table",
    ),
)


@dataclass(frozen=True, kw_only=True)
class Feed:
    """One probe or check as the page reads it: where it shows, and how often it should run."""

    name: str
    kind: Kind
    title: str
    component: str
    interval: float  # seconds

    @property
    def rows(self) -> tuple[str, ...]:
        row = ALIASES.get(self.component, self.component)
        if self.kind == "probe" and row == SPLIT_ROW:
            return (SPLIT_ROW, "get_path")
        return (row,)


# -- a result, as one row reads it ------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Reading:
    status: Status
    reason: str
    figure: str


def step_row(step: str) -> str:
    return "get_path" if step in GET_PATH_STEPS else SPLIT_ROW


def read(feed: Feed, result: Result, row: str) -> Reading:
    """What `result` says about `row`: the whole result, or the part of a walk that is the row."""
    if len(feed.rows) == 1:
        return Reading(status=result.status, reason=result.reason, figure=headline(result))
    steps = [s for s in result.steps if step_row(s.name) == row]
    figure = " · ".join(f"{s.name} {seconds(s.seconds)}" for s in steps if s.ok)
    failed = result.failed_step
    if result.status is Status.UNKNOWN:
        return Reading(status=result.status, reason=result.reason, figure=figure)
    if failed is not None and step_row(failed.name) == row:
        return Reading(status=result.status, reason=result.reason, figure=figure)
    if not steps:
        stopped = f"at its {failed.name} step" if failed is not None else "before them"
        return Reading(
            status=Status.UNKNOWN,
            reason=f"not exercised: the walk stopped {stopped} ({result.reason})",
            figure="",
        )
    if result.status is Status.WARNING and failed is None and row == SPLIT_ROW:
        return Reading(status=result.status, reason=result.reason, figure=figure)
    took = sum(s.seconds for s in steps)
    return Reading(
        status=Status.OK,
        reason=f"{_names([s.name for s in steps])} ok in {seconds(took)}",
        figure=figure,
    )


def _names(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


# -- state now ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SourceState:
    feed: Feed
    row: str
    state: State
    status: Status | None  # the newest run's status, also when stale; None: never ran
    reason: str
    figure: str
    figures: Mapping[str, float | None]
    observed_at: datetime | None
    stale: bool


@dataclass(frozen=True, kw_only=True)
class ComponentState:
    component: Component
    state: State
    reason: str
    figure: str
    last_checked: datetime | None  # the oldest of its sources' newest results
    stale: bool
    sources: tuple[SourceState, ...]


def latest_run(results: Sequence[Result]) -> tuple[Result, ...]:
    """The newest run among one name's results, oldest first: the retry with its first attempt."""
    if not results:
        return ()
    newest = results[-1]
    if newest.attempt > 1 and len(results) > 1 and results[-2].attempt == 1:
        return (results[-2], newest)
    return (newest,)


Reader = Callable[[Feed, Result, str], Reading]  # `read`, or one that remembers (status.kept)


def source_state(
    feed: Feed, row: str, run: Sequence[Result], now: datetime, reader: Reader = read
) -> SourceState:
    if not run:
        return SourceState(
            feed=feed,
            row=row,
            state=State.NO_DATA,
            status=None,
            reason=f"no result yet (it should run every {rough_duration(feed.interval)})",
            figure="",
            figures={},
            observed_at=None,
            stale=False,
        )
    newest = run[-1]
    readings = [reader(feed, r, row) for r in run]
    # The worst reading of the run; on a tie, the newest says it.
    reading = max(reversed(readings), key=lambda r: r.status.severity)
    age = now - newest.observed_at
    stale = age > timedelta(seconds=STALE_AFTER_INTERVALS * feed.interval)
    reason = reading.reason
    if stale:
        reason = (
            f"stale: last result {rough_duration(age.total_seconds())} ago, expected every "
            f"{rough_duration(feed.interval)}; it said {reading.status.value}: {reading.reason}"
        )
    return SourceState(
        feed=feed,
        row=row,
        state=State.STALE if stale else State.of(reading.status),
        status=reading.status,
        reason=reason,
        figure=reading.figure,
        figures=dict(newest.figures),
        observed_at=newest.observed_at,
        stale=stale,
    )


def component_states(
    feeds: Iterable[Feed],
    runs: Mapping[str, Sequence[Result]],
    now: datetime,
    components: Sequence[Component] = COMPONENTS,
    reader: Reader = read,
) -> list[ComponentState]:
    """One state per component, in page order; components no known row names come last."""
    sources: dict[str, list[SourceState]] = defaultdict(list)
    for feed in feeds:
        for row in feed.rows:
            sources[row].append(source_state(feed, row, runs.get(feed.name, ()), now, reader))
    known = {c.id for c in components}
    extra = [Component(id=r, title=r.replace("_", " ").capitalize(), covers="") for r in sources]
    rows = [*components, *(c for c in extra if c.id not in known)]
    return [_component_state(c, sources.get(c.id, [])) for c in rows]


def _component_state(component: Component, sources: list[SourceState]) -> ComponentState:
    if not sources:
        return ComponentState(
            component=component,
            state=State.NO_DATA,
            reason="no probe or check watches this component",
            figure="",
            last_checked=None,
            stale=False,
            sources=(),
        )
    # Worst first; a probe before a check, then by title, so the order is stable.
    ordered = sorted(
        sources, key=lambda s: (-s.state.severity, s.feed.kind != "probe", s.feed.title)
    )
    worst = ordered[0]
    checked = [s.observed_at for s in sources if s.observed_at is not None]
    return ComponentState(
        component=component,
        state=worst.state,
        reason=worst.reason,
        figure=worst.figure,
        last_checked=min(checked) if len(checked) == len(sources) else None,
        stale=any(s.stale for s in sources),
        sources=tuple(ordered),
    )


@dataclass(frozen=True, kw_only=True)
class Overall:
    state: State
    headline: str  # one short line
    detail: str = ""  # which components, by state, worst first


def overall(components: Sequence[ComponentState], now: datetime) -> Overall:
    """One line for the whole page; when nothing is fresh, say that Watchtower itself is idle."""
    attention = [c for c in components if c.state is not State.OK]
    if not attention:
        return Overall(state=State.OK, headline="All components operational")
    groups: dict[State, list[str]] = defaultdict(list)
    for c in sorted(attention, key=lambda c: -c.state.severity):
        groups[c.state].append(c.component.title)
    detail = "; ".join(f"{s.label}: {', '.join(titles)}" for s, titles in groups.items())
    seen = [s.observed_at for c in components for s in c.sources if s.observed_at is not None]
    if not seen:
        return Overall(
            state=State.NO_DATA,
            headline="No results yet: no probe or check has reported",
            detail=detail,
        )
    if all(c.state in (State.STALE, State.NO_DATA) for c in components):
        return Overall(
            state=State.STALE,
            headline=f"No fresh results: the newest is {ago(max(seen), now)}. "
            "Is Watchtower's scheduler running?",
            detail=detail,
        )
    state = State.worst(c.state for c in attention)
    if len(attention) == 1:
        only = attention[0]
        headline = f"{only.component.title}: {only.state.label.lower()}"
    else:
        headline = f"{len(attention)} of {len(components)} components need attention"
    return Overall(state=state, headline=headline, detail=detail)
