"""`dynamodb_throttling`: throttled requests and throttle events of the table and its index."""

from __future__ import annotations

from collections.abc import Mapping

from watchtower.checks.base import Check, CheckContext, MetricQuery, register, total
from watchtower.config import Settings
from watchtower.model import Result, Status

INDEX = "by_user"
_OPERATIONS = ("PutItem", "GetItem", "Query", "DeleteItem", "TransactWriteItems", "UpdateItem")


@register
class DynamoDbThrottling(Check):
    name = "dynamodb_throttling"
    title = "DynamoDB throttling"
    component = "dynamodb"
    defaults = {"window_seconds": 300, "warning_throttled": 1, "critical_throttled": 50}

    def metric_queries(self, settings: Settings, params: Mapping[str, float]) -> list[MetricQuery]:
        window = int(params["window_seconds"])
        table = (("TableName", settings.table),)
        index = (*table, ("GlobalSecondaryIndexName", INDEX))
        queries = [
            MetricQuery(
                key=f"throttled_{op}",
                namespace="AWS/DynamoDB",
                metric="ThrottledRequests",
                dimensions=(*table, ("Operation", op)),
                window_seconds=window,
            )
            for op in _OPERATIONS
        ]
        for metric in ("ReadThrottleEvents", "WriteThrottleEvents"):
            queries.append(
                MetricQuery(
                    key=f"table_{metric}",
                    namespace="AWS/DynamoDB",
                    metric=metric,
                    dimensions=table,
                    window_seconds=window,
                )
            )
            queries.append(
                MetricQuery(
                    key=f"index_{metric}",
                    namespace="AWS/DynamoDB",
                    metric=metric,
                    dimensions=index,
                    window_seconds=window,
                )
            )
        return queries

    def evaluate(self, ctx: CheckContext) -> Result:
        figures = {
            "throttled_requests": sum(
                total(ctx.metric(f"throttled_{op}")) or 0 for op in _OPERATIONS
            ),
            "read_throttle_events": (total(ctx.metric("table_ReadThrottleEvents")) or 0)
            + (total(ctx.metric("index_ReadThrottleEvents")) or 0),
            "write_throttle_events": (total(ctx.metric("table_WriteThrottleEvents")) or 0)
            + (total(ctx.metric("index_WriteThrottleEvents")) or 0),
        }
        return self.result(ctx, *judge(figures, ctx.params), figures)


def judge(figures: Mapping[str, float], params: Mapping[str, float]) -> tuple[Status, str]:
    """Throttle metrics exist only while throttling happens, so no datapoints means none."""
    worst = max(figures.values())
    minutes = params["window_seconds"] / 60
    if worst >= params["critical_throttled"]:
        return Status.CRITICAL, (
            f"{worst:.0f} throttled requests or events in {minutes:.0f} min "
            f"(critical at {params['critical_throttled']:.0f})"
        )
    if worst >= params["warning_throttled"]:
        return Status.WARNING, f"{worst:.0f} throttled requests or events in {minutes:.0f} min"
    return Status.OK, f"no throttling in {minutes:.0f} min"
