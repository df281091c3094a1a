"""What the status page says, decided from results and `now`: states, staleness, uptime, days.

Pure: no Flask, no SQL, no clock. The web edge reads the store and the clock and hands them in.
The rules, as docs/status-page.md and the page's footer state them:

* A component's **state now** is the worst state of its sources (the probes and checks that
  feed its row): critical > stale > unknown > no data > warning > ok. A probe's latest run
  counts whole: when its newest result is the immediate retry (attempt 2), the first attempt
  counts too, as the runner means it.
* A source is **stale** when its newest result is older than twice its interval. A stale source
  shows as stale, never in its last colour; its last word is kept in the text only.
* The `upload_get` probe walks both paths: its `get`, `thumbnail` and `list` steps make the
  **get path** row, its other steps (and its slowness warnings) the **upload path** row. A row
  none of whose steps ran in a walk (the walk stopped earlier) has no reading from it: unknown.
* History counts first attempts only: a probe failure is critical there only when its
  immediate retry confirmed it (an unconfirmed one is stored as a warning).
* Every reading covers one interval of its source. Per UTC hour and component, **down time** is
  the longest critical time of any one of its sources, **observed time** the longest time any
  source read ok, warning or critical (unknown readings say nothing; each capped at the hour).
  **Uptime** over a window is 1 - down / observed; no observed time means no figure.
* A **day** (UTC) is *down* when any of its sources read critical that day, else *degraded*
  when any read warning, else *operational* when any read ok, else *no data*.
"""

from __future__ import annotations

import enum
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from watchtower.model import Kind, Result, Status, StatusCount

STALE_AFTER_INTERVALS = 2
DAYS = 90
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
WINDOWS: tuple[tuple[str, int], ...] = (
    ("24h", 24),
    ("7d", 7 * 24),
    ("30d", 30 * 24),
    ("90d", 90 * 24),
)
LATENCY_HOURS = 24

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


class DayState(enum.StrEnum):
    OPERATIONAL = "operational"
    DEGRADED = "degraded"
    DOWN = "down"
    NO_DATA = "no_data"

    @property
    def label(self) -> str:
        return {
            DayState.OPERATIONAL: "Operational",
            DayState.DEGRADED: "Degraded (warning)",
            DayState.DOWN: "Down (critical)",
            DayState.NO_DATA: "No data",
        }[self]


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
        covers="the dual-write flag and success rate, rows still inserted into gallery_images",
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


def source_state(feed: Feed, row: str, run: Sequence[Result], now: datetime) -> SourceState:
    if not run:
        return SourceState(
            feed=feed,
            row=row,
            state=State.NO_DATA,
            status=None,
            reason=f"no result yet (it should run every {duration(feed.interval)})",
            figure="",
            figures={},
            observed_at=None,
            stale=False,
        )
    newest = run[-1]
    readings = [read(feed, r, row) for r in run]
    # The worst reading of the run; on a tie, the newest says it.
    reading = max(reversed(readings), key=lambda r: r.status.severity)
    age = now - newest.observed_at
    stale = age > timedelta(seconds=STALE_AFTER_INTERVALS * feed.interval)
    reason = reading.reason
    if stale:
        reason = (
            f"stale: last result {duration(age.total_seconds())} ago, expected every "
            f"{duration(feed.interval)}; it said {reading.status.value}: {reading.reason}"
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
) -> list[ComponentState]:
    """One state per component, in page order; components no known row names come last."""
    sources: dict[str, list[SourceState]] = defaultdict(list)
    for feed in feeds:
        for row in feed.rows:
            sources[row].append(source_state(feed, row, runs.get(feed.name, ()), now))
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


# -- history: hours, uptime, days ---------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Hour:
    """One component in one UTC hour: seconds observed, down and degraded; readings by status."""

    observed: float = 0.0
    down: float = 0.0
    degraded: float = 0.0
    ok: int = 0
    warning: int = 0
    critical: int = 0
    unknown: int = 0


Hours = dict[str, dict[datetime, Hour]]  # component -> hour start -> Hour


def hours_from(
    feeds: Iterable[Feed],
    counts: Iterable[StatusCount],
    split_problems: Iterable[Result] = (),
) -> Hours:
    """Fold per-source counts into per-component hours.

    `counts` are the store's first-attempt counts. A probe that feeds two rows is counted from
    its ok results there, and from `split_problems` (its first attempts that were not ok) one
    by one, since which row a failure belongs to depends on the step that failed.
    """
    feeds_by_name = {f.name: f for f in feeds}
    # (row, hour, source) -> status -> count
    tally: dict[tuple[str, datetime, str], dict[Status, int]] = defaultdict(
        lambda: defaultdict(int)
    )
    for c in counts:
        feed = feeds_by_name.get(c.name)
        if feed is None:
            continue
        if len(feed.rows) > 1 and c.status is not Status.OK:
            continue  # counted one by one from split_problems
        for row in feed.rows:
            tally[(row, c.hour, c.name)][c.status] += c.count
    for result in split_problems:
        feed = feeds_by_name.get(result.name)
        if feed is None or len(feed.rows) < 2 or result.attempt != 1:
            continue
        hour = floor_hour(result.observed_at)
        for row in feed.rows:
            tally[(row, hour, result.name)][read(feed, result, row).status] += 1

    per_hour: dict[tuple[str, datetime], list[tuple[float, dict[Status, int]]]] = defaultdict(list)
    for (row, hour, name), statuses in tally.items():
        per_hour[(row, hour)].append((feeds_by_name[name].interval, statuses))
    hours: Hours = defaultdict(dict)
    for (row, hour), sources in per_hour.items():
        hours[row][hour] = _hour(sources)
    return dict(hours)


def _hour(sources: list[tuple[float, dict[Status, int]]]) -> Hour:
    span = HOUR.total_seconds()

    def longest(*statuses: Status) -> float:
        return min(
            span, max(interval * sum(c.get(s, 0) for s in statuses) for interval, c in sources)
        )

    down = longest(Status.CRITICAL)
    return Hour(
        observed=longest(Status.OK, Status.WARNING, Status.CRITICAL),
        down=down,
        degraded=min(span - down, longest(Status.WARNING)),
        ok=sum(c.get(Status.OK, 0) for _, c in sources),
        warning=sum(c.get(Status.WARNING, 0) for _, c in sources),
        critical=sum(c.get(Status.CRITICAL, 0) for _, c in sources),
        unknown=sum(c.get(Status.UNKNOWN, 0) for _, c in sources),
    )


def uptime(hours: Mapping[datetime, Hour], now: datetime, window_hours: int) -> float | None:
    """1 - down / observed over the last `window_hours` UTC hours (this one included)."""
    start = floor_hour(now) - (window_hours - 1) * HOUR
    inside = [h for start_, h in hours.items() if start <= start_ <= now]
    observed = sum(h.observed for h in inside)
    if observed <= 0:
        return None
    return max(0.0, 1 - sum(h.down for h in inside) / observed)


def uptimes(hours: Mapping[datetime, Hour], now: datetime) -> dict[str, float | None]:
    return {name: uptime(hours, now, n) for name, n in WINDOWS}


@dataclass(frozen=True, kw_only=True)
class Day:
    date: date
    state: DayState
    uptime: float | None
    down_seconds: float
    degraded_seconds: float
    coverage: float  # observed share of the day (of its elapsed part, for today)
    ok: int
    warning: int
    critical: int
    unknown: int


def days(hours: Mapping[datetime, Hour], now: datetime, count: int = DAYS) -> list[Day]:
    """The last `count` UTC days, oldest first, today last."""
    today = now.astimezone(UTC).date()
    by_day: dict[date, list[Hour]] = defaultdict(list)
    for start, h in hours.items():
        by_day[start.date()].append(h)
    out = []
    for back in range(count - 1, -1, -1):
        day = today - timedelta(days=back)
        inside = by_day.get(day, [])
        totals = Hour(
            observed=sum(h.observed for h in inside),
            down=sum(h.down for h in inside),
            degraded=sum(h.degraded for h in inside),
            ok=sum(h.ok for h in inside),
            warning=sum(h.warning for h in inside),
            critical=sum(h.critical for h in inside),
            unknown=sum(h.unknown for h in inside),
        )
        if totals.critical:
            state = DayState.DOWN
        elif totals.warning:
            state = DayState.DEGRADED
        elif totals.ok:
            state = DayState.OPERATIONAL
        else:
            state = DayState.NO_DATA
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        length = min(DAY, max(now - start, timedelta(seconds=1))).total_seconds()
        out.append(
            Day(
                date=day,
                state=state,
                uptime=1 - totals.down / totals.observed if totals.observed else None,
                down_seconds=totals.down,
                degraded_seconds=totals.degraded,
                coverage=min(1.0, totals.observed / length),
                ok=totals.ok,
                warning=totals.warning,
                critical=totals.critical,
                unknown=totals.unknown,
            )
        )
    return out


# -- latency ------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class LatencyPoint:
    start: datetime  # the hour's start
    p50: float | None
    p95: float | None
    samples: int


@dataclass(frozen=True, kw_only=True)
class StepLatency:
    probe: str
    step: str
    points: tuple[LatencyPoint, ...]
    threshold: float | None = None  # the probe's warning threshold for this step, when it has one

    @property
    def last(self) -> LatencyPoint | None:
        return next((p for p in reversed(self.points) if p.samples), None)


StepKey = tuple[str, str]  # (probe, step)


@dataclass(frozen=True, kw_only=True)
class StepSamples:
    """The seconds of every step that held, per UTC hour, and what the results said about steps."""

    seconds: dict[datetime, dict[StepKey, list[float]]]
    positions: dict[StepKey, int]  # the earliest place the step had in a walk: the chart order
    thresholds: dict[StepKey, float]  # the newest warning threshold a result gave the step

    def merge(self, newer: StepSamples) -> StepSamples:
        positions = dict(self.positions)
        for key, at in newer.positions.items():
            positions[key] = min(at, positions.get(key, at))
        return StepSamples(
            seconds={**self.seconds, **newer.seconds},
            positions=positions,
            thresholds={**self.thresholds, **newer.thresholds},
        )


def step_samples(results: Iterable[Result]) -> StepSamples:
    """Sort probe results' step times into UTC hours (oldest results first)."""
    seconds: dict[datetime, dict[StepKey, list[float]]] = defaultdict(lambda: defaultdict(list))
    positions: dict[StepKey, int] = {}
    thresholds: dict[StepKey, float] = {}
    for result in results:
        if result.kind != "probe":
            continue
        hour = seconds[floor_hour(result.observed_at)]
        for at, step in enumerate(result.steps):
            key = (result.name, step.name)
            positions[key] = min(at, positions.get(key, at))
            if step.ok:
                hour[key].append(step.seconds)
            limit = result.thresholds.get(f"warning_{step.name}_seconds")
            if limit is not None:
                thresholds[key] = limit
    return StepSamples(
        seconds={h: dict(v) for h, v in seconds.items()}, positions=positions, thresholds=thresholds
    )


def step_latency(
    samples: StepSamples, now: datetime, hours: int = LATENCY_HOURS
) -> list[StepLatency]:
    """P50 and P95 of each step's seconds per UTC hour, over the last `hours` hours.

    Only steps that held count: a failure's time is how long it took to fail (a timeout, a
    refused connection), not the step's latency; failures show in the states and the bars.
    """
    first = floor_hour(now) - (hours - 1) * HOUR
    starts = [first + n * HOUR for n in range(hours)]
    keys = {k for h in starts for k in samples.seconds.get(h, {})}
    out = []
    for key in sorted(keys, key=lambda k: (k[0], samples.positions.get(k, 99), k[1])):
        points = []
        for start in starts:
            values = sorted(samples.seconds.get(start, {}).get(key, []))
            points.append(
                LatencyPoint(
                    start=start,
                    p50=percentile(values, 0.50),
                    p95=percentile(values, 0.95),
                    samples=len(values),
                )
            )
        out.append(
            StepLatency(
                probe=key[0],
                step=key[1],
                points=tuple(points),
                threshold=samples.thresholds.get(key),
            )
        )
    return out


def percentile(ordered: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile of sorted values: the smallest value with a share p at or below."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(p * len(ordered)) - 1)]


# -- words and numbers --------------------------------------------------------------------------


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def seconds(value: float) -> str:
    """0.043 -> '43 ms', 1.25 -> '1.25 s'."""
    if value < 1:
        return f"{value * 1000:.0f} ms"
    return f"{value:.2f} s"


def duration(total_seconds: float) -> str:
    """90 -> '1 min 30 s', 7200 -> '2 h'."""
    s = round(total_seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        m, s = divmod(s, 60)
        return f"{m} min" + (f" {s} s" if s and m < 10 else "")
    if s < 2 * 86400:
        h, rest = divmod(s, 3600)
        return f"{h} h" + (f" {rest // 60} min" if rest >= 60 else "")
    return f"{s // 86400} d {(s % 86400) // 3600} h"


def ago(then: datetime | None, now: datetime) -> str:
    if then is None:
        return "never"
    delta = (now - then).total_seconds()
    if delta < 0:
        return "just now"
    return f"{duration(delta)} ago"


def percent(ratio: float | None, digits: int = 2) -> str:
    """Uptime as people read it: never rounded up to 100% while anything was down."""
    if ratio is None:
        return "—"
    scale = 10**digits
    floored = math.floor(ratio * 100 * scale) / scale
    return f"{floored:.{digits}f}%"


# -- the figure behind a check -----------------------------------------------------------------


def headline(result: Result) -> str:
    """A result's key figures in a few words; checks without a formatter show their first two."""
    f = result.figures
    if result.kind == "probe":
        total = f.get("total_seconds")
        return f"walk {seconds(total)}" if total is not None else ""
    formatter = _FIGURES.get(result.name)
    if formatter is not None:
        parts = [p for p in formatter(f) if p]
        return " · ".join(parts)
    shown = [(k, v) for k, v in f.items() if v is not None][:2]
    return " · ".join(f"{k} {v:g}" for k, v in shown)


def _ratio(f: Mapping[str, float | None], key: str, text: str, digits: int = 1) -> str:
    value = f.get(key)
    return text.format(f"{value * 100:.{digits}f}%") if value is not None else ""


def _count(f: Mapping[str, float | None], key: str, text: str) -> str:
    value = f.get(key)
    return text.format(f"{value:,.0f}") if value is not None else ""


def _of(first: str, second: str) -> str:
    """`first second`, or nothing when the first part has no figure."""
    return f"{first} {second}".strip() if first else ""


def _flag(f: Mapping[str, float | None]) -> str:
    value = f.get("flag")
    return "" if value is None else f"dual-write flag {'on' if value else 'off'}"


Figures = Mapping[str, float | None]

_FIGURES: dict[str, Callable[[Figures], list[str]]] = {
    "upload_success": lambda f: [
        _of(_ratio(f, "success_ratio", "{} of", 2), _count(f, "uploads", "{} uploads ok")),
        _count(f, "p95_upper_bound_ms", "P95 ≤ {} ms"),
    ],
    "dynamodb_throttling": lambda f: [
        _count(f, "throttled_requests", "{} throttled requests"),
        _count(f, "write_throttle_events", "{} write throttle events"),
    ],
    "dynamodb_writes": lambda f: [
        _count(f, "write_units", "{} write units"),
        _ratio(f, "ratio_of_baseline", "{} of baseline", 0),
    ],
    "lambda_cold_starts": lambda f: [
        _of(
            _ratio(f, "cold_start_ratio", "{} cold starts"),
            _count(f, "invocations", "of {} invocations"),
        ),
        _count(f, "init_p95_ms", "init P95 {} ms"),
    ],
    "cloudfront_hit_rate": lambda f: [
        _ratio(f, "hit_ratio", "{} hit rate"),
        _count(f, "requests", "{} requests"),
    ],
    "gallery_cache": lambda f: [
        _ratio(f, "hit_ratio", "{} hits"),
        _ratio(f, "bypass_ratio", "{} bypassed"),
    ],
    "postgres_inserts": lambda f: [
        _count(f, "inserted_rows", "{} legacy rows inserted"),
        _flag(f),
    ],
    "dual_write": lambda f: [
        _flag(f),
        _of(_ratio(f, "success_ratio", "{} of", 2), _count(f, "attempts", "{} dual-writes ok")),
    ],
}
