"""History: per-component UTC hours from the store's counts, uptime over windows, the day bars.

Pure. Every reading covers one interval of its source; down time in an hour is the longest
critical time of any one source, observed time the longest time any source read a status.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from watchtower.figures import floored_percent, rough_duration
from watchtower.model import Result, Status, StatusCount
from watchtower.status.states import Feed, read

DAYS = 90
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
WINDOWS: tuple[tuple[str, int], ...] = (
    ("24h", 24),
    ("7d", 7 * 24),
    ("30d", 30 * 24),
    ("90d", 90 * 24),
)


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


@dataclass(frozen=True, kw_only=True)
class Uptime:
    """An uptime figure with its denominator: the observed seconds it was computed over.

    `window` is the elapsed part of the window (seconds); `observed` never exceeds it. A ratio
    over 3 observed hours of 24 says so: the rest of the window had no readings, and is not up.
    """

    ratio: float | None  # None: nothing observed, no figure
    observed: float
    window: float

    @property
    def coverage(self) -> float:
        return min(1.0, self.observed / self.window) if self.window > 0 else 0.0

    @property
    def text(self) -> str:
        """'99.95% of 23 h 10 min observed'; 'no readings' when nothing was observed."""
        if self.ratio is None:
            return "no readings"
        return f"{floored_percent(self.ratio)} of {rough_duration(self.observed)} observed"

    @property
    def unobserved(self) -> float:
        return max(0.0, self.window - self.observed)


def uptime_over(hours: Mapping[datetime, Hour], now: datetime, window_hours: int) -> Uptime:
    """`uptime` with its observed seconds and the elapsed seconds of the window."""
    start = floor_hour(now) - (window_hours - 1) * HOUR
    inside = [h for start_, h in hours.items() if start <= start_ <= now]
    observed = sum(h.observed for h in inside)
    window = max(0.0, (now - start).total_seconds())
    observed = min(observed, window) if window else observed
    return Uptime(
        ratio=uptime(hours, now, window_hours),
        observed=observed,
        window=window,
    )


def uptimes(hours: Mapping[datetime, Hour], now: datetime) -> dict[str, Uptime]:
    return {name: uptime_over(hours, now, n) for name, n in WINDOWS}


@dataclass(frozen=True, kw_only=True)
class Day:
    date: date
    state: DayState
    uptime: float | None
    down_seconds: float
    degraded_seconds: float
    coverage: float  # observed share of the day (of its elapsed part, for today)
    observed_seconds: float = 0.0
    length_seconds: float = 0.0  # the day's elapsed seconds (today: so far)
    maintenance_seconds: float = 0.0  # declared maintenance: neither observed nor down
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
                observed_seconds=min(totals.observed, length),
                length_seconds=length,
                ok=totals.ok,
                warning=totals.warning,
                critical=totals.critical,
                unknown=totals.unknown,
            )
        )
    return out


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
