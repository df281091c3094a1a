"""user_operations: users' get, list and delete unaffected, judged beside uploads (AC 8).

For each operation over the window: server errors at most `max_operation_error_ratio` of its
requests, and P95 at or under `max_operation_p95_ms` (at most 5% of requests over it), read from
the image core's Requests and LatencyOver<N>ms metrics. An operation with fewer than
`min_operation_latency_samples` requests has its P95 shown, not judged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
from watchtower.cutover.model import OPERATIONS, Reading, Sample


def _op(r: Reading, op: str) -> tuple[float, float, float, dict[int, float]]:
    f = r.figures.get(op) or {}
    over = {int(k): num(v) for k, v in (f.get("over") or {}).items()}
    return num(f.get("requests")), num(f.get("server_errors")), num(f.get("samples")), over


@dataclass
class _Totals:
    requests: float = 0.0
    server_errors: float = 0.0
    samples: float = 0.0
    over: dict[int, float] = field(default_factory=dict)


@register
class UserOperations(Criterion):
    name = "user_operations"
    title = "User operations unaffected"
    story = "AC 8"

    def judge(self, ev: Evidence) -> CriterionResult:
        s = ev.settings
        objective = int(s.max_operation_p95_ms)
        threshold = (
            f"get, list and delete: server errors <= {fig.percent(s.max_operation_error_ratio, 1)}"
            f" of requests, P95 <= {objective} ms each"
        )

        def errors(sample: Sample, r: Reading) -> float:
            return sum(_op(r, op)[1] for op in OPERATIONS)

        chart = Chart(
            unit="server errors per slot",
            lines=(ChartLine(label="get, list, delete errors", points=self.series(ev, errors)),),
            threshold=0.0,
        )
        finding = self.finding(threshold, chart)
        readings = self.readings(ev)
        if not readings:
            return finding.no_evidence()
        totals = {op: _Totals() for op in OPERATIONS}
        breaches: dict[datetime, str] = {}
        events = []
        for slot, _, r in readings:
            parts = []
            for op in OPERATIONS:
                requests, server_errors, samples, over = _op(r, op)
                t = totals[op]
                t.requests += requests
                t.server_errors += server_errors
                t.samples += samples
                for k, v in over.items():
                    t.over[k] = t.over.get(k, 0.0) + v
                if server_errors:
                    parts.append(f"{fig.count(server_errors, op + ' server error')}")
            if parts:
                breaches[slot.at] = ", ".join(parts)
                events.append(Event(at=slot.start, text=breaches[slot.at]))
        shown, problems, unjudged = [], [], []
        for op in OPERATIONS:
            t = totals[op]
            requests, server_errors, samples, over = t.requests, t.server_errors, t.samples, t.over
            ratio = server_errors / requests if requests else None
            share = fig.share_over(samples, over, objective) if objective in over else None
            shown.append(
                f"{op} {fig.percent(None if ratio is None else 1 - ratio)} ok of "
                f"{requests:,.0f}, {fig.percent(share)} over {objective} ms"
            )
            if ratio is not None and ratio > s.max_operation_error_ratio:
                problems.append(
                    f"{fig.percent(ratio)} of {requests:,.0f} {op} requests failed with a server "
                    f"error (at most {fig.percent(s.max_operation_error_ratio, 1)})"
                )
            if samples and objective not in over:
                unjudged.append(f"{op}: P95 <= {objective} ms cannot be judged from this evidence")
            elif samples >= s.min_operation_latency_samples and (share or 0) > fig.P95_SHARE:
                problems.append(
                    f"{fig.percent(share)} of {op} requests took over {objective} ms "
                    f"(P95 over {objective} ms)"
                )
        finding = finding.found(figure="; ".join(shown), events=events, breaches=breaches)
        if problems:
            return finding.not_met(ev, "; ".join(problems))
        if unjudged:
            return finding.unknown("; ".join(unjudged))
        return finding.ok(
            "get, list and delete within their error and latency thresholds: " + "; ".join(shown)
        )
