"""upload_latency: upload latency stable (AC 7).

P95 <= `max_p95_ms` over the window, its estimate at most `max_p95_regression` above the
baseline's, and no breach of the objective lasting longer than `max_breach_seconds`. Latency is
read from counts of uploads over fixed thresholds (see `watchtower.figures`).
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
    Slot,
    hm,
    num,
    register,
)
from watchtower.cutover.model import Reading, Sample


def latency(r: Reading) -> tuple[float, dict[int, float]]:
    """(uploads timed, uploads over each threshold in ms) of one slot."""
    over = {int(k): num(v) for k, v in (r.figures.get("over") or {}).items()}
    return num(r.figures.get("samples")), over


@register
class UploadLatency(Criterion):
    name = "upload_latency"
    title = "Upload latency stable"
    story = "AC 7"

    def judge(self, ev: Evidence) -> CriterionResult:
        s = ev.settings
        objective = int(s.max_p95_ms)
        baseline = ev.window.baseline.latency if ev.window.baseline else None
        base = fig.p95_estimate(baseline.samples, baseline.over) if baseline else None
        threshold = (
            f"P95 <= {objective} ms, at most {s.max_p95_regression:.0%} above the baseline's, no "
            f"breach longer than {fig.duration(s.max_breach_seconds)}"
        )

        def slot_p95(sample: Sample, r: Reading) -> float | None:
            n, over = latency(r)
            if n < s.min_slot_latency_samples:
                return None
            estimate = fig.p95_estimate(n, over)
            return estimate if estimate is not None else float(max(over, default=objective))

        lines = [ChartLine(label="P95 (estimate)", points=self.series(ev, slot_p95))]
        if base is not None:
            lines.append(
                ChartLine(label="baseline", points=tuple((sl.at, base) for sl in ev.slots))
            )
        chart = Chart(unit="ms", lines=tuple(lines), threshold=float(objective))
        finding = self.finding(threshold, chart)
        readings = self.readings(ev)
        if not readings:
            return finding.no_evidence()
        published = {t for _, _, r in readings for t in latency(r)[1]}
        if objective not in published:
            # Counts over other thresholds say nothing about this one: never "0% over 900 ms".
            known = ", ".join(str(t) for t in sorted(published)) or "no threshold"
            return finding.unknown(
                f"P95 <= {objective} ms cannot be judged: the evidence counts uploads over "
                f"{known} ms only"
            )
        total = 0.0
        over_total: dict[int, float] = {}
        breaches: dict[datetime, str] = {}
        runs: list[list[Slot]] = []
        current: list[Slot] = []
        for slot, _, r in readings:
            n, over = latency(r)
            total += n
            for k, v in over.items():
                over_total[k] = over_total.get(k, 0.0) + v
            if n < s.min_slot_latency_samples:
                continue  # too few to say whether this slot breached: neither breach nor recovery
            share = fig.share_over(n, over, objective) or 0.0
            if share > fig.P95_SHARE:
                breaches[slot.at] = f"{share:.0%} of uploads over {objective} ms"
                current.append(slot)
            elif current:
                runs.append(current)
                current = []
        ongoing = current
        events = []
        sustained: tuple[datetime, float] | None = None
        for run in runs:
            seconds = (run[-1].end - run[0].start).total_seconds()
            events.append(
                Event(
                    at=run[0].start,
                    text=f"P95 over {objective} ms from {hm(run[0].start)[11:16]} to "
                    f"{hm(run[-1].end)[11:16]} ({fig.duration(seconds)}), recovered",
                )
            )
            if seconds > s.max_breach_seconds and sustained is None:
                sustained = (run[0].start, seconds)
        if ongoing:
            seconds = (ongoing[-1].end - ongoing[0].start).total_seconds()
            events.append(
                Event(
                    at=ongoing[0].start,
                    text=f"P95 over {objective} ms since {hm(ongoing[0].start)[11:16]} "
                    f"({fig.duration(seconds)}), not recovered",
                )
            )
            if seconds > s.max_breach_seconds and sustained is None:
                sustained = (ongoing[0].start, seconds)
        window_share = fig.share_over(total, over_total, objective)
        estimate = fig.p95_estimate(total, over_total)
        bound = fig.p95_bound(total, over_total)
        shown = (
            f"P95 ~{fig.ms(estimate)}"
            if estimate is not None
            else f"P95 over {max(over_total, default=objective)} ms"
        )
        finding = finding.found(
            figure=(
                f"{shown} over {total:,.0f} uploads; baseline ~{fig.ms(base)}; "
                f"{fig.percent(window_share)} over {objective} ms"
            ),
            events=events,
            breaches=breaches,
        )
        if sustained is not None:
            start, seconds = sustained
            return finding.failed(
                f"upload P95 stayed over {objective} ms for {fig.duration(seconds)} from "
                f"{hm(start)} (at most {fig.duration(s.max_breach_seconds)} allowed)",
                at=start + timedelta(seconds=s.max_breach_seconds),
            )
        if total < s.min_window_latency_samples:
            return finding.unknown(
                f"only {total:,.0f} uploads timed so far; at least "
                f"{s.min_window_latency_samples} are needed to judge the P95"
            )
        problems = []
        if window_share is not None and window_share > fig.P95_SHARE:
            problems.append(
                f"{fig.percent(window_share)} of uploads took over {objective} ms "
                f"(P95 over {objective} ms)"
            )
        if base is not None:
            limit = base * (1 + s.max_p95_regression)
            if estimate is None or estimate > limit:
                problems.append(
                    f"{shown} is more than {s.max_p95_regression:.0%} above the "
                    f"baseline's ~{fig.ms(base)}"
                )
        if ongoing:
            problems.append(events[-1].text)
            return finding.failing("; ".join(problems))
        if problems:
            return finding.not_met(ev, "; ".join(problems))
        detail = f"P95 at most {fig.ms(bound)} over the window"
        if base is None:
            detail += "; no baseline latency to compare with (too few uploads before the flip)"
        spikes = len(runs)
        if spikes:
            detail += f"; {spikes} short spike{'' if spikes == 1 else 's'}, recovered"
        return finding.ok(detail)
