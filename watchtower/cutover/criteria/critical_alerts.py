"""critical_alerts: no critical alert still firing at the latest sample (checklist, AC 6).

The latest sample counts even after the window's end: an alert resolved later clears it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from watchtower.cutover.criteria.base import (
    Chart,
    ChartLine,
    Criterion,
    CriterionResult,
    Event,
    Evidence,
    hm,
    register,
)
from watchtower.cutover.model import parse_iso


@register
class CriticalAlerts(Criterion):
    name = "critical_alerts"
    title = "No unresolved critical alert"
    story = "AC 6"

    def judge(self, ev: Evidence) -> CriterionResult:
        chart = Chart(
            unit="critical alerts firing",
            lines=(
                ChartLine(
                    label="firing",
                    points=self.series(ev, lambda s, r: float(len(r.figures.get("firing") or ()))),
                ),
            ),
            threshold=0.0,
        )
        finding = self.finding("no critical alert still firing", chart)
        readings = self.readings(ev)
        latest = ev.latest
        latest_reading = latest.reading(self.name) if latest else None
        if not readings and not (latest_reading and latest_reading.readable):
            return finding.no_evidence()
        seen: dict[str, dict[str, Any]] = {}
        breaches: dict[datetime, str] = {}
        for slot, sample, r in readings:
            firing = r.figures.get("firing") or []
            if firing:
                breaches[slot.at] = ", ".join(sorted({a["name"] for a in firing})) + " firing"
            for alert in firing:
                entry = seen.setdefault(
                    alert["fingerprint"],
                    {"name": alert["name"], "since": alert.get("since"), "first": sample.at},
                )
                entry["last"] = sample.at
        unresolved = (
            list(latest_reading.figures.get("firing") or [])
            if latest_reading and latest_reading.readable
            else []
        )
        open_prints = {a["fingerprint"] for a in unresolved}
        events = []
        for fingerprint, entry in seen.items():
            since = parse_iso(entry["since"]) if entry.get("since") else entry["first"]
            state = (
                "still firing"
                if fingerprint in open_prints
                else f"resolved by {hm(entry['last'])[11:16]}"
            )
            events.append(Event(at=since, text=f"{entry['name']} fired ({state})"))
        finding = finding.found(events=events, breaches=breaches)
        if unresolved:
            names = ", ".join(
                f"{a['name']} (since {hm(parse_iso(a['since'])) if a.get('since') else 'unknown'})"
                for a in unresolved
            )
            return finding.found(figure=f"{len(unresolved)} firing").failing(f"unresolved: {names}")
        resolved = len(seen)
        return finding.found(
            figure="0 firing" + (f" ({resolved} fired and resolved)" if resolved else "")
        ).ok("no critical alert firing at the latest sample")
