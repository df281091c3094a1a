"""`cloudfront_hit_rate`: the distribution's cache hit rate and request count.

CloudFront publishes its metrics in us-east-1 with the dimension `Region=Global`. CacheHitRate is
an opt-in metric (the distribution's additional metrics): no datapoints means it is off or there
was no traffic, so the result is `unknown`, never a 0% hit rate and never ok. The rate is the
Average of CloudWatch's per-minute rates, not weighted by each minute's requests.
"""

from __future__ import annotations

from collections.abc import Mapping

from watchtower.checks.base import Check, CheckContext, MetricQuery, register, total
from watchtower.config import Settings
from watchtower.model import Result, Status

CLOUDFRONT_REGION = "us-east-1"  # where CloudFront's metrics live, whatever the settings' region
OPT_IN = "CacheHitRate is an opt-in metric (CloudFront additional metrics); enable it"


@register
class CloudFrontHitRate(Check):
    name = "cloudfront_hit_rate"
    title = "CloudFront cache hit rate"
    component = "cloudfront"
    defaults = {
        "window_seconds": 300,
        "warning_hit_ratio": 0.80,
        "critical_hit_ratio": 0.50,
        "min_requests": 100,  # fewer: the rate is noise, not judged
    }

    def metric_queries(self, settings: Settings, params: Mapping[str, float]) -> list[MetricQuery]:
        if not settings.cloudfront_distribution_id:
            return []
        window = int(params["window_seconds"])
        dimensions = (("DistributionId", settings.cloudfront_distribution_id), ("Region", "Global"))
        return [
            MetricQuery(
                key="cache_hit_rate",
                namespace="AWS/CloudFront",
                metric="CacheHitRate",
                dimensions=dimensions,
                stat="Average",
                window_seconds=window,
                region=CLOUDFRONT_REGION,
            ),
            MetricQuery(
                key="requests",
                namespace="AWS/CloudFront",
                metric="Requests",
                dimensions=dimensions,
                window_seconds=window,
                region=CLOUDFRONT_REGION,
            ),
        ]

    def evaluate(self, ctx: CheckContext) -> Result:
        if not ctx.settings.cloudfront_distribution_id:
            return self.result(
                ctx,
                Status.UNKNOWN,
                "no CloudFront distribution is configured (WATCHTOWER_CLOUDFRONT_DISTRIBUTION_ID)",
            )
        rates = [value for _, value in ctx.metric("cache_hit_rate")]
        figures = {
            "hit_ratio": sum(rates) / len(rates) / 100 if rates else None,  # Percent -> ratio
            "requests": total(ctx.metric("requests")),
        }
        return self.result(ctx, *judge(figures, ctx.params), figures)


def judge(figures: Mapping[str, float | None], params: Mapping[str, float]) -> tuple[Status, str]:
    hit = figures["hit_ratio"]
    requests = figures["requests"] or 0
    minutes = params["window_seconds"] / 60
    if hit is None:
        if requests > 0:
            return Status.UNKNOWN, (
                f"CacheHitRate has no datapoints although {requests:.0f} "
                f"requests were served in {minutes:.0f} min: {OPT_IN}"
            )
        return Status.UNKNOWN, (
            f"no CacheHitRate datapoints and no requests in {minutes:.0f} "
            f"min: {OPT_IN} if it is off"
        )
    said = f"cache hit rate {hit:.1%} over {requests:.0f} requests in {minutes:.0f} min"
    if requests < params["min_requests"]:
        return Status.OK, (
            f"{said}: too few requests to judge (at least {params['min_requests']:.0f})"
        )
    if hit < params["critical_hit_ratio"]:
        return Status.CRITICAL, f"{said}, below {params['critical_hit_ratio']:.0%}"
    if hit < params["warning_hit_ratio"]:
        return Status.WARNING, f"{said}, below {params['warning_hit_ratio']:.0%}"
    return Status.OK, said
