"""upload_success: more than `min_success_ratio` of user uploads and probe runs succeed (AC 8)."""

from __future__ import annotations

from datetime import datetime

from watchtower import figures as fig
from watchtower.cutover.criteria.base import (
    Chart,
    ChartLine,
    Criterion,
    CriterionResult,
    Event,
    Evidence,
    num,
    register,
)
from watchtower.cutover.model import Reading, Sample


def upload_counts(r: Reading) -> tuple[float, float]:
    """(attempts, failures) of one slot: user uploads (server errors fail) and probe runs."""
    f = r.figures
    uploads = num(f.get("uploads"))
    failures = num(f.get("server_errors"))
    return uploads + num(f.get("probe_runs")), failures + num(f.get("probe_failures"))


@register
class UploadSuccess(Criterion):
    name = "upload_success"
    title = "Upload success rate"
    story = "AC 8"

    def judge(self, ev: Evidence) -> CriterionResult:
        s = ev.settings
        threshold = f"> {fig.percent(s.min_success_ratio, 1)} of user uploads and probe runs"

        def slot_ratio(sample: Sample, r: Reading) -> float | None:
            total, failed = upload_counts(r)
            return (1 - failed / total) * 100 if total else None

        chart = Chart(
            unit="% succeeded",
            lines=(ChartLine(label="success", points=self.series(ev, slot_ratio)),),
            threshold=s.min_success_ratio * 100,
        )
        finding = self.finding(threshold, chart)
        readings = self.readings(ev)
        if not readings:
            return finding.no_evidence()
        total = failed = 0.0
        breaches: dict[datetime, str] = {}
        events = []
        for slot, _, r in readings:
            t, f = upload_counts(r)
            total += t
            failed += f
            if f:
                parts = []
                if num(r.figures.get("server_errors")):
                    parts.append(fig.count(r.figures.get("server_errors"), "server error"))
                if num(r.figures.get("probe_failures")):
                    parts.append(fig.count(r.figures.get("probe_failures"), "failed probe run"))
                breaches[slot.at] = ", ".join(parts)
                events.append(Event(at=slot.start, text=breaches[slot.at]))
        if not total:
            return finding.found(figure="no uploads yet").unknown(
                "no user upload and no probe run recorded in the window yet"
            )
        ratio = 1 - failed / total
        finding = finding.found(
            figure=f"{fig.percent(ratio)} of {total:,.0f} ({failed:,.0f} failed)",
            events=events,
            breaches=breaches,
        )
        if ratio > s.min_success_ratio:
            return finding.ok(
                f"{fig.percent(ratio)} of {total:,.0f} uploads and probe runs succeeded"
            )
        return finding.not_met(
            ev,
            f"{fig.percent(ratio)} succeeded ({failed:,.0f} of {total:,.0f} failed), not above "
            f"{fig.percent(s.min_success_ratio, 1)}",
        )
