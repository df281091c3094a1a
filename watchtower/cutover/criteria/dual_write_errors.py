"""dual_write_errors: no errors from the missing dual-write (the cutover checklist).

No dual-write attempted and no legacy_write_failed error after the grace period; Lambda errors
at most `max_lambda_error_ratio` of invocations.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from watchtower import figures as fig
from watchtower.cutover.criteria.base import (
    Chart,
    ChartLine,
    Criterion,
    CriterionResult,
    Event,
    Evidence,
    hm,
    num,
    register,
)
from watchtower.cutover.model import Reading, Sample


@register
class DualWriteErrors(Criterion):
    name = "dual_write_errors"
    title = "No errors from the missing dual-write"
    story = "checklist"

    def judge(self, ev: Evidence) -> CriterionResult:
        s = ev.settings
        threshold = (
            "0 dual-writes attempted and 0 legacy_write_failed errors after the flip; Lambda "
            f"errors <= {fig.percent(s.max_lambda_error_ratio, 1)} of invocations"
        )
        grace_end = ev.window.opened_at + timedelta(seconds=s.grace_seconds)

        def slot_errors(sample: Sample, r: Reading) -> float:
            f = r.figures
            return (
                num(f.get("dual_write_attempts"))
                + num(f.get("legacy_errors"))
                + num(f.get("lambda_errors"))
            )

        chart = Chart(
            unit="errors per slot",
            lines=(ChartLine(label="errors", points=self.series(ev, slot_errors)),),
            threshold=0.0,
        )
        finding = self.finding(threshold, chart)
        readings = self.readings(ev)
        if not readings:
            return finding.no_evidence()
        attempts = legacy = lambda_errors = invocations = 0.0
        first: datetime | None = None
        breaches: dict[datetime, str] = {}
        events = []
        for slot, sample, r in readings:
            f = r.figures
            lambda_errors += num(f.get("lambda_errors"))
            invocations += num(f.get("lambda_invocations"))
            parts = []
            if num(f.get("lambda_errors")):
                parts.append(fig.count(f.get("lambda_errors"), "Lambda error"))
            if sample.metrics_start >= grace_end:
                a, le = num(f.get("dual_write_attempts")), num(f.get("legacy_errors"))
                attempts += a
                legacy += le
                if a:
                    parts.append(fig.count(a, "dual-write") + " attempted")
                if le:
                    parts.append(fig.count(le, "legacy_write_failed error"))
                if (a or le) and first is None:
                    first = sample.metrics_start
            if parts:
                breaches[slot.at] = ", ".join(parts)
                events.append(Event(at=sample.metrics_start, text=breaches[slot.at]))
        ratio = lambda_errors / invocations if invocations else None
        finding = finding.found(
            figure=(
                f"{attempts:,.0f} dual-writes, {legacy:,.0f} legacy errors, "
                f"{lambda_errors:,.0f} Lambda errors in {invocations:,.0f} invocations"
            ),
            events=events,
            breaches=breaches,
        )
        if first is not None:
            return finding.failed(
                f"{attempts:,.0f} dual-writes attempted and {legacy:,.0f} legacy_write_failed "
                f"errors after the flip, the first between {hm(first)} and "
                f"{hm(first + timedelta(seconds=ev.window.interval_seconds))}: a process "
                "still runs with dual-write on",
                at=first,
            )
        if lambda_errors and (ratio is None or ratio > s.max_lambda_error_ratio):
            return finding.not_met(
                ev,
                f"{lambda_errors:,.0f} Lambda errors ({fig.percent(ratio)} of "
                f"{invocations:,.0f} invocations), over "
                f"{fig.percent(s.max_lambda_error_ratio, 1)}",
            )
        return finding.ok("no dual-write attempted and no legacy write error after the flip")
