"""Builds Watchtower's adapters from settings. The only module that does."""

from __future__ import annotations

from watchtower import aws
from watchtower.checks.base import Sources
from watchtower.config import Settings
from watchtower.sources import CloudWatchLogs, CloudWatchMetrics, LambdaConfig, PostgresSql

CLOUDFRONT_METRICS_REGION = "us-east-1"


def build_sources(settings: Settings) -> Sources:
    regions = {settings.region, CLOUDFRONT_METRICS_REGION}
    return Sources(
        metrics=CloudWatchMetrics(
            {r: aws.client("cloudwatch", settings, region=r) for r in regions}
        ),
        logs=CloudWatchLogs(aws.client("logs", settings)),
        functions=LambdaConfig(aws.client("lambda", settings)),
        legacy_sql=PostgresSql(settings.legacy_database_url)
        if settings.legacy_database_url
        else None,
    )


def api_calls(sources: Sources) -> dict[str, int]:
    """AWS API calls made through these sources so far, by API: a monitor should cost little."""
    calls = {"GetMetricData": getattr(sources.metrics, "calls", 0)}
    if sources.logs is not None:
        calls["FilterLogEvents"] = getattr(sources.logs, "calls", 0)
    if sources.functions is not None:
        calls["GetFunctionConfiguration"] = getattr(sources.functions, "calls", 0)
    return calls
