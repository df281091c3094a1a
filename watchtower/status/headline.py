"""The figure behind a result, in a few words, as a row of the status page shows it. Pure."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from watchtower.figures import seconds
from watchtower.model import Result


def headline(result: Result) -> str:
    """A result's key figures in a few words; checks without a formatter show their first two."""
    f = result.figures
    if result.kind == "probe":
        total = f.get("total_seconds")
        return f"walk {seconds(total)}" if total is not None else ""
    formatter = _FIGURES.get(result.name)
    if formatter is not None:
        parts = [p for p in formatter(f) if p]
        return " · ".join(parts)
    shown = [(k, v) for k, v in f.items() if v is not None][:2]
    return " · ".join(f"{k} {v:g}" for k, v in shown)


def _ratio(f: Mapping[str, float | None], key: str, text: str, digits: int = 1) -> str:
    value = f.get(key)
    return text.format(f"{value * 100:.{digits}f}%") if value is not None else ""


def _count(f: Mapping[str, float | None], key: str, text: str) -> str:
    value = f.get(key)
    return text.format(f"{value:,.0f}") if value is not None else ""


def _of(first: str, second: str) -> str:
    """`first second`, or nothing when the first part has no figure."""
    return f"{first} {second}".strip() if first else ""


def _flag(f: Mapping[str, float | None]) -> str:
    value = f.get("flag")
    return "" if value is None else f"dual-write flag {'on' if value else 'off'}"


Figures = Mapping[str, float | None]

_FIGURES: dict[str, Callable[[Figures], list[str]]] = {
    "upload_success": lambda f: [
        _of(_ratio(f, "success_ratio", "{} of", 2), _count(f, "uploads", "{} uploads ok")),
        _count(f, "p95_upper_bound_ms", "P95 ≤ {} ms"),
    ],
    "dynamodb_throttling": lambda f: [
        _count(f, "throttled_requests", "{} throttled requests"),
        _count(f, "write_throttle_events", "{} write throttle events"),
    ],
    "dynamodb_writes": lambda f: [
        _count(f, "write_units", "{} write units"),
        _ratio(f, "ratio_of_baseline", "{} of baseline", 0),
    ],
    "lambda_cold_starts": lambda f: [
        _of(
            _ratio(f, "cold_start_ratio", "{} cold starts"),
            _count(f, "invocations", "of {} invocations"),
        ),
        _count(f, "init_p95_ms", "init P95 {} ms"),
    ],
    "cloudfront_hit_rate": lambda f: [
        _ratio(f, "hit_ratio", "{} hit rate"),
        _count(f, "requests", "{} requests"),
    ],
    "gallery_cache": lambda f: [
        _ratio(f, "hit_ratio", "{} hits"),
        _ratio(f, "bypass_ratio", "{} bypassed"),
    ],
    "postgres_inserts": lambda f: [
        _count(f, "inserted_rows", "{} legacy rows inserted"),
        _flag(f),
    ],
    "dual_write": lambda f: [
        _flag(f),
        _of(_ratio(f, "success_ratio", "{} of", 2), _count(f, "attempts", "{} dual-writes ok")),
    ],
}
