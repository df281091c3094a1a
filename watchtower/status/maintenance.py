"""Maintenance windows on the status page (pure): a component a runbook knowingly degrades for
a while (its silence names the component) is shown under maintenance, and those seconds leave
its uptime: they count neither as observed nor as down.

An hour's down seconds are not placed within the hour, so the exclusion is the cautious one for
the figure: maintenance seconds are taken from the down seconds first (then from the rest).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta

from watchtower.status.history import Hour

HOUR = timedelta(hours=1)


@dataclass(frozen=True, kw_only=True)
class Window:
    component: str
    starts_at: datetime
    ends_at: datetime
    execution_id: str
    runbook: str = ""

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at


def seconds_within(windows: Iterable[Window], start: datetime, end: datetime) -> float:
    """Seconds of [start, end) under any of the windows (overlaps counted once)."""
    spans = sorted(
        (max(w.starts_at, start), min(w.ends_at, end))
        for w in windows
        if w.ends_at > start and w.starts_at < end
    )
    total = 0.0
    cursor = start
    for begin, finish in spans:
        begin = max(begin, cursor)
        if finish > begin:
            total += (finish - begin).total_seconds()
            cursor = finish
    return total


def exclude(
    hours: Mapping[datetime, Hour], windows: Iterable[Window], now: datetime
) -> dict[datetime, Hour]:
    """The component's hours with its maintenance taken out of observed and down."""
    chosen = list(windows)
    if not chosen:
        return dict(hours)
    out = {}
    for start, hour in hours.items():
        maintained = seconds_within(chosen, start, min(start + HOUR, now))
        if maintained <= 0:
            out[start] = hour
            continue
        down = max(0.0, hour.down - maintained)
        degraded = max(0.0, hour.degraded - max(0.0, maintained - hour.down))
        out[start] = replace(
            hour, observed=max(0.0, hour.observed - maintained), down=down, degraded=degraded
        )
    return out


def day_seconds(
    windows: Iterable[Window], days: Iterable[date], now: datetime
) -> dict[tuple[str, date], float]:
    """Maintenance seconds per (component, UTC day) of `days`, up to `now` (overlaps once)."""
    by_component: dict[str, list[Window]] = {}
    for w in windows:
        by_component.setdefault(w.component, []).append(w)
    out = {}
    for day in days:
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        end = min(start + timedelta(days=1), now)
        if end <= start:
            continue
        for component, chosen in by_component.items():
            seconds = seconds_within(chosen, start, end)
            if seconds > 0:
                out[(component, day)] = seconds
    return out
