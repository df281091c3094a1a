"""The final migration report (Story 6.5), from Watchtower's own data.

Sections: executive summary, timeline (the cutover audit log and the flag changes the dual_write
check saw), performance before and after the flip (CloudWatch counts: upload and get P95 bounds
and success rates, the gallery cache and CloudFront hit rates; the probe's own timings from the
history store), cost (Cost Explorer, resources with the cost tag), issues, and the sections
people write (lessons learned, recognition), marked as placeholders.

`collect` reads; `migration_document` turns what was read into the report's plain data.
"""

from __future__ import annotations

import calendar
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Engine, select

from watchtower import figures as fig
from watchtower.checks import image_metrics
from watchtower.checks.base import MetricQuery, MetricSource
from watchtower.config import Settings
from watchtower.cutover.canonical import sha256
from watchtower.cutover.document import SCHEMA
from watchtower.cutover.model import LATENCY_THRESHOLDS_MS, AuditEntry, Window, iso
from watchtower.cutover.ports import CostRow, CostSource, ResultHistory
from watchtower.errors import SourceError
from watchtower.model import Status

if TYPE_CHECKING:
    from watchtower.cutover.service import CutoverService

PERIOD_DAYS = 7
COST_MONTHS = 3  # months before the flip's month, with it and after it up to today
CLOUDFRONT_REGION = "us-east-1"
PLACEHOLDER = "TO BE FILLED IN"

PLACEHOLDERS = {
    "business_value": "Business value delivered: what users and the business gained.",
    "milestones": "The six-week plan: each epic's completion date and milestone (Epics 1-6).",
    "cost_analysis": "Infrastructure cost before the migration (the legacy stack is not tagged "
    "for Watchtower), savings achieved and the ROI calculation.",
    "went_well": "What went well.",
    "could_improve": "What could be improved.",
    "recommendations": "Recommendations for future migrations.",
    "recognition": "Contributors to acknowledge, and how the team celebrates.",
}


class AlertLog(Protocol):
    def alerts_since(self, since: datetime) -> list[dict[str, Any]]:
        """Alerts that started since `since`, whatever their state now."""


class SqlAlertLog:
    """Reads the alerts table the Alertmanager webhook keeps (watchtower.store.alerts)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def alerts_since(self, since: datetime) -> list[dict[str, Any]]:
        from watchtower.store import alerts

        query = select(alerts).where(alerts.c.starts_at >= since).order_by(alerts.c.starts_at)
        with self._engine.connect() as conn:
            return [
                {
                    "name": (row.labels or {}).get("alertname", ""),
                    "severity": (row.labels or {}).get("severity", ""),
                    "status": row.status,
                    "starts_at": _aware(row.starts_at),
                    "ends_at": _aware(row.ends_at) if row.ends_at else None,
                    "summary": (row.annotations or {}).get("summary", ""),
                }
                for row in conn.execute(query)
            ]


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


@dataclass(frozen=True, kw_only=True)
class Period:
    label: str
    start: datetime
    end: datetime

    @property
    def seconds(self) -> int:
        return int((self.end - self.start).total_seconds())


@dataclass(frozen=True, kw_only=True)
class Figures:
    """One period's figures, each None when nothing was recorded."""

    values: dict[str, float | None] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class Collected:
    now: datetime
    windows: list[Window]
    verdicts: dict[str, tuple[str, str]]  # window id -> (state, headline)
    signoffs: dict[str, list[dict[str, Any]]]
    audit: list[AuditEntry]
    flag_points: list[tuple[datetime, float | None]]
    before: Period
    after: Period
    figures: dict[str, Figures]  # period label -> figures
    alerts: list[dict[str, Any]] | None
    alerts_error: str | None
    costs: list[CostRow] | None
    costs_error: str | None
    cost_tag: tuple[str, str]
    period_note: str


# -- reading ------------------------------------------------------------------------------------


def periods(windows: Sequence[Window], now: datetime) -> tuple[Period, Period, str]:
    """Before and after the flip of the report's window (the signed one, else the latest)."""
    chosen = next((w for w in windows if w.close_reason and w.close_reason.value == "signed"), None)
    chosen = chosen or (windows[0] if windows else None)
    end = now.astimezone(UTC).replace(second=0, microsecond=0)
    if chosen is None:
        return (
            Period(label="before", start=end - timedelta(days=14), end=end - timedelta(days=7)),
            Period(label="after", start=end - timedelta(days=7), end=end),
            "No cutover window was recorded: the previous 7 days are compared with the last 7.",
        )
    flip = chosen.opened_at.astimezone(UTC).replace(second=0, microsecond=0)
    after_end = min(end, flip + timedelta(days=PERIOD_DAYS))
    note = f"Before: the {PERIOD_DAYS} days up to the flip; after: from the flip"
    if after_end - flip < timedelta(days=PERIOD_DAYS):
        note += f", {fig.duration(after_end - flip)} so far (the report is early)"
    else:
        note += f", {PERIOD_DAYS} days"
    return (
        Period(label="before", start=flip - timedelta(days=PERIOD_DAYS), end=flip),
        Period(label="after", start=flip, end=max(after_end, flip + timedelta(minutes=1))),
        note + ".",
    )


def _queries(settings: Settings, window: int) -> list[MetricQuery]:
    queries = []
    for op in ("upload", "get"):
        queries += [
            image_metrics.requests(settings, window, traffic="user", outcome=o, operation=op)
            for o in ("success", "server_error")
        ]
        queries.append(
            image_metrics.latency_samples(settings, window, traffic="user", operation=op)
        )
        queries += [
            image_metrics.latency_over(settings, window, t, traffic="user", operation=op)
            for t in LATENCY_THRESHOLDS_MS
        ]
    queries += [
        image_metrics.cache_events(settings, window, event=e) for e in ("hit", "miss", "bypass")
    ]
    if settings.cloudfront_distribution_id:
        queries.append(
            MetricQuery(
                key="cloudfront_hit_rate",
                namespace="AWS/CloudFront",
                metric="CacheHitRate",
                dimensions=(
                    ("DistributionId", settings.cloudfront_distribution_id),
                    ("Region", "Global"),
                ),
                stat="Average",
                window_seconds=window,
                region=CLOUDFRONT_REGION,
            )
        )
    return queries


def period_figures(
    settings: Settings, metrics: MetricSource, results: ResultHistory, period: Period
) -> Figures:
    window = max(60, period.seconds // 60 * 60)
    queries = _queries(settings, window)
    by_region: dict[str, list[MetricQuery]] = {}
    for q in queries:
        by_region.setdefault(q.region or settings.region, []).append(q)
    series: dict[str, list[tuple[datetime, float]]] = {}
    try:
        for region, chunk in by_region.items():
            fetched = metrics.fetch(
                chunk, now=period.start + timedelta(seconds=window), region=region
            )
            series.update({q.key: fetched.get(q, []) for q in chunk})
    except SourceError as exc:
        return Figures(error=str(exc))

    def total(key: str) -> float | None:
        points = series.get(key) or []
        return sum(v for _, v in points) if points else None

    values: dict[str, float | None] = {}
    for op in ("upload", "get"):
        ok = total(f"requests_{op}_user_success") or 0.0
        bad = total(f"requests_{op}_user_server_error") or 0.0
        values[f"{op}_requests"] = ok + bad
        values[f"{op}_success_ratio"] = ok / (ok + bad) if ok + bad else None
        samples = total(f"latency_samples_{op}_user") or 0.0
        # A threshold the image core does not publish (IMAGE_LATENCY_THRESHOLDS_MS without it)
        # is left out, never read as "none over it"; with no uploads every one reads 0.
        read = {t: total(f"latency_over_{t}ms_{op}_user") for t in LATENCY_THRESHOLDS_MS}
        over = {t: v for t, v in read.items() if v is not None} if samples else {}
        values[f"{op}_p95_bound_ms"] = fig.p95_bound(samples, over)
        values[f"{op}_p95_estimate_ms"] = fig.p95_estimate(samples, over)
    hits, misses = total("cache_events_hit") or 0.0, total("cache_events_miss") or 0.0
    bypass = total("cache_events_bypass") or 0.0
    lookups = hits + misses + bypass
    values["gallery_cache_hit_ratio"] = hits / lookups if lookups else None
    rates = [v for _, v in series.get("cloudfront_hit_rate") or []]
    values["cloudfront_hit_ratio"] = sum(rates) / len(rates) / 100 if rates else None
    try:
        runs = [
            r
            for r in results.history("upload_get", since=period.start, until=period.end)
            if r.attempt == 1 and r.status in (Status.OK, Status.WARNING)
        ]
    except Exception as exc:  # the history store: SQLAlchemy's errors, whatever the dialect
        return Figures(values=values, error=f"probe results could not be read: {exc}")
    for step in ("upload", "get"):
        timings = [
            float(seconds) * 1000
            for r in runs
            if isinstance(seconds := r.figures.get(f"{step}_seconds"), int | float)
        ]
        values[f"probe_{step}_p95_ms"] = fig.percentile(timings, 0.95)
    return Figures(values=values)


def collect(
    *,
    settings: Settings,
    windows: list[Window],
    verdicts: dict[str, tuple[str, str]],
    signoffs: dict[str, list[dict[str, Any]]],
    audit: list[AuditEntry],
    metrics: MetricSource,
    results: ResultHistory,
    alert_log: AlertLog | None,
    costs: CostSource | None,
    cost_tag: tuple[str, str],
    now: datetime,
) -> Collected:
    before, after, note = periods(windows, now)
    flag_points = [
        (r.observed_at, r.figures.get("flag"))
        for r in results.history("dual_write", since=before.start, until=now)
    ]
    alerts = alerts_error = None
    if alert_log is None:
        alerts_error = "no alert log is configured"
    else:
        try:
            alerts = alert_log.alerts_since(before.start)
        except Exception as exc:  # the history store: SQLAlchemy's errors, whatever the dialect
            alerts_error = f"the alerts could not be read: {exc}"
    rows = costs_error = None
    if costs is None:
        costs_error = "Cost Explorer is not configured"
    else:
        flip_month = before.end.date().replace(day=1)
        start = _add_months(flip_month, -COST_MONTHS)
        try:
            rows = costs.monthly_costs(start, now.date() + timedelta(days=1), cost_tag)
        except SourceError as exc:
            costs_error = str(exc)
    return Collected(
        now=now,
        windows=windows,
        verdicts=verdicts,
        signoffs=signoffs,
        audit=audit,
        flag_points=flag_points,
        before=before,
        after=after,
        figures={p.label: period_figures(settings, metrics, results, p) for p in (before, after)},
        alerts=alerts,
        alerts_error=alerts_error,
        costs=rows,
        costs_error=costs_error,
        cost_tag=cost_tag,
        period_note=note,
    )


def _add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year = day.year + month // 12
    month = month % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


# -- the document -------------------------------------------------------------------------------

ROWS: tuple[tuple[str, str, str, str | None], ...] = (
    # key, label, kind, target (from the epic)
    ("upload_p95_bound_ms", "Upload P95 (upper bound, user traffic)", "ms", "< 800 ms"),
    ("upload_p95_estimate_ms", "Upload P95 (estimate)", "ms", None),
    ("get_p95_bound_ms", "Get P95 (upper bound, user traffic)", "ms", None),
    ("get_p95_estimate_ms", "Get P95 (estimate)", "ms", None),
    ("upload_success_ratio", "Upload success rate", "ratio", "> 99.9%"),
    ("get_success_ratio", "Get success rate", "ratio", "> 99.9%"),
    ("gallery_cache_hit_ratio", "Gallery cache hit rate (Redis)", "ratio", None),
    ("cloudfront_hit_ratio", "CloudFront cache hit rate", "ratio", None),
    ("probe_upload_p95_ms", "Probe upload step P95 (exact, synthetic)", "ms", None),
    ("probe_get_p95_ms", "Probe get step P95 (exact, synthetic)", "ms", None),
    ("upload_requests", "User uploads", "count", None),
    ("get_requests", "User gets", "count", None),
)


def _shown(value: float | None, kind: str) -> str:
    if value is None:
        return "no data"
    if kind == "ms":
        return fig.ms(value)
    if kind == "ratio":
        return fig.percent(value)
    return f"{value:,.0f}"


def _change(before: float | None, after: float | None, kind: str) -> str:
    if before is None or after is None or kind == "count":
        return ""
    if kind == "ratio":
        return f"{(after - before) * 100:+.2f} points"
    if not before:
        return ""
    return f"{(after - before) / before:+.0%}"


_AUDIT_TEXT = {
    "preflight": lambda e: "Pre-flight dual-write report: " + str(e.detail.get("decision", "")),
    "override": lambda e: (
        "Pre-flight gate overridden by "
        + str((e.detail.get("override") or {}).get("by", e.actor))
        + ": "
        + str((e.detail.get("override") or {}).get("reason", ""))
    ),
    "window-opened": lambda e: (
        f"Dual-write turned off by {e.detail.get('flipped_by')} "
        f"(via {e.detail.get('via')}); 24-hour cutover window opened"
    ),
    "signed": lambda e: (
        f"Signed by {e.detail.get('name')} ({e.detail.get('role')})"
        + (f": {e.detail.get('comment')}" if e.detail.get("comment") else "")
    ),
    "report-frozen": lambda e: f"Cutover report frozen, sha256 {e.detail.get('sha256')}",
    "rolled-back": lambda e: f"Rolled back (dual-write on again): {e.detail.get('reason')}",
    "abandoned": lambda e: f"Cutover window abandoned: {e.detail.get('reason')}",
}


def migration_document(c: Collected) -> dict[str, Any]:
    timeline = [
        {
            "at": iso(e.at),
            "source": "cutover audit log",
            "actor": e.actor,
            "text": _AUDIT_TEXT.get(e.action, lambda e: e.action)(e),
        }
        for e in c.audit
    ]
    timeline += _flag_changes(c.flag_points)
    timeline.sort(key=lambda t: t["at"])
    before, after = c.figures["before"], c.figures["after"]
    rows = [
        {
            "key": key,
            "metric": label,
            "before": before.values.get(key),
            "after": after.values.get(key),
            "before_text": _shown(before.values.get(key), kind),
            "after_text": _shown(after.values.get(key), kind),
            "change": _change(before.values.get(key), after.values.get(key), kind),
            "target": target,
        }
        for key, label, kind, target in ROWS
    ]
    windows: list[dict[str, Any]] = [
        {
            "id": w.id,
            "opened_at": iso(w.opened_at),
            "ends_at": iso(w.ends_at),
            "opened_by": w.opened_by,
            "state": c.verdicts.get(w.id, ("", ""))[0],
            "headline": c.verdicts.get(w.id, ("", ""))[1],
            "closed_at": iso(w.closed_at),
            "close_reason": w.close_reason.value if w.close_reason else None,
            "signoffs": c.signoffs.get(w.id, []),
        }
        for w in c.windows
    ]
    signed = next((w for w in windows if w["state"] == "signed"), None)
    issues = [
        {"at": w["opened_at"], "text": f"Cutover window {w['id'][:8]}: {w['headline']}"}
        for w in windows
        if w["state"] in ("failed", "rolled_back", "abandoned", "not_met", "insufficient_coverage")
    ]
    issues += [
        {"at": t["at"], "text": t["text"]}
        for t in timeline
        if t["text"].startswith("Pre-flight gate overridden")
    ]
    for alert in c.alerts or []:
        if alert["severity"] == "critical":
            ended = f", resolved {iso(alert['ends_at'])}" if alert["status"] == "resolved" else ""
            issues.append(
                {
                    "at": iso(alert["starts_at"]),
                    "text": f"Critical alert {alert['name']} fired{ended}"
                    + (f": {alert['summary']}" if alert["summary"] else ""),
                }
            )
    issues.sort(key=lambda i: i["at"] or "")
    costs = _costs(c)
    contributors = sorted(
        {e.actor for e in c.audit if e.actor and not e.actor.startswith("runbook")}
        | {s["name"] for w in windows for s in w["signoffs"]}
    )
    document = {
        "schema": SCHEMA,
        "kind": "migration-report",
        "generated_at": iso(c.now),
        "summary": {
            "goal": "Complete the image service migration: dual-write disabled, the image "
            "service the sole source of truth, legacy code removed, performance optimised, "
            "documentation and runbooks handed over (Epic 6).",
            "dual_write_disabled_at": signed["opened_at"] if signed else None,
            "cutover_state": windows[0]["state"] if windows else None,
            "cutover_headline": windows[0]["headline"] if windows else "no cutover window recorded",
            "signed_by": [f"{s['name']} ({s['role']})" for s in (signed or {}).get("signoffs", [])],
            "key_metrics": [r for r in rows if r["key"] in _KEY_METRICS],
        },
        "windows": windows,
        "timeline": timeline,
        "performance": {
            "before": {"start": iso(c.before.start), "end": iso(c.before.end)},
            "after": {"start": iso(c.after.start), "end": iso(c.after.end)},
            "note": c.period_note,
            "errors": [e for e in (before.error, after.error) if e],
            "rows": rows,
        },
        "cost": costs,
        "issues": issues,
        "issues_note": c.alerts_error,
        "contributors": contributors,
        "placeholders": {k: {"prompt": v, "text": PLACEHOLDER} for k, v in PLACEHOLDERS.items()},
        "sources_not_included": [
            "runbook executions: the runbook engine's audit log is not read here yet",
        ],
    }
    return {**document, "sha256": sha256(document)}


_KEY_METRICS = (
    "upload_p95_bound_ms",
    "get_p95_bound_ms",
    "upload_success_ratio",
    "cloudfront_hit_ratio",
    "gallery_cache_hit_ratio",
)


def _flag_changes(points: Sequence[tuple[datetime, float | None]]) -> list[dict[str, Any]]:
    """Every change of the flag the dual_write check saw (on -> off and off -> on)."""
    out = []
    known = [(at, v) for at, v in sorted(points, key=lambda p: p[0]) if v is not None]
    for (_, before), (at, now) in itertools.pairwise(known):
        if before != now:
            out.append(
                {
                    "at": iso(at),
                    "source": "dual_write check",
                    "actor": "",
                    "text": "ENABLE_DYNAMODB_DUAL_WRITE seen "
                    + ("off (dual-write disabled)" if now == 0 else "on (dual-write enabled)"),
                }
            )
    return out


def _costs(c: Collected) -> dict[str, Any]:
    tag = f"{c.cost_tag[0]}={c.cost_tag[1]}"
    if c.costs is None:
        return {
            "available": False,
            "tag": tag,
            "months": [],
            "note": f"Cost Explorer could not be read ({c.costs_error}): no cost figures. "
            "Run the report where the Cost Explorer API is reachable, or fill this section in.",
        }
    months = [
        {
            "start": r.start.isoformat(),
            "end": r.end.isoformat(),
            "amount": round(r.amount, 2),
            "unit": r.unit,
            "estimated": r.estimated,
            "by_service": {k: round(v, 2) for k, v in sorted(r.by_service.items())},
            "period": "before"
            if r.end <= c.before.end.date().replace(day=1)
            else "flip month"
            if r.start <= c.before.end.date() < r.end
            else "after",
        }
        for r in c.costs
    ]
    if not any(m["amount"] for m in months):
        note = (
            f"Cost Explorer answered, but reported no cost for resources tagged {tag} in these "
            "months: is the tag activated as a cost allocation tag?"
        )
    else:
        note = f"Unblended cost of resources tagged {tag}, by month."
    return {"available": True, "tag": tag, "months": months, "note": note}


def key_metric_text(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    return [
        f"{r['metric']}: {r['before_text']} before, {r['after_text']} after"
        + (f" ({r['change']})" if r["change"] else "")
        for r in rows
    ]


def migration_report(service: CutoverService, *, now: datetime) -> dict[str, Any]:
    """The final migration report's document (Story 6.5), from the service's records."""
    windows = service.store.windows()
    verdicts = {}
    for window in windows:
        verdict = service.verdict(window.id, now=now)
        verdicts[window.id] = (verdict.state.value, verdict.headline)
    collected = collect(
        settings=service.settings,
        windows=windows,
        verdicts=verdicts,
        signoffs={
            w.id: [
                {"name": s.name, "role": s.role, "at": iso(s.at), "comment": s.comment}
                for s in service.signoffs(w.id)
            ]
            for w in windows
        },
        audit=service.store.audit(),
        metrics=service.evidence_ports.metrics,
        results=service.results,
        alert_log=SqlAlertLog(service.store.engine),
        costs=service.costs,
        cost_tag=service.cutover.cost_tag,
        now=now,
    )
    return migration_document(collected)
