"""`dynamodb_writes`: writes to the table continue at a normal rate (Story 6.1's other half).

Writes are the table's ConsumedWriteCapacityUnits in the window. "Normal" is the average window
of the last 24 hours: the same metric with one period per window, summed and divided by the number
of windows since its first datapoint (at most 288 at 5 min). DynamoDB publishes no datapoint for a
period without writes, so an idle window counts as zero, and the current window is part of its own
baseline. A baseline needs history: until the first datapoint is `min_history_seconds` old (at
most `baseline_seconds`), the check says "no baseline yet (n min of history, needs m)" and gives
no percentage: a percentage of an average over nothing reads as news and is none. A daily
traffic cycle makes quiet hours read low against that average: `min_ratio_of_baseline` only warns.

Successful uploads (user and synthetic) are the cross-check: every upload writes its record, so
uploads without writes are critical, whatever the baseline says.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from watchtower.checks import image_metrics
from watchtower.checks.base import (
    Check,
    CheckContext,
    MetricQuery,
    Series,
    ratio,
    register,
    total,
)
from watchtower.config import Settings
from watchtower.figures import rough_duration
from watchtower.model import Result, Status


@register
class DynamoDbWrites(Check):
    name = "dynamodb_writes"
    title = "DynamoDB writes"
    component = "dynamodb"
    defaults = {
        "window_seconds": 300,
        "baseline_seconds": 86400,
        "min_ratio_of_baseline": 0.5,
        # A baseline under this many units per window is too small to compare against.
        "min_baseline_units": 10,
        # Less history than this (capped at baseline_seconds) is no baseline yet.
        "min_history_seconds": 3600,
    }

    def metric_queries(self, settings: Settings, params: Mapping[str, float]) -> list[MetricQuery]:
        window = int(params["window_seconds"])
        table = (("TableName", settings.table),)
        return [
            MetricQuery(
                key="writes",
                namespace="AWS/DynamoDB",
                metric="ConsumedWriteCapacityUnits",
                dimensions=table,
                window_seconds=window,
            ),
            MetricQuery(
                key="writes_baseline",
                namespace="AWS/DynamoDB",
                metric="ConsumedWriteCapacityUnits",
                dimensions=table,
                window_seconds=int(params["baseline_seconds"]),
                period_seconds=window,
            ),
            *(
                image_metrics.requests(settings, window, traffic=t, outcome="success")
                for t in image_metrics.TRAFFIC
            ),
        ]

    def evaluate(self, ctx: CheckContext) -> Result:
        series = ctx.metric("writes_baseline")
        window = ctx.params["window_seconds"]
        history = baseline_history(series, ctx.now, window, ctx.params["baseline_seconds"])
        baseline_total = total(series)
        writes = total(ctx.metric("writes"))
        baseline = (
            None
            if baseline_total is None or history < needed_history(ctx.params)
            else baseline_total / max(1.0, history / window)
        )
        figures = {
            "write_units": writes,
            "baseline_write_units": baseline,
            "baseline_history_seconds": history,
            "ratio_of_baseline": ratio(writes, baseline),
            "uploads": sum(
                total(ctx.metric(f"requests_upload_{t}_success")) or 0
                for t in image_metrics.TRAFFIC
            ),
        }
        return self.result(ctx, *judge(figures, ctx.params), figures)


def baseline_history(
    series: Series, now: datetime, window: float, baseline_seconds: float
) -> float:
    """Seconds of history behind the baseline: from its first datapoint's period to now."""
    if not series:
        return 0.0
    first = min(t for t, _ in series)
    return max(0.0, min(baseline_seconds, (now - first).total_seconds() + window))


def needed_history(params: Mapping[str, float]) -> float:
    return min(params["min_history_seconds"], params["baseline_seconds"])


def judge(figures: Mapping[str, float | None], params: Mapping[str, float]) -> tuple[Status, str]:
    writes = figures["write_units"]
    baseline = figures["baseline_write_units"]
    uploads = figures["uploads"] or 0
    minutes = params["window_seconds"] / 60
    span = rough_duration(params["baseline_seconds"])
    history = figures.get("baseline_history_seconds")
    needed = needed_history(params)
    if not writes and uploads > 0:
        return Status.CRITICAL, (
            f"{uploads:.0f} successful uploads in {minutes:.0f} min but no "
            f"DynamoDB write capacity consumed"
        )
    if writes is None:
        usual = "" if baseline is None else (f"; the {span} average is {baseline:.0f} per window")
        return Status.UNKNOWN, (
            f"no DynamoDB writes and no uploads recorded in {minutes:.0f} "
            f"min: nothing to judge{usual}"
        )
    said = f"{writes:.0f} write units in {minutes:.0f} min"
    if history is not None and history < needed:
        return Status.OK, (
            f"{said}; no baseline yet ({rough_duration(history)} of history, "
            f"needs {rough_duration(needed)})"
        )
    if baseline is None or baseline < params["min_baseline_units"]:
        usual = "none" if baseline is None else f"{baseline:.1f} per window"
        return Status.OK, (
            f"{said}; too little in the last {span} to compare against "
            f"({usual}, at least {params['min_baseline_units']:.0f})"
        )
    share = writes / baseline
    said += f", {share:.0%} of the {span} average of {baseline:.0f} per {minutes:.0f} min"
    if share < params["min_ratio_of_baseline"]:
        return Status.WARNING, f"{said}, below {params['min_ratio_of_baseline']:.0%}"
    return Status.OK, said
