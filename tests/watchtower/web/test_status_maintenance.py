"""Declared maintenance leaves every uptime window, not only the 24 h one: a day's figures
(its bar, the 7/30/90-day ratios and the JSON) take its maintenance out of observed and down
time, and say how much there was."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from watchtower import status
from watchtower.status import DayTotals, charts
from watchtower.status import maintenance as upkeep

DAY = date(2026, 5, 1)
MIDNIGHT = datetime(2026, 5, 1, tzinfo=UTC)
END = MIDNIGHT + timedelta(days=2)  # both days closed


def window(start: datetime, end: datetime, component: str = "cloudfront") -> upkeep.Window:
    return upkeep.Window(component=component, starts_at=start, ends_at=end, execution_id="e")


def day_totals(**kw: Any) -> DayTotals:
    figures = {"down": 0.0, "observed": 86_400.0, "degraded": 0.0, "ok": 1440, **kw}
    return DayTotals(component="cloudfront", day=DAY, **figures)


def test_maintenance_seconds_are_counted_per_component_and_utc_day() -> None:
    across_midnight = window(MIDNIGHT - timedelta(minutes=30), MIDNIGHT + timedelta(minutes=90))
    overlapping = window(MIDNIGHT, MIDNIGHT + timedelta(minutes=60))  # counted once
    other = window(MIDNIGHT, MIDNIGHT + timedelta(minutes=10), component="cache")
    days = [DAY - timedelta(days=1), DAY, DAY + timedelta(days=1)]
    seconds = upkeep.day_seconds([across_midnight, overlapping, other], days, END)
    assert seconds == {
        ("cloudfront", DAY - timedelta(days=1)): 1800,
        ("cloudfront", DAY): 5400,
        ("cache", DAY): 600,
    }
    # Today only up to now.
    now = MIDNIGHT + timedelta(minutes=45)
    assert upkeep.day_seconds([across_midnight], [DAY], now) == {("cloudfront", DAY): 2700}


def test_a_days_maintenance_leaves_its_uptime_down_time_first() -> None:
    plain = status.day_of_totals(day_totals(down=3600, degraded=600), DAY, END)
    kept = status.day_of_totals(day_totals(down=3600, degraded=600, maintenance=1800), DAY, END)
    assert (plain.down_seconds, plain.observed_seconds) == (3600, 86_400)
    assert (kept.down_seconds, kept.observed_seconds) == (1800, 84_600)
    assert kept.degraded_seconds == 600  # the maintenance fitted in the down time
    assert kept.uptime == pytest.approx(1 - 1800 / 84_600)
    assert kept.maintenance_seconds == 1800
    longer = status.day_of_totals(day_totals(down=600, degraded=600, maintenance=1000), DAY, END)
    assert (longer.down_seconds, longer.degraded_seconds) == (0, 200)
    assert longer.uptime == 1.0


def test_the_long_windows_leave_maintenance_out_and_the_bar_says_it() -> None:
    days = [status.day_of_totals(None, DAY - timedelta(days=n), END) for n in range(89, 0, -1)]
    bad = status.day_of_totals(day_totals(down=7200, maintenance=7200), DAY, END)
    uptimes = status.window_uptimes({}, [*days, bad], END)
    assert uptimes["7d"].ratio == 1.0  # two hours down, all of it under maintenance
    assert uptimes["7d"].observed == 86_400 - 7200
    assert "maintenance about 2 h" in charts.day_tooltip(bad)
    assert "maintenance" not in charts.day_tooltip(days[-1])
