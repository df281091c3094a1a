"""What the status page says, decided from results and `now`: states, staleness, uptime, days.

Pure: no Flask, no SQL, no clock. The web edge (`watchtower.web.status`) reads the store and the
clock and hands them in. Modules: `states` (a row's state now, the page's line), `history`
(hours, uptime, the day bars), `latency` (probe step P50/P95 per hour), `headline` (a result's
figure in words), `charts` (the SVG), `kept` (reads kept between renders while the store's
version holds). The names below are re-exported from them.

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
  **Uptime** over a window is 1 - down / observed; no observed time means no figure. Every
  figure carries its denominator ("99.95% of 23 h 10 min observed"): time without readings is
  shown as unobserved, never as up. The 24 h figure is summed by the hour; the 7, 30 and 90 day
  figures and the day bars by the UTC day, from the daily rollups (`rollups`), with the same
  rule at day scale.
* A **day** (UTC) is *down* when any of its sources read critical that day, else *degraded*
  when any read warning, else *operational* when any read ok, else *no data*.
"""

from __future__ import annotations

from watchtower.figures import ago, percentile, seconds
from watchtower.figures import floored_percent as percent  # the page's uptime: never rounded up
from watchtower.figures import rough_duration as duration  # ages and intervals: '1 min 30 s'
from watchtower.status.headline import Figures, headline
from watchtower.status.history import (
    DAY,
    DAYS,
    HOUR,
    WINDOWS,
    Day,
    DayState,
    Hour,
    Hours,
    Uptime,
    days,
    floor_hour,
    hours_from,
    uptime,
    uptime_over,
    uptimes,
)
from watchtower.status.latency import (
    LATENCY_HOURS,
    LatencyPoint,
    StepKey,
    StepLatency,
    StepSamples,
    step_latency,
    step_samples,
)
from watchtower.status.rollups import (
    RANK,
    DayRollup,
    DayTotals,
    day_of,
    day_of_totals,
    days_from_rollups,
    rollup_deltas,
    totals_of,
    uptime_of_days,
    window_uptimes,
)
from watchtower.status.states import (
    ALIASES,
    COMPONENTS,
    GET_PATH_STEPS,
    SPLIT_ROW,
    STALE_AFTER_INTERVALS,
    Component,
    ComponentState,
    Feed,
    Overall,
    Reading,
    SourceState,
    State,
    component_states,
    latest_run,
    overall,
    read,
    source_state,
    step_row,
)

__all__ = [
    "ALIASES",
    "COMPONENTS",
    "DAY",
    "DAYS",
    "GET_PATH_STEPS",
    "HOUR",
    "LATENCY_HOURS",
    "RANK",
    "SPLIT_ROW",
    "STALE_AFTER_INTERVALS",
    "WINDOWS",
    "Component",
    "ComponentState",
    "Day",
    "DayRollup",
    "DayState",
    "DayTotals",
    "Feed",
    "Figures",
    "Hour",
    "Hours",
    "LatencyPoint",
    "Overall",
    "Reading",
    "SourceState",
    "State",
    "StepKey",
    "StepLatency",
    "StepSamples",
    "Uptime",
    "ago",
    "component_states",
    "day_of",
    "day_of_totals",
    "days",
    "days_from_rollups",
    "duration",
    "floor_hour",
    "headline",
    "hours_from",
    "latest_run",
    "overall",
    "percent",
    "percentile",
    "read",
    "rollup_deltas",
    "seconds",
    "source_state",
    "step_latency",
    "step_row",
    "step_samples",
    "totals_of",
    "uptime",
    "uptime_of_days",
    "uptime_over",
    "uptimes",
    "window_uptimes",
]
