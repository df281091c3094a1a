"""The status page's JSON twin (`/api/v1/status`): the view as data, every ratio with its
denominator (the observed seconds it was computed over and its window's elapsed seconds)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from watchtower import status

if TYPE_CHECKING:
    from watchtower.web.status import StatusView


def _time(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def to_json(v: StatusView) -> dict[str, Any]:
    frozen = v.frozen
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
        "served_at": _time(v.served_at or v.now),
        # Watchtower itself: degraded while it serves frozen data.
        "watchtower": {
            "state": frozen.watchtower_state if frozen else "ok",
            "reason": (
                f"the history store is unreachable since {_time(frozen.unreachable_since)}: "
                f"{frozen.reason}"
                if frozen
                else "the history store answers"
            ),
        },
        "frozen": (
            {
                "data_at": _time(frozen.data_at),
                "unreachable_since": _time(frozen.unreachable_since),
                "reason": frozen.reason,
            }
            if frozen
            else None
        ),
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
                # Every ratio with its denominator: the observed seconds it was computed over,
                # and the elapsed seconds of its window (the rest had no readings).
                "uptime": {k: u.ratio for k, u in v.history[c.component.id].uptime.items()},
                "uptime_observed_seconds": {
                    k: u.observed for k, u in v.history[c.component.id].uptime.items()
                },
                "uptime_window_seconds": {
                    k: u.window for k, u in v.history[c.component.id].uptime.items()
                },
                "days": [
                    {
                        "date": d.date.isoformat(),
                        "state": d.state.value,
                        "uptime": d.uptime,
                        "observed_seconds": d.observed_seconds,
                        "day_seconds": d.length_seconds,
                        "down_seconds": d.down_seconds,
                        "degraded_seconds": d.degraded_seconds,
                        # Declared maintenance: left out of observed_seconds and uptime.
                        "maintenance_seconds": d.maintenance_seconds,
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
