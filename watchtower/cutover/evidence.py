"""Reading the evidence: one sample per slot, and the baseline before the flip.

The I/O half of the cutover: it reads through ports and returns plain records (`Sample`,
`Baseline`), judging nothing. Every source that cannot be read becomes a reading with an
`error`, which the judge counts as a gap in the evidence. The pre-flight report is read by
`cutover.preflight`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from watchtower.checks import image_metrics
from watchtower.checks.base import MetricQuery, Series, TableSql
from watchtower.checks.dual_write import serving_flag
from watchtower.checks.postgres_inserts import HAS_INSERTED_AT
from watchtower.config import Settings
from watchtower.cutover.config import CutoverSettings
from watchtower.cutover.legacy_sql import (
    legacy_writes_at_open,
    table_writes,
    writing_statements,
)
from watchtower.cutover.model import (
    LATENCY_THRESHOLDS_MS,
    OPERATIONS,
    Baseline,
    LatencyCounts,
    Reading,
    Sample,
    Window,
    iso,
)
from watchtower.cutover.ports import EvidencePorts
from watchtower.errors import SourceError
from watchtower.model import Status

log = logging.getLogger(__name__)

LEGACY_ERROR_REASON = "legacy_write_failed"  # the image core's error code for a legacy write
PROBE = "upload_get"
INSERTED = TableSql(
    "SELECT count(*) FROM {table} WHERE inserted_at > %(since)s AND inserted_at <= %(until)s"
)
FIRST_INSERTED = TableSql(
    "SELECT min(inserted_at) FROM {table} "
    "WHERE inserted_at > %(since)s AND inserted_at <= %(until)s"
)
NO_LEGACY_DB = "the legacy database is not configured (WATCHTOWER_LEGACY_DATABASE_URL)"
# -- the metrics a sample reads -------------------------------------------------------------------


def _query(
    key: str, namespace: str, metric: str, dims: tuple, window: int, **kw: Any
) -> MetricQuery:
    return MetricQuery(
        key=key, namespace=namespace, metric=metric, dimensions=dims, window_seconds=window, **kw
    )


def sample_queries(
    settings: Settings, window: int, thresholds: tuple[int, ...] = LATENCY_THRESHOLDS_MS
) -> list[MetricQuery]:
    """Every CloudWatch metric one sample reads: one GetMetricData call. `thresholds`: the
    LatencyOver<N>ms the image core publishes (WATCHTOWER_CUTOVER_LATENCY_THRESHOLDS_MS)."""
    ns = settings.metrics_namespace
    function = (("FunctionName", settings.lambda_function),)
    return [
        _query(
            "writes",
            "AWS/DynamoDB",
            "ConsumedWriteCapacityUnits",
            (("TableName", settings.table),),
            window,
        ),
        *(
            image_metrics.requests(settings, window, traffic=t, outcome="success")
            for t in image_metrics.TRAFFIC
        ),
        image_metrics.requests(settings, window, traffic="user", outcome="server_error"),
        image_metrics.latency_samples(settings, window, traffic="user"),
        *(image_metrics.latency_over(settings, window, t, traffic="user") for t in thresholds),
        image_metrics.dual_writes(settings, window, outcome="success"),
        image_metrics.dual_writes(settings, window, outcome="failure"),
        *(
            _query(
                f"legacy_errors_{op}",
                ns,
                "Errors",
                (("Operation", op), ("Reason", LEGACY_ERROR_REASON)),
                window,
            )
            for op in ("upload", "delete")
        ),
        _query("lambda_errors", "AWS/Lambda", "Errors", function, window),
        _query("lambda_invocations", "AWS/Lambda", "Invocations", function, window),
        *operation_queries(settings, window, thresholds),
    ]


def operation_queries(
    settings: Settings, window: int, thresholds: tuple[int, ...]
) -> list[MetricQuery]:
    """Users' get, list and delete: requests by outcome, and latency over each threshold."""
    out = []
    for op in OPERATIONS:
        out += [
            image_metrics.requests(settings, window, traffic="user", outcome=o, operation=op)
            for o in ("success", "server_error")
        ]
        out.append(image_metrics.latency_samples(settings, window, traffic="user", operation=op))
        out += [
            image_metrics.latency_over(settings, window, t, traffic="user", operation=op)
            for t in thresholds
        ]
    return out


def operation_figures(
    s: Any, thresholds: tuple[int, ...], has: Callable[[str], bool] = lambda _key: True
) -> dict[str, dict[str, Any]]:
    """One slot's figures per user operation (`s(key)` sums a series, `has(key)`: published)."""
    return {
        op: {
            "requests": s(f"requests_{op}_user_success") + s(f"requests_{op}_user_server_error"),
            "server_errors": s(f"requests_{op}_user_server_error"),
            "samples": s(f"latency_samples_{op}_user"),
            "over": _over(s, has, op, thresholds),
        }
        for op in OPERATIONS
    }


def _over(s: Any, has: Callable[[str], bool], op: str, ts: tuple[int, ...]) -> dict[str, float]:
    # With requests in the slot, a LatencyOver<N>ms without datapoints is not published (the
    # image core's thresholds differ from ours): left out, so the criterion says unknown.
    keys = {t: f"latency_over_{t}ms_{op}_user" for t in ts}
    no_requests = not s(f"latency_samples_{op}_user")
    return {str(t): s(key) for t, key in keys.items() if no_requests or has(key)}


def _sum(series: Series | None) -> float:
    return sum(v for _, v in series or [])


def metric_readings(
    values: Mapping[str, Series], thresholds: tuple[int, ...] = LATENCY_THRESHOLDS_MS
) -> dict[str, Reading]:
    """The metric-based readings of one sample, from its fetched series by key."""

    def s(key: str) -> float:
        return _sum(values.get(key))

    def has(key: str) -> bool:
        return bool(values.get(key))

    user = "requests_upload_user_"
    return {
        "dynamodb_writes": Reading(
            figures={
                "write_units": s("writes"),
                "uploads": s(f"{user}success") + s("requests_upload_synthetic_success"),
            }
        ),
        "upload_success": Reading(
            figures={
                "uploads": s(f"{user}success") + s(f"{user}server_error"),
                "server_errors": s(f"{user}server_error"),
            }
        ),
        "upload_latency": Reading(
            figures={
                "samples": s("latency_samples_upload_user"),
                "over": _over(s, has, "upload", thresholds),
            }
        ),
        "user_operations": Reading(figures=operation_figures(s, thresholds, has)),
        "dual_write_errors": Reading(
            figures={
                "dual_write_attempts": s("dual_writes_success") + s("dual_writes_failure"),
                "legacy_errors": s("legacy_errors_upload") + s("legacy_errors_delete"),
                "lambda_errors": s("lambda_errors"),
                "lambda_invocations": s("lambda_invocations"),
            }
        ),
    }


# -- one sample ---------------------------------------------------------------------------------


def take_sample(
    window: Window,
    *,
    at: datetime,
    taken_at: datetime,
    settings: Settings,
    cutover: CutoverSettings,
    ports: EvidencePorts,
) -> Sample:
    """Read every source for the slot ending at `at` (its metrics `metrics_lag_seconds` late)."""
    interval = timedelta(seconds=window.interval_seconds)
    slot_start = max(window.opened_at, at - interval)
    metrics_end = at - timedelta(seconds=cutover.metrics_lag_seconds)
    metrics_start = metrics_end - interval
    readings: dict[str, Reading] = {}

    thresholds = cutover.latency_thresholds_ms
    queries = sample_queries(settings, window.interval_seconds, thresholds)
    try:
        fetched = ports.metrics.fetch(queries, now=metrics_end, region=settings.region)
        readings.update(metric_readings({q.key: fetched.get(q, []) for q in queries}, thresholds))
    except SourceError as exc:
        for name in (
            "dynamodb_writes",
            "upload_success",
            "upload_latency",
            "dual_write_errors",
            "user_operations",
        ):
            readings[name] = Reading(error=str(exc))

    if readings["upload_success"].readable:
        readings["upload_success"] = _with_probe(
            readings["upload_success"], ports, since=slot_start, until=at
        )
    readings["legacy_inserts"] = _legacy_reading(
        ports,
        window,
        slot_start=slot_start,
        at=at,
        grace=timedelta(seconds=cutover.grace_seconds),
    )
    readings["flag"] = _flag_reading(ports, settings)
    readings["critical_alerts"] = _alerts_reading(ports)
    return Sample(
        window_id=window.id,
        at=at,
        taken_at=taken_at,
        metrics_start=metrics_start,
        metrics_end=metrics_end,
        readings=readings,
    )


def _with_probe(
    reading: Reading, ports: EvidencePorts, *, since: datetime, until: datetime
) -> Reading:
    """Add the probe's runs in the slot: a run whose first attempt is critical failed (the runner
    only reports critical when the immediate retry failed too)."""
    try:
        runs = [r for r in ports.results.history(PROBE, since=since, until=until) if r.attempt == 1]
    except Exception as exc:  # the history store: SQLAlchemy's errors, whatever the dialect
        return Reading(error=f"probe results could not be read: {type(exc).__name__}: {exc}")
    judged = [r for r in runs if r.status is not Status.UNKNOWN]
    return Reading(
        figures={
            **reading.figures,
            "probe_runs": float(len(judged)),
            "probe_failures": float(sum(1 for r in judged if r.status is Status.CRITICAL)),
        }
    )


def _legacy_reading(
    ports: EvidencePorts,
    window: Window,
    *,
    slot_start: datetime,
    at: datetime,
    grace: timedelta,
) -> Reading:
    """Rows inserted since the flip, by the table's own `inserted_at`. Rows in the first
    `grace` after it (requests in flight at the flip) are counted apart: shown, not failing."""
    sql = ports.legacy_sql
    if sql is None:
        return Reading(error=NO_LEGACY_DB)
    try:
        writes = table_writes(sql)
        has_inserted_at = bool(sql.scalar(HAS_INSERTED_AT, {}))
    except SourceError as exc:
        return Reading(error=str(exc))
    if writes is None:
        return Reading(error=f"the legacy table {sql.table} does not exist")
    extra = {
        "table": sql.table,
        "writes": writes,
        "has_inserted_at": has_inserted_at,
        **writing_statements(sql),
    }
    if not has_inserted_at:
        # No row timestamps to count from: the statistics alone judge (deltas between samples).
        return Reading(figures=extra)
    grace_until = window.opened_at + grace
    figures: dict[str, Any] = {
        **extra,
        "rows_since_flip": 0,
        "rows_in_slot": 0,
        "first_insert_at": None,
        "grace_until": iso(grace_until),
        "rows_after_grace": 0,
        "first_after_grace_at": None,
    }
    try:
        since_flip = int(sql.scalar(INSERTED, {"since": window.opened_at, "until": at}) or 0)
        if since_flip:
            figures["rows_since_flip"] = since_flip
            figures["first_insert_at"] = _iso(
                sql.scalar(FIRST_INSERTED, {"since": window.opened_at, "until": at})
            )
            figures["rows_in_slot"] = int(
                sql.scalar(INSERTED, {"since": slot_start, "until": at}) or 0
            )
            after = int(sql.scalar(INSERTED, {"since": grace_until, "until": at}) or 0)
            figures["rows_after_grace"] = after
            if after:
                figures["first_after_grace_at"] = _iso(
                    sql.scalar(FIRST_INSERTED, {"since": grace_until, "until": at})
                )
    except SourceError as exc:
        return Reading(error=str(exc))
    return Reading(figures=figures)


def _iso(value: Any) -> str | None:
    return iso(value) if isinstance(value, datetime) else None


def _flag_reading(ports: EvidencePorts, settings: Settings) -> Reading:
    if ports.functions is None:
        return Reading(error="no Lambda configuration source is configured")
    try:  # through the alias when one is configured (WATCHTOWER_LAMBDA_ALIAS)
        flag, note = serving_flag(ports.functions, settings)
    except SourceError as exc:
        return Reading(error=str(exc))
    if flag is None:
        return Reading(error=note)
    return Reading(figures={"flag": 1.0 if flag else 0.0, "note": note})


def _alerts_reading(ports: EvidencePorts) -> Reading:
    if ports.alerts is None:
        return Reading(error="no alert store is configured")
    try:
        firing = ports.alerts.firing_alerts()
    except Exception as exc:  # the history store: SQLAlchemy's errors, whatever the dialect
        return Reading(error=f"alerts could not be read: {type(exc).__name__}: {exc}")
    return Reading(
        figures={
            "firing": [
                {"name": a.name, "fingerprint": a.fingerprint, "since": iso(a.starts_at)}
                for a in firing
                if a.labels.get("severity") == "critical"
            ]
        }
    )


# -- the baseline -------------------------------------------------------------------------------


def fetch_baseline(
    opened_at: datetime, *, settings: Settings, cutover: CutoverSettings, ports: EvidencePorts
) -> Baseline:
    """The days before the flip, hour by hour: write units by hour of day, and upload latency.

    One GetMetricData call: whole hours ending at the hour the flip happened in.
    """
    end = opened_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    days = cutover.baseline_days
    start = end - timedelta(days=days)
    window = days * 86400
    queries = [
        _query(
            "writes",
            "AWS/DynamoDB",
            "ConsumedWriteCapacityUnits",
            (("TableName", settings.table),),
            window,
            period_seconds=3600,
        ),
        MetricQuery(
            **{
                **_fields(image_metrics.latency_samples(settings, window, traffic="user")),
                "period_seconds": 3600,
            }
        ),
        *(
            MetricQuery(
                **{
                    **_fields(image_metrics.latency_over(settings, window, t, traffic="user")),
                    "period_seconds": 3600,
                }
            )
            for t in cutover.latency_thresholds_ms
        ),
    ]
    legacy_writes = legacy_writes_at_open(ports, at=opened_at)
    try:
        fetched = ports.metrics.fetch(queries, now=end, region=settings.region)
    except SourceError as exc:
        return Baseline(
            start=start, end=end, days=days, error=str(exc), legacy_writes=legacy_writes
        )
    values = {q.key: fetched.get(q, []) for q in queries}
    by_hour = [0.0] * 24
    for at, value in values["writes"]:
        by_hour[at.astimezone(UTC).hour] += value
    latency = LatencyCounts(
        samples=_sum(values["latency_samples_upload_user"]),
        over={
            t: _sum(values[f"latency_over_{t}ms_upload_user"])
            for t in cutover.latency_thresholds_ms
        },
    )
    return Baseline(
        start=start,
        end=end,
        days=days,
        writes_by_hour=tuple(v / days for v in by_hour),
        latency=latency if latency.samples > 0 else None,
        legacy_writes=legacy_writes,
    )


def _fields(query: MetricQuery) -> dict[str, Any]:
    return {
        "key": query.key,
        "namespace": query.namespace,
        "metric": query.metric,
        "dimensions": query.dimensions,
        "stat": query.stat,
        "window_seconds": query.window_seconds,
        "region": query.region,
    }
