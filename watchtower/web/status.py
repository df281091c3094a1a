"""The status page (`/`) and its JSON twin (`/api/v1/status`): what on-call needs at a glance.

The web edge: it reads the clock, the history store and the registries, and hands them to the
pure rules in `watchtower.status`. Closed UTC days of history are summed once and kept
(`HistoryCache`), so a request reads only today's counts and the last 24 h of probe results.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import Blueprint, current_app, jsonify, render_template
from flask.sansio.blueprints import BlueprintSetupState

from watchtower import status
from watchtower.checks.runner import interval_for as check_interval
from watchtower.model import Alert
from watchtower.probes.base import interval_for as probe_interval
from watchtower.runtime import Watchtower
from watchtower.status import DAYS, Feed, Hour, Hours, charts, floor_hour
from watchtower.status import maintenance as upkeep
from watchtower.web.auth import require

REFRESH_SECONDS = 30

bp = Blueprint("status", __name__)


@bp.record_once
def _set_up(state: BlueprintSetupState) -> None:
    state.app.extensions["watchtower.status.cache"] = PageCache()


# -- what the integrator wires: the alert receiver and the runbook engine ------------------------


@dataclass(frozen=True, kw_only=True)
class ExecutionSummary:
    """One runbook execution, as the page lists it."""

    id: str
    runbook: str  # the runbook's id
    title: str
    state: str  # e.g. running, waiting for approval, succeeded, failed
    started_at: datetime
    finished_at: datetime | None = None
    trigger: str = ""  # e.g. the alert that started it, or who did
    url: str | None = None  # its page, when there is one


def firing_alerts(wt: Watchtower) -> list[Alert]:
    """The alerts Alertmanager reports firing now, newest first."""
    return sorted(wt.store.firing_alerts(), key=lambda a: a.starts_at, reverse=True)


def recent_executions(wt: Watchtower, limit: int = 8) -> list[ExecutionSummary]:
    """The latest runbook executions, newest first (a handful)."""
    return [
        ExecutionSummary(
            id=e.id,
            runbook=e.runbook_id,
            title=e.title,
            state=e.status.value.replace("_", " ")
            + (" (dry run)" if e.dry_run else "")
            + (", alert still firing" if e.still_firing else ""),
            started_at=e.started_at or e.created_at,
            finished_at=e.finished_at,
            trigger=f"alert {e.alert_name}" if e.alert_name else f"started by {e.started_by}",
            url=f"/executions/{e.id}",
        )
        for e in wt.runbooks.list(limit=limit)
    ]


# -- views ---------------------------------------------------------------------------------------


@bp.get("/")
@require("viewer")
def page() -> Any:
    wt = _watchtower()
    view = snapshot(wt, now=wt.now())
    return render_template("status/page.html", v=view, charts=charts, status=status)


@bp.get("/api/v1/status")
@require("viewer")
def api() -> Any:
    wt = _watchtower()
    return jsonify(to_json(snapshot(wt, now=wt.now())))


def _watchtower() -> Watchtower:
    wt: Watchtower = current_app.extensions["watchtower"]
    return wt


# -- the page's data -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ComponentHistory:
    uptime: dict[str, float | None]
    days: list[status.Day]


@dataclass(frozen=True, kw_only=True)
class StatusView:
    now: datetime
    sandbox: bool
    refresh_seconds: int
    overall: status.Overall
    components: list[status.ComponentState]
    history: dict[str, ComponentHistory]
    latency: list[status.StepLatency]
    latency_start: datetime
    alerts: list[Alert]
    executions: list[ExecutionSummary]
    maintenance: list[upkeep.Window] = dataclasses.field(default_factory=list)  # active now


def feeds(wt: Watchtower) -> list[Feed]:
    """Every probe and check, as the page reads them."""
    return [
        *(
            Feed(
                name=p.name,
                kind="probe",
                title=p.title,
                component=p.component,
                interval=probe_interval(p, wt.settings),
            )
            for p in wt.probes.values()
        ),
        *(
            Feed(
                name=c.name,
                kind="check",
                title=c.title,
                component=c.component,
                interval=check_interval(c, wt.settings),
            )
            for c in wt.checks.values()
        ),
    ]


def snapshot(wt: Watchtower, *, now: datetime) -> StatusView:
    known = feeds(wt)
    cache: PageCache = current_app.extensions["watchtower.status.cache"]
    # The two newest of each: a retry (attempt 2) and its first attempt are one run.
    runs = {f.name: status.latest_run(wt.store.newest(f.name, count=2)) for f in known}
    components = status.component_states(known, runs, now)
    hours = cache.hours(wt, known, now)
    # Runbooks' declared maintenance: shown, and left out of uptime (watchtower.status.maintenance).
    windows = [upkeep.Window(**w) for w in wt.runbooks.maintenance()]
    hours = {
        cid: upkeep.exclude(h, [w for w in windows if w.component == cid], now)
        for cid, h in hours.items()
    }
    history = {
        c.component.id: ComponentHistory(
            uptime=status.uptimes(hours.get(c.component.id, {}), now),
            days=status.days(hours.get(c.component.id, {}), now),
        )
        for c in components
    }
    samples = cache.step_samples(wt, [f.name for f in known if f.kind == "probe"], now)
    return StatusView(
        now=now,
        sandbox=wt.settings.sandbox,
        refresh_seconds=REFRESH_SECONDS,
        overall=status.overall(components, now),
        components=components,
        history=history,
        latency=status.step_latency(samples, now, status.LATENCY_HOURS),
        latency_start=floor_hour(now) - (status.LATENCY_HOURS - 1) * status.HOUR,
        alerts=firing_alerts(wt),
        executions=recent_executions(wt),
        maintenance=[w for w in windows if w.active(now)],
    )


class PageCache:
    """What the page reads of closed periods, read once: a closed day or hour no longer changes.

    * Per-component hours of closed UTC days, for uptime and the daily bars.
    * Probe step times of closed UTC hours, for the latency charts.
    A period closes `GRACE` after its end, so a run that started before the boundary and was
    stored after it still lands in it. Open periods are read on every request: today's counts,
    and this hour's probe results.
    """

    GRACE = timedelta(minutes=5)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._feeds: tuple[Feed, ...] = ()
        self._forget()

    def _forget(self) -> None:
        self._days: dict[date, Hours] = {}
        self._days_until: date | None = None  # closed days before this one are cached
        self._steps = status.StepSamples(seconds={}, positions={}, thresholds={})
        self._steps_until: datetime | None = None  # closed hours before this one are cached

    def _check_feeds(self, known: tuple[Feed, ...]) -> None:
        if known != self._feeds:  # a check or an interval changed: so did the sums
            self._forget()
            self._feeds = known

    def hours(self, wt: Watchtower, known: Iterable[Feed], now: datetime) -> Hours:
        known = tuple(known)
        first = now.astimezone(UTC).date() - timedelta(days=DAYS - 1)
        closed = (now - self.GRACE).astimezone(UTC).date()  # days before this one are closed
        with self._lock:
            self._check_feeds(known)
            since = max(first, self._days_until or first)
            if since < closed:
                read = _read_hours(wt, known, since=_midnight(since), until=_midnight(closed))
                for n in range((closed - since).days):
                    day = since + timedelta(days=n)
                    self._days[day] = {
                        row: {h: v for h, v in hours.items() if h.date() == day}
                        for row, hours in read.items()
                    }
                self._days_until = closed
            for old in [d for d in self._days if d < first]:
                del self._days[old]
            merged: dict[str, dict[datetime, Hour]] = {}
            for day_hours in self._days.values():
                for row, hours in day_hours.items():
                    merged.setdefault(row, {}).update(hours)
        for row, hours in _read_hours(wt, known, since=_midnight(closed)).items():
            merged.setdefault(row, {}).update(hours)
        return merged

    def step_samples(self, wt: Watchtower, probes: list[str], now: datetime) -> status.StepSamples:
        first = floor_hour(now) - (status.LATENCY_HOURS - 1) * status.HOUR
        closed = floor_hour(now - self.GRACE)  # hours before this one are closed
        with self._lock:
            since = max(first, self._steps_until or first)
            if since < closed:
                read = _read_steps(wt, probes, since=since, until=closed)
                self._steps = self._steps.merge(read)
                self._steps_until = closed
            kept = {h: v for h, v in self._steps.seconds.items() if h >= first}
            cached = status.StepSamples(
                seconds=kept, positions=self._steps.positions, thresholds=self._steps.thresholds
            )
            self._steps = cached
        return cached.merge(_read_steps(wt, probes, since=closed))


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _read_hours(
    wt: Watchtower, known: tuple[Feed, ...], *, since: datetime, until: datetime | None = None
) -> Hours:
    counts = wt.store.status_counts(since=since, until=until)
    problems = [
        r
        for feed in known
        if len(feed.rows) > 1
        for r in wt.store.problems(feed.name, since=since, until=until)
    ]
    return status.hours_from(known, counts, problems)


def _read_steps(
    wt: Watchtower, probes: list[str], *, since: datetime, until: datetime | None = None
) -> status.StepSamples:
    return status.step_samples(
        r for name in probes for r in wt.store.history(name, since=since, until=until)
    )


# -- JSON ----------------------------------------------------------------------------------------


def _time(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def to_json(v: StatusView) -> dict[str, Any]:
    return {
        "maintenance": [
            {
                "component": w.component,
                "until": _time(w.ends_at),
                "execution": w.execution_id,
                "runbook": w.runbook,
            }
            for w in v.maintenance
        ],
        "generated_at": _time(v.now),
        "sandbox": v.sandbox,
        "refresh_seconds": v.refresh_seconds,
        "overall": {
            "state": v.overall.state.value,
            "headline": v.overall.headline,
            "detail": v.overall.detail,
        },
        "components": [
            {
                "id": c.component.id,
                "title": c.component.title,
                "state": c.state.value,
                "reason": c.reason,
                "figure": c.figure,
                "last_checked": _time(c.last_checked),
                "stale": c.stale,
                "sources": [
                    {
                        "name": s.feed.name,
                        "kind": s.feed.kind,
                        "title": s.feed.title,
                        "state": s.state.value,
                        "status": s.status.value if s.status is not None else None,
                        "reason": s.reason,
                        "figure": s.figure,
                        "figures": s.figures,
                        "observed_at": _time(s.observed_at),
                        "stale": s.stale,
                        "interval_seconds": s.feed.interval,
                    }
                    for s in c.sources
                ],
                "uptime": v.history[c.component.id].uptime,
                "days": [
                    {
                        "date": d.date.isoformat(),
                        "state": d.state.value,
                        "uptime": d.uptime,
                        "down_seconds": d.down_seconds,
                        "degraded_seconds": d.degraded_seconds,
                        "coverage": d.coverage,
                        "readings": {
                            "ok": d.ok,
                            "warning": d.warning,
                            "critical": d.critical,
                            "unknown": d.unknown,
                        },
                    }
                    for d in v.history[c.component.id].days
                ],
            }
            for c in v.components
        ],
        "latency": {
            "bucket_seconds": int(status.HOUR.total_seconds()),
            "since": _time(v.latency_start),
            "steps": [
                {
                    "probe": s.probe,
                    "step": s.step,
                    "threshold_seconds": s.threshold,
                    "points": [
                        {"start": _time(p.start), "p50": p.p50, "p95": p.p95, "samples": p.samples}
                        for p in s.points
                    ],
                }
                for s in v.latency
            ],
        },
        "alerts": [
            {
                "fingerprint": a.fingerprint,
                "name": a.name,
                "status": a.status,
                "labels": a.labels,
                "annotations": a.annotations,
                "starts_at": _time(a.starts_at),
                "generator_url": a.generator_url,
            }
            for a in v.alerts
        ],
        "executions": [
            {
                "id": e.id,
                "runbook": e.runbook,
                "title": e.title,
                "state": e.state,
                "started_at": _time(e.started_at),
                "finished_at": _time(e.finished_at),
                "trigger": e.trigger,
                "url": e.url,
            }
            for e in v.executions
        ],
    }
