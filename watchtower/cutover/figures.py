"""Latency percentiles from threshold counts, and how figures read. Pure.

CloudWatch percentiles are not used (the moto server cannot compute them, and they do not
aggregate across periods). The image core counts uploads over 250, 500, 800 and 1000 ms; those
counts are a cumulative histogram, read two ways:

* `p95_bound`: the smallest threshold with at most 5% of uploads over it. Exact: the P95 is at or
  below it. "P95 under 800 ms" is judged this way (at most 5% of uploads over 800 ms).
* `p95_estimate`: linear interpolation inside the bucket that holds the 95th percentile, as
  Prometheus' `histogram_quantile` does (the first bucket starts at 0). An estimate, used only to
  compare a window with its baseline ("no more than 10% worse"); above the last threshold it is
  None (over 1000 ms, by how much is not known).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

P95_SHARE = 0.05


def p95_bound(samples: float, over: Mapping[int, float]) -> float | None:
    if samples <= 0:
        return None
    for threshold in sorted(over):
        if over[threshold] / samples <= P95_SHARE:
            return float(threshold)
    return None


def p95_estimate(samples: float, over: Mapping[int, float]) -> float | None:
    if samples <= 0:
        return None
    thresholds = sorted(over)
    rank = (1 - P95_SHARE) * samples
    below = 0.0  # uploads at or under the previous edge
    edge = 0.0
    for threshold in thresholds:
        at_or_under = samples - over[threshold]
        in_bucket = at_or_under - below
        if at_or_under >= rank and in_bucket > 0:
            return edge + (threshold - edge) * (rank - below) / in_bucket
        below, edge = max(below, at_or_under), float(threshold)
    return None


def share_over(samples: float, over: Mapping[int, float], threshold: int) -> float | None:
    return over.get(threshold, 0.0) / samples if samples > 0 else None


def duration(delta: timedelta | float) -> str:
    """'20 h 05 min', '7 min', '45 s'."""
    seconds = int(delta.total_seconds() if isinstance(delta, timedelta) else delta)
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{sign}{hours} h {minutes:02d} min"
    if minutes:
        return f"{sign}{minutes} min"
    return f"{sign}{secs} s"


def percent(ratio: float | None, digits: int = 2) -> str:
    return "n/a" if ratio is None else f"{ratio * 100:.{digits}f}%"


def count(value: float | None, noun: str) -> str:
    n = 0 if value is None else value
    shown = f"{n:,.0f}" if float(n).is_integer() else f"{n:,.1f}"
    return f"{shown} {noun}{'' if n == 1 else 's'}"


def ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} ms"


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of exact values (the probe's own timings), or None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil(n * p / 100)
    return ordered[int(rank) - 1]
