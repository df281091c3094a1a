"""dynamodb_writes: writes continue (AC 5).

Each hour of the window has at least `min_write_ratio` of the same hour's average over the
baseline days (at most `max_low_write_hours` hours below), and never uploads without writes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from watchtower.cutover.criteria.base import (
    Chart,
    ChartLine,
    Criterion,
    CriterionResult,
    Event,
    Evidence,
    Slot,
    hm,
    num,
    register,
)
from watchtower.cutover.model import Reading, Sample


def expected_writes(ev: Evidence, sample: Sample) -> float | None:
    """The baseline's write units for the sample's interval, from its hour of the day."""
    baseline = ev.window.baseline
    if baseline is None or baseline.error is not None or len(baseline.writes_by_hour) != 24:
        return None
    hours = (sample.metrics_end - sample.metrics_start).total_seconds() / 3600
    middle = sample.metrics_start + (sample.metrics_end - sample.metrics_start) / 2
    return baseline.writes_by_hour[middle.astimezone(UTC).hour] * hours


@register
class DynamoDbWrites(Criterion):
    name = "dynamodb_writes"
    title = "Image Service writes continue"
    story = "AC 5"

    def judge(self, ev: Evidence) -> CriterionResult:
        s = ev.settings
        days = ev.window.baseline.days if ev.window.baseline else s.baseline_days
        threshold = (
            f"each hour >= {s.min_write_ratio:.0%} of the same hour's {days}-day average "
            f"(at most {s.max_low_write_hours} hours below); never uploads without writes"
        )
        chart = Chart(
            unit="write units per slot",
            lines=(
                ChartLine(
                    label="writes",
                    points=self.series(ev, lambda smp, r: num(r.figures.get("write_units"))),
                ),
                ChartLine(
                    label="usual",
                    points=self.series(ev, lambda smp, r: expected_writes(ev, smp)),
                ),
            ),
        )
        finding = self.finding(threshold, chart)
        readings = self.readings(ev)
        if not readings:
            return finding.no_evidence()
        baseline_ok = expected_writes(ev, readings[0][1]) is not None
        hours: dict[int, list[tuple[Slot, Sample, Reading]]] = {}
        for item in readings:
            # The hour of the window the slot ends in; a slot ending on the hour belongs to it.
            index = int(((item[0].end - ev.window.opened_at).total_seconds() - 1e-6) // 3600)
            hours.setdefault(max(index, 0), []).append(item)
        stopped: list[tuple[int, float]] = []
        low: list[tuple[int, float, float]] = []
        breaches: dict[datetime, str] = {}
        events: list[Event] = []
        actual_total = expected_total = 0.0
        for index, items in sorted(hours.items()):
            hour_start = ev.window.opened_at + timedelta(hours=index)
            hour_end = min(hour_start + timedelta(hours=1), ev.window.ends_at)
            actual = sum(num(r.figures.get("write_units")) for _, _, r in items)
            uploads = sum(num(r.figures.get("uploads")) for _, _, r in items)
            expected = sum(expected_writes(ev, smp) or 0.0 for _, smp, _ in items)
            actual_total += actual
            expected_total += expected
            finished = ev.now >= hour_end
            label = f"hour {index + 1} ({hm(hour_start)[11:16]}-{hm(hour_end)[11:16]} UTC)"
            if uploads > 0 and actual == 0:
                stopped.append((index, uploads))
                events.append(
                    Event(at=hour_start, text=f"{label}: {uploads:.0f} uploads, no writes")
                )
                for slot, _, _ in items:
                    breaches[slot.at] = "uploads without DynamoDB writes"
            elif (
                finished
                and baseline_ok
                and expected >= s.min_baseline_write_units
                and actual < s.min_write_ratio * expected
            ):
                low.append((index, actual, expected))
                events.append(
                    Event(
                        at=hour_start,
                        text=f"{label}: {actual:.0f} write units, {actual / expected:.0%} of the "
                        f"usual {expected:.0f}",
                    )
                )
                for slot, _, _ in items:
                    breaches.setdefault(slot.at, f"writes {actual / expected:.0%} of the usual")
        share = actual_total / expected_total if expected_total else None
        finding = finding.found(
            figure=f"{actual_total:,.0f} write units"
            + (f", {share:.0%} of the usual {expected_total:,.0f}" if share is not None else ""),
            events=events,
            breaches=breaches,
        )
        if stopped:
            index, uploads = stopped[0]
            at = ev.window.opened_at + timedelta(hours=index)
            return finding.failed(
                f"{uploads:.0f} uploads succeeded but DynamoDB consumed no write capacity in "
                f"hour {index + 1} of the window (from {hm(at)})",
                at=at,
            )
        if len(low) > s.max_low_write_hours:
            index = low[s.max_low_write_hours][0]
            return finding.failed(
                f"{len(low)} hours had under {s.min_write_ratio:.0%} of their usual writes "
                f"(at most {s.max_low_write_hours} allowed)",
                at=ev.window.opened_at + timedelta(hours=index + 1),
            )
        if not baseline_ok:
            why = ev.window.baseline.error if ev.window.baseline else "not fetched yet"
            return finding.unknown(
                f"no baseline to compare the rate with ({why}); it is fetched again each sample"
            )
        if not low:
            return finding.ok("writes continue at the usual rate")
        return finding.ok(
            f"writes continue; {len(low)} quiet hour{'' if len(low) == 1 else 's'} "
            f"(at most {s.max_low_write_hours} allowed)"
        )
