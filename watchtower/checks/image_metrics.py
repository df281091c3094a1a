"""The image core's CloudWatch metrics as the checks read them (image_core/telemetry.py).

Watchtower observes the image service from outside and does not import it, so the names are
repeated here, once. Checks that read the same metric build the same `MetricQuery` (same key,
same dimensions), and the runner asks CloudWatch for it once per cycle however many checks read it.
"""

from __future__ import annotations

from watchtower.checks.base import MetricQuery
from watchtower.config import Settings

# LatencyOver<N>ms at the image core's default IMAGE_LATENCY_THRESHOLDS_MS (the cutover mirrors the
# configured list in WATCHTOWER_CUTOVER_LATENCY_THRESHOLDS_MS)
LATENCY_THRESHOLDS_MS = (250, 500, 800, 1000)
TRAFFIC = ("user", "synthetic")  # synthetic: Watchtower's own probes


def requests(
    settings: Settings, window: int, *, traffic: str, outcome: str, operation: str = "upload"
) -> MetricQuery:
    """Requests{Operation, Traffic, Outcome}: one per request; outcome success, client_error or
    server_error."""
    return MetricQuery(
        key=f"requests_{operation}_{traffic}_{outcome}",
        namespace=settings.metrics_namespace,
        metric="Requests",
        dimensions=(("Operation", operation), ("Traffic", traffic), ("Outcome", outcome)),
        window_seconds=window,
    )


def latency_samples(
    settings: Settings, window: int, *, traffic: str, operation: str = "upload"
) -> MetricQuery:
    """How many requests had their Latency recorded (every request, whatever its outcome)."""
    return MetricQuery(
        key=f"latency_samples_{operation}_{traffic}",
        namespace=settings.metrics_namespace,
        metric="Latency",
        dimensions=(("Operation", operation), ("Traffic", traffic)),
        stat="SampleCount",
        window_seconds=window,
    )


def latency_over(
    settings: Settings, window: int, threshold_ms: int, *, traffic: str, operation: str = "upload"
) -> MetricQuery:
    """How many requests took longer than `threshold_ms` (LatencyOver<N>ms is 1 or 0 each)."""
    return MetricQuery(
        key=f"latency_over_{threshold_ms}ms_{operation}_{traffic}",
        namespace=settings.metrics_namespace,
        metric=f"LatencyOver{threshold_ms}ms",
        dimensions=(("Operation", operation), ("Traffic", traffic)),
        window_seconds=window,
    )


def dual_writes(settings: Settings, window: int, *, outcome: str) -> MetricQuery:
    """DualWrites{Outcome=success|failure}: one per legacy insert attempted."""
    return MetricQuery(
        key=f"dual_writes_{outcome}",
        namespace=settings.metrics_namespace,
        metric="DualWrites",
        dimensions=(("Outcome", outcome),),
        window_seconds=window,
    )


def cache_events(settings: Settings, window: int, *, event: str) -> MetricQuery:
    """CacheEvents{Event=hit|miss|bypass}: one per gallery-cache lookup or skipped lookup."""
    return MetricQuery(
        key=f"cache_events_{event}",
        namespace=settings.metrics_namespace,
        metric="CacheEvents",
        dimensions=(("Event", event),),
        window_seconds=window,
    )
