"""Reading the pre-flight report: dual-write over the last days, day by day, and the
reconciliation of the two stores (by image id, `cutover.reconcile`; by count where the image
source cannot page ids). Judging nothing: the gate is `cutover.gate`."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from watchtower.checks import image_metrics
from watchtower.checks.base import MetricQuery, Series
from watchtower.config import Settings
from watchtower.cutover.config import CutoverSettings
from watchtower.cutover.evidence import INSERTED, NO_LEGACY_DB, _fields, _query, _sum
from watchtower.cutover.model import DayRow, PreflightReport, Reconciliation
from watchtower.cutover.ports import PreflightPorts
from watchtower.cutover.reconcile import by_identity
from watchtower.errors import SourceError


@dataclass(frozen=True)
class _Reasons:
    values: list[str]
    note: str | None = None


DEFAULT_FAILURE_REASONS = ("postgresql",)  # the image core's reason for a failed legacy write


def _failure_reasons(settings: Settings, ports: PreflightPorts) -> _Reasons:
    if ports.catalog is None:
        return _Reasons(list(DEFAULT_FAILURE_REASONS), "no metric catalog: reasons assumed")
    try:
        found = ports.catalog.dimension_values(
            settings.metrics_namespace, "DualWriteFailures", "Reason"
        )
    except SourceError as exc:
        return _Reasons(
            list(DEFAULT_FAILURE_REASONS), f"failure reasons could not be listed ({exc})"
        )
    return _Reasons(sorted({*found, *DEFAULT_FAILURE_REASONS}))


def gather_preflight(
    *, settings: Settings, cutover: CutoverSettings, ports: PreflightPorts, now: datetime, days: int
) -> PreflightReport:
    """Dual-write over the last `days` days, day by day, and the reconciliation count."""
    end = now.astimezone(UTC).replace(second=0, microsecond=0)
    start = end - timedelta(days=days)
    window = days * 86400
    reasons = _failure_reasons(settings, ports)
    notes = [reasons.note] if reasons.note else []
    queries = [
        MetricQuery(
            **{
                **_fields(image_metrics.dual_writes(settings, window, outcome=o)),
                "period_seconds": 86400,
            }
        )
        for o in ("success", "failure")
    ]
    queries += [
        _query(
            f"failures_{reason}",
            settings.metrics_namespace,
            "DualWriteFailures",
            (("Reason", reason),),
            window,
            period_seconds=86400,
        )
        for reason in reasons.values
    ]
    queries += [
        MetricQuery(
            **{
                **_fields(image_metrics.requests(settings, window, traffic=t, outcome="success")),
                "period_seconds": 86400,
            }
        )
        for t in image_metrics.TRAFFIC
    ]
    metrics_error = None
    values: dict[str, Series] = {}
    try:
        fetched = ports.metrics.fetch(queries, now=end, region=settings.region)
        values = {q.key: fetched.get(q, []) for q in queries}
    except SourceError as exc:
        metrics_error = str(exc)
    daily = []
    for day in range(days):
        day_start = start + timedelta(days=day)
        day_end = day_start + timedelta(days=1)

        def in_day(series: Series, lo: datetime = day_start, hi: datetime = day_end) -> float:
            return sum(v for at, v in series if lo <= at.astimezone(UTC) < hi)

        daily.append(
            DayRow(
                start=day_start,
                end=day_end,
                successes=in_day(values.get("dual_writes_success", [])),
                failures=in_day(values.get("dual_writes_failure", [])),
            )
        )
    uploads = (
        None
        if metrics_error
        else sum(_sum(values.get(f"requests_upload_{t}_success")) for t in image_metrics.TRAFFIC)
    )
    return PreflightReport(
        start=start,
        end=end,
        days=days,
        successes=_sum(values.get("dual_writes_success")),
        failures=_sum(values.get("dual_writes_failure")),
        failures_by_reason={
            r: _sum(values.get(f"failures_{r}"))
            for r in reasons.values
            if _sum(values.get(f"failures_{r}")) or r in DEFAULT_FAILURE_REASONS
        },
        daily=tuple(daily),
        reconciliation=reconcile(
            ports, start=start, end=end, upload_requests=uploads, cutover=cutover
        ),
        metrics_error=metrics_error,
        notes=tuple(notes),
    )


def reconcile(
    ports: PreflightPorts,
    *,
    start: datetime,
    end: datetime,
    upload_requests: float | None,
    cutover: CutoverSettings | None = None,
) -> Reconciliation:
    """Surviving image records vs surviving legacy rows created in (start, end]: by
    identity when the image source can page ids (`cutover.reconcile`), else by count."""
    pager = getattr(ports.images, "id_pages", None)
    if cutover is not None and pager is not None and ports.legacy_sql is not None:
        return by_identity(
            pager(cutover.reconcile_page_size),
            ports.legacy_sql,
            start=start,
            end=end,
            upload_requests=upload_requests,
            cutover=cutover,
        )
    dynamodb = postgres = None
    dynamodb_error = postgres_error = None
    if ports.images is None:
        dynamodb_error = "no DynamoDB image counter is configured"
    else:
        try:
            dynamodb = ports.images.images_created(start, end)
        except SourceError as exc:
            dynamodb_error = str(exc)
    if ports.legacy_sql is None:
        postgres_error = NO_LEGACY_DB
    else:
        try:
            postgres = int(ports.legacy_sql.scalar(INSERTED, {"since": start, "until": end}) or 0)
        except SourceError as exc:
            postgres_error = str(exc)
    found = Reconciliation(
        dynamodb_images=dynamodb,
        postgres_rows=postgres,
        upload_requests=upload_requests,
        dynamodb_error=dynamodb_error,
        postgres_error=postgres_error,
    )
    return (
        replace(found, legacy_table=ports.legacy_sql.table)
        if ports.legacy_sql is not None
        else found
    )
