"""Kept so older imports still work: the figures live in `watchtower.figures`, one vocabulary for
every page and report. Import that module; `percentile` there takes a share from 0 to 1."""

from __future__ import annotations

from watchtower.figures import (
    P95_SHARE,
    count,
    duration,
    ms,
    p95_bound,
    p95_estimate,
    percent,
    percentile,
    share_over,
)

__all__ = [
    "P95_SHARE",
    "count",
    "duration",
    "ms",
    "p95_bound",
    "p95_estimate",
    "percent",
    "percentile",
    "share_over",
]
