"""Daily rollups: one row per component, UTC day and source, written as results arrive.

Pure. The store adds each batch's deltas (counts by status, the worst reading) to the day's row
in the same transaction as the results, so the page, the API and the 90-day bars read at most
one row per component, day and source, whatever the raw retention. The day's figures follow the
hourly rule at day scale: down time is the longest critical time of any one source (readings x
interval, at most the day), observed time the longest time any one source read ok, warning or
critical; unknown readings say nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from watchtower.model import Result, Status
from watchtower.status.history import (
    DAY,
    DAYS,
    WINDOWS,
    Day,
    DayState,
    Hour,
    Uptime,
    uptime_over,
)
from watchtower.status.states import Feed, read

# How bad a reading is, for the day's worst: unknown is worse than ok, better than a warning.
RANK = {Status.OK: 0, Status.UNKNOWN: 1, Status.WARNING: 2, Status.CRITICAL: 3}


@dataclass(frozen=True, kw_only=True)
class DayRollup:
    component: str
    day: date
    source: str
    interval: float  # seconds each reading covers
    ok: int = 0
    warning: int = 0
    critical: int = 0
    unknown: int = 0
    worst: Status = Status.OK
    worst_reason: str = ""

    @property
    def readings(self) -> int:
        return self.ok + self.warning + self.critical + self.unknown


def rollup_deltas(feeds: Mapping[str, Feed], results: Iterable[Result]) -> list[DayRollup]:
    """What a batch of results adds to the daily rollups: first attempts, read row by row."""
    tally: dict[tuple[str, date, str], dict[Status, int]] = defaultdict(lambda: defaultdict(int))
    worst: dict[tuple[str, date, str], tuple[Status, str]] = {}
    for r in results:
        feed = feeds.get(r.name)
        if feed is None or r.attempt != 1:
            continue
        day = r.observed_at.astimezone(UTC).date()
        for row in feed.rows:
            reading = read(feed, r, row)
            key = (row, day, r.name)
            tally[key][reading.status] += 1
            seen = worst.get(key)
            if seen is None or RANK[reading.status] > RANK[seen[0]]:
                worst[key] = (reading.status, reading.reason)
    return [
        DayRollup(
            component=row,
            day=day,
            source=name,
            interval=feeds[name].interval,
            ok=c.get(Status.OK, 0),
            warning=c.get(Status.WARNING, 0),
            critical=c.get(Status.CRITICAL, 0),
            unknown=c.get(Status.UNKNOWN, 0),
            worst=worst[(row, day, name)][0],
            worst_reason=worst[(row, day, name)][1],
        )
        for (row, day, name), c in tally.items()
    ]


def days_from_rollups(rollups: Iterable[DayRollup], now: datetime, count: int = DAYS) -> list[Day]:
    """The last `count` UTC days of one component, oldest first, today last."""
    today = now.astimezone(UTC).date()
    by_day: dict[date, list[DayRollup]] = defaultdict(list)
    for r in rollups:
        by_day[r.day].append(r)
    return [
        day_of(today - timedelta(days=back), by_day.get(today - timedelta(days=back), []), now)
        for back in range(count - 1, -1, -1)
    ]


def day_of(day: date, sources: Sequence[DayRollup], now: datetime) -> Day:
    """One component's UTC day from its sources' rollups of that day (today: so far)."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    length = min(DAY, max(now - start, timedelta(seconds=1))).total_seconds()
    return _day(day, sources, length)


@dataclass(frozen=True, kw_only=True)
class DayTotals:
    """One component's day summed over its sources: what a day's bar needs, one row however
    many sources (the store sums it in SQL, `HistoryStore.rollup_totals`)."""

    component: str
    day: date
    down: float  # the most critical time of any one source: interval x critical readings
    observed: float  # the most ok, warning or critical time of any one source
    degraded: float  # the most warning time of any one source
    ok: int = 0
    warning: int = 0
    critical: int = 0
    unknown: int = 0
    maintenance: float = (
        0.0  # seconds of declared maintenance that day (watchtower.status.maintenance)
    )


def totals_of(component: str, day: date, sources: Sequence[DayRollup]) -> DayTotals:
    """The same sums as `rollup_totals`, from a component's rollups of one day."""
    return DayTotals(
        component=component,
        day=day,
        down=max((r.interval * r.critical for r in sources), default=0.0),
        observed=max((r.interval * (r.ok + r.warning + r.critical) for r in sources), default=0.0),
        degraded=max((r.interval * r.warning for r in sources), default=0.0),
        ok=sum(r.ok for r in sources),
        warning=sum(r.warning for r in sources),
        critical=sum(r.critical for r in sources),
        unknown=sum(r.unknown for r in sources),
    )


def day_of_totals(totals: DayTotals | None, day: date, now: datetime) -> Day:
    """One component's UTC day from its sums (None: no rollups that day)."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    length = min(DAY, max(now - start, timedelta(seconds=1))).total_seconds()
    return _day_from(
        day, totals or DayTotals(component="", day=day, down=0, observed=0, degraded=0), length
    )


def _day(day: date, sources: Sequence[DayRollup], length: float) -> Day:
    return _day_from(day, totals_of("", day, sources), length)


def _day_from(day: date, sums: DayTotals, length: float) -> Day:
    # Maintenance leaves the day's uptime as it leaves an hour's: taken from the observed time,
    # and (the cautious way, since down time is not placed within the day) from the down time
    # first, then from the degraded time.
    maintained = min(length, sums.maintenance)
    raw_down = min(length, sums.down)
    down = max(0.0, raw_down - maintained)
    observed = max(0.0, min(length, sums.observed) - maintained)
    totals = Hour(
        observed=observed,
        down=down,
        degraded=max(
            0.0,
            min(length - raw_down, min(length, sums.degraded)) - max(0.0, maintained - raw_down),
        ),
        ok=sums.ok,
        warning=sums.warning,
        critical=sums.critical,
        unknown=sums.unknown,
    )
    if totals.critical:
        state = DayState.DOWN
    elif totals.warning:
        state = DayState.DEGRADED
    elif totals.ok:
        state = DayState.OPERATIONAL
    else:
        state = DayState.NO_DATA
    return Day(
        date=day,
        state=state,
        uptime=1 - down / observed if observed else None,
        down_seconds=down,
        degraded_seconds=totals.degraded,
        coverage=min(1.0, observed / length),
        ok=totals.ok,
        warning=totals.warning,
        critical=totals.critical,
        unknown=totals.unknown,
        observed_seconds=observed,
        length_seconds=length,
        maintenance_seconds=maintained,
    )


def uptime_of_days(days: Sequence[Day], count: int) -> Uptime:
    """Uptime over the last `count` UTC days (today included), with its denominator."""
    inside = days[-count:]
    observed = sum(d.observed_seconds for d in inside)
    down = sum(d.down_seconds for d in inside)
    return Uptime(
        ratio=max(0.0, 1 - down / observed) if observed > 0 else None,
        observed=observed,
        window=sum(d.length_seconds for d in inside),
    )


def window_uptimes(
    hours: Mapping[datetime, Hour], days: Sequence[Day], now: datetime
) -> dict[str, Uptime]:
    """24 h from this component's hours (exact); 7, 30 and 90 days from its daily rollups."""
    out = {}
    for name, n in WINDOWS:
        if n <= 24:
            out[name] = uptime_over(hours, now, n)
        else:
            out[name] = uptime_of_days(days, n // 24)
    return out


__all__ = [
    "RANK",
    "DayRollup",
    "DayTotals",
    "day_of",
    "day_of_totals",
    "days_from_rollups",
    "rollup_deltas",
    "totals_of",
    "uptime_of_days",
    "window_uptimes",
]
