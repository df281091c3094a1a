"""How figures read, on every page and report, and the percentiles behind them. Pure.

One vocabulary for the status page, the cutover pages and their exported reports. Where two
pages need different words for the same kind of figure, the difference has a name here:

* `percent` rounds ("99.95%", "n/a" when there is no figure); `floored_percent` never rounds
  up, so an uptime reads 100% only when nothing was down ("99.99%", "—" when there is none).
* `duration` reads to the minute ("20 h 05 min", "7 min", "45 s"), as a window's times do;
  `rough_duration` coarsens as it grows ("1 min 30 s", "2 h 1 min", "3 d 2 h"), as an age does.
* `seconds` reads a time in seconds ("43 ms", "1.25 s"), `ms` one in milliseconds ("43 ms").

**Percentiles, one convention**: `percentile(values, p)` takes `p` as a share from 0 to 1
(0.95 is the P95) and values in any order, and returns the nearest rank: the smallest value
with at least a share `p` of the values at or below it (None when there are none). The rank is
computed from `p`'s decimal digits, so `p * n` is never rounded up by binary floating point.

Upload latency has no exact values, only counts of uploads over 250, 500, 800 and 1000 ms
(CloudWatch percentiles are not used: the moto server cannot compute them, and they do not
aggregate across periods). Those counts are a cumulative histogram, read two ways:

* `p95_bound`: the smallest threshold with at most 5% of uploads over it. Exact: the P95 is at or
  below it. "P95 under 800 ms" is judged this way (at most 5% of uploads over 800 ms).
* `p95_estimate`: linear interpolation inside the bucket that holds the 95th percentile, as
  Prometheus' `histogram_quantile` does (the first bucket starts at 0). An estimate, used only to
  compare a window with its baseline ("no more than 10% worse"); above the last threshold it is
  None (over 1000 ms, by how much is not known).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from fractions import Fraction

P95_SHARE = 0.05


# -- percentiles ---------------------------------------------------------------------------------


def percentile(values: Iterable[float], p: float) -> float | None:
    """Nearest-rank percentile, `p` from 0 to 1, values in any order; None when there are none."""
    if not 0 <= p <= 1:
        raise ValueError(f"a percentile is a share from 0 to 1, not {p!r}")
    ordered = sorted(values)
    if not ordered:
        return None
    top, bottom = _decimal(p)
    rank = -(-top * len(ordered) // bottom)  # ceil, in integers: 0.95 * 20 is 19, never 19.0000001
    return ordered[max(rank, 1) - 1]


@functools.lru_cache(maxsize=64)
def _decimal(p: float) -> tuple[int, int]:
    """The share as written in decimal (0.95 is 19/20), not its nearest binary float."""
    share = Fraction(str(p))
    return share.numerator, share.denominator


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


# -- ratios ----------------------------------------------------------------------------------------


def percent(ratio: float | None, digits: int = 2) -> str:
    """0.99951 -> '99.95%'; None -> 'n/a'."""
    return "n/a" if ratio is None else f"{ratio * 100:.{digits}f}%"


def floored_percent(ratio: float | None, digits: int = 2) -> str:
    """Uptime as people read it: never rounded up to 100% while anything was down."""
    if ratio is None:
        return "—"
    scale = 10**digits
    floored = math.floor(ratio * 100 * scale) / scale
    return f"{floored:.{digits}f}%"


def count(value: float | None, noun: str) -> str:
    """(3, 'row') -> '3 rows'; (1, 'row') -> '1 row'; (2.5, 'error') -> '2.5 errors'."""
    n = 0 if value is None else value
    shown = f"{n:,.0f}" if float(n).is_integer() else f"{n:,.1f}"
    return f"{shown} {noun}{'' if n == 1 else 's'}"


# -- times -----------------------------------------------------------------------------------------


def duration(delta: timedelta | float) -> str:
    """'20 h 05 min', '7 min', '45 s' (truncated to the unit shown)."""
    seconds_ = int(delta.total_seconds() if isinstance(delta, timedelta) else delta)
    sign = "-" if seconds_ < 0 else ""
    seconds_ = abs(seconds_)
    hours, rest = divmod(seconds_, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{sign}{hours} h {minutes:02d} min"
    if minutes:
        return f"{sign}{minutes} min"
    return f"{sign}{secs} s"


def rough_duration(total_seconds: float) -> str:
    """90 -> '1 min 30 s', 7200 -> '2 h', 3 days 2 hours -> '3 d 2 h' (rounded to the second)."""
    s = round(total_seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        m, s = divmod(s, 60)
        return f"{m} min" + (f" {s} s" if s and m < 10 else "")
    if s < 2 * 86400:
        h, rest = divmod(s, 3600)
        return f"{h} h" + (f" {rest // 60} min" if rest >= 60 else "")
    return f"{s // 86400} d {(s % 86400) // 3600} h"


def ago(then: datetime | None, now: datetime) -> str:
    """'3 min ago', 'just now' (a clock slightly behind), 'never'."""
    if then is None:
        return "never"
    delta = (now - then).total_seconds()
    if delta < 0:
        return "just now"
    return f"{rough_duration(delta)} ago"


def seconds(value: float) -> str:
    """0.043 -> '43 ms', 1.25 -> '1.25 s'."""
    if value < 1:
        return f"{value * 1000:.0f} ms"
    return f"{value:.2f} s"


def ms(value: float | None) -> str:
    """412.4 -> '412 ms'; None -> 'n/a'."""
    return "n/a" if value is None else f"{value:.0f} ms"
