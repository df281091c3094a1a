"""`gallery_cache`: is the Redis gallery cache serving, or being bypassed?

Read from the image core's CacheEvents{Event=hit|miss|bypass}. A bypass means Redis was down,
slow or in its cool-down: listings still work, from DynamoDB, so this is a degradation
(`warning`), and `critical` only when nearly every lookup bypasses (Redis is effectively gone and
DynamoDB carries every listing).
"""

from __future__ import annotations

from collections.abc import Mapping

from watchtower.checks import image_metrics
from watchtower.checks.base import Check, CheckContext, MetricQuery, ratio, register, total
from watchtower.config import Settings
from watchtower.model import Result, Status

EVENTS = ("hit", "miss", "bypass")


@register
class GalleryCache(Check):
    name = "gallery_cache"
    title = "Gallery cache (Redis)"
    component = "cache"
    defaults = {
        "window_seconds": 300,
        "warning_bypass_ratio": 0.01,
        "critical_bypass_ratio": 0.9,
    }

    def metric_queries(self, settings: Settings, params: Mapping[str, float]) -> list[MetricQuery]:
        window = int(params["window_seconds"])
        return [image_metrics.cache_events(settings, window, event=e) for e in EVENTS]

    def evaluate(self, ctx: CheckContext) -> Result:
        counts = {e: total(ctx.metric(f"cache_events_{e}")) for e in EVENTS}
        minutes = ctx.params["window_seconds"] / 60
        if all(v is None for v in counts.values()):
            return self.result(
                ctx,
                Status.UNKNOWN,
                f"no cache lookups recorded in {minutes:.0f} min (no gallery listings, or the "
                "image API runs without IMAGE_REDIS_URL)",
            )
        hits, misses, bypasses = (counts[e] or 0 for e in EVENTS)
        lookups = hits + misses + bypasses
        figures = {
            "hits": hits,
            "misses": misses,
            "bypasses": bypasses,
            "hit_ratio": ratio(hits, hits + misses),
            "bypass_ratio": ratio(bypasses, lookups),
        }
        return self.result(ctx, *judge(figures, ctx.params), figures)


def judge(figures: Mapping[str, float | None], params: Mapping[str, float]) -> tuple[Status, str]:
    bypass = figures["bypass_ratio"] or 0.0
    hit = figures["hit_ratio"]
    minutes = params["window_seconds"] / 60
    said = f"{bypass:.1%} of lookups bypassed the cache in {minutes:.0f} min" + (
        f", hit ratio {hit:.0%}" if hit is not None else ""
    )
    if bypass >= params["critical_bypass_ratio"]:
        return Status.CRITICAL, f"Redis unreachable: {said}; every listing goes to DynamoDB"
    if bypass >= params["warning_bypass_ratio"]:
        return Status.WARNING, f"Redis failing or slow: {said}"
    return Status.OK, said
