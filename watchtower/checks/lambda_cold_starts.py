"""`lambda_cold_starts`: cold starts, their share of invocations and the P95 Init Duration.

Read from the `REPORT` line Lambda writes after every invocation, in either log format:

* text: `REPORT RequestId: … Duration: 12.34 ms Billed Duration: 13 ms … Init Duration: 234.56 ms`
  (figures are floats; `Init Duration` appears only on a cold start);
* JSON: `{"type": "platform.report", "record": {"requestId": …, "metrics": {"durationMs": …,
  "initDurationMs": …}}}`.

The lines are parsed here, in Python: Logs Insights' `@initDuration` would do it in AWS, but not
against the moto server, and parsing works the same against both. The P95 is nearest-rank.

Only the lines of the version(s) that serve traffic count: Lambda names each log stream by the
version that wrote it (`YYYY/MM/DD/[VERSION]…`, `[$LATEST]` unqualified), so with an alias
(WATCHTOWER_LAMBDA_ALIAS) the streams of the version it points to (and of its weighted second
version, each judged apart in the reason) are read, and a version being tested, or the one
rolled away from, does not count. Lines in streams not named so cannot be attributed: left out,
and counted in the reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from watchtower.checks.base import Check, CheckContext, ratio, register
from watchtower.model import Result, Status

UNQUALIFIED = "$LATEST"

# Filter terms are case-sensitive in CloudWatch Logs: "REPORT" alone misses the JSON format's
# "platform.report". Lines the filter lets through that are not reports are skipped by the parser.
FILTER_PATTERN = '?REPORT ?"platform.report"'
MAX_LINES = 10_000  # one window's reading; beyond it the figures describe the first lines only

_STREAM_VERSION = re.compile(r"^\d{4}/\d{2}/\d{2}/\[(?P<version>[^\]]+)\]")
_TEXT_REPORT = re.compile(r"^\s*REPORT RequestId: (?P<id>\S+)")
# Longest names first, so "Duration" never matches inside "Billed Duration" or "Init Duration".
_TEXT_FIELD = re.compile(
    r"(Billed Restore Duration|Restore Duration|Billed Duration|Init Duration|Duration"
    r"|Max Memory Used|Memory Size): (\d+(?:\.\d+)?)"
)


@dataclass(frozen=True, kw_only=True)
class Report:
    request_id: str | None
    duration_ms: float | None
    init_duration_ms: float | None  # present only on a cold start

    @property
    def cold(self) -> bool:
        return self.init_duration_ms is not None


def stream_version(stream: str) -> str | None:
    """The version a Lambda log stream belongs to (`$LATEST`, `7`), None when not so named."""
    match = _STREAM_VERSION.match(stream)
    return match["version"] if match else None


def by_version(
    events: Iterable[tuple[str, str]], versions: Iterable[str]
) -> tuple[dict[str, list[str]], int]:
    """The REPORT lines of each wanted version, and how many REPORT lines were left out (other
    versions' streams, or streams not named by version)."""
    wanted: dict[str, list[str]] = {v: [] for v in versions}
    left_out = 0
    for stream, message in events:
        version = stream_version(stream)
        if version in wanted:
            wanted[version].append(message)
        elif parse_report(message) is not None:
            left_out += 1
    return wanted, left_out


def parse_report(message: str) -> Report | None:
    """One REPORT line in either format, or None when the line is not a report."""
    text = message.strip()
    if text.startswith("{"):
        return _parse_json(text)
    match = _TEXT_REPORT.match(text)
    if match is None:
        return None
    fields = {name: float(value) for name, value in _TEXT_FIELD.findall(text)}
    return Report(
        request_id=match["id"],
        duration_ms=fields.get("Duration"),
        init_duration_ms=fields.get("Init Duration"),
    )


def _parse_json(text: str) -> Report | None:
    try:
        event = json.loads(text)
    except ValueError:
        return None
    if not isinstance(event, dict) or event.get("type") != "platform.report":
        return None
    record = _object(event.get("record"))
    metrics = _object(record.get("metrics"))
    request_id = record.get("requestId")
    return Report(
        request_id=request_id if isinstance(request_id, str) else None,
        duration_ms=_number(metrics.get("durationMs")),
        init_duration_ms=_number(metrics.get("initDurationMs")),
    )


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def nearest_rank(values: Iterable[float], percentile: int) -> float | None:
    """The smallest value with at least `percentile`% of values at or below it."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = (percentile * len(ordered) + 99) // 100  # ceil, in integers: no float rounding
    return ordered[max(rank, 1) - 1]


def summarise(messages: Iterable[str]) -> dict[str, float | None]:
    """The figures of a window's REPORT lines; a request reported twice counts once."""
    reports: list[Report] = []
    seen: set[str] = set()
    for message in messages:
        report = parse_report(message)
        if report is None:
            continue
        if report.request_id is not None:
            if report.request_id in seen:
                continue
            seen.add(report.request_id)
        reports.append(report)
    inits = [r.init_duration_ms for r in reports if r.init_duration_ms is not None]
    return {
        "invocations": float(len(reports)),
        "cold_starts": float(len(inits)),
        "cold_start_ratio": ratio(len(inits), len(reports)),
        "init_p95_ms": nearest_rank(inits, 95),
    }


@register
class LambdaColdStarts(Check):
    name = "lambda_cold_starts"
    title = "Lambda cold starts"
    component = "lambda"
    reads = ("logs:REPORT", "lambda:configuration")  # the alias: which versions it serves
    defaults = {
        "window_seconds": 300,
        "warning_cold_start_ratio": 0.05,
        "critical_cold_start_ratio": 0.25,
        "warning_init_p95_ms": 1000,
        "critical_init_p95_ms": 3000,
        # Fewer invocations than this: the share is not judged (a quiet function starts cold).
        "min_invocations": 20,
    }

    def evaluate(self, ctx: CheckContext) -> Result:
        if ctx.sources.logs is None:
            return self.result(ctx, Status.UNKNOWN, "no CloudWatch Logs source is configured")
        alias = ctx.settings.lambda_alias
        weights = {UNQUALIFIED: 1.0}
        if alias:
            if ctx.sources.functions is None:
                return self.result(
                    ctx, Status.UNKNOWN, f"no Lambda source to read what alias {alias} serves"
                )
            served = ctx.sources.functions.served(ctx.settings.lambda_function, alias)
            weights = {v.version: v.weight for v in served}
        events = ctx.sources.logs.events(
            ctx.settings.log_group,
            pattern=FILTER_PATTERN,
            start=ctx.now - ctx.window,
            end=ctx.now,
            limit=MAX_LINES,
        )
        lines, left_out = by_version(events, weights)
        figures = summarise(m for messages in lines.values() for m in messages)
        status, reason = judge(figures, ctx.params)
        if alias:
            reason += f"; alias {alias}: " + ", ".join(
                _version_said(version, weight, summarise(lines[version]))
                for version, weight in weights.items()
            )
        if left_out:
            reason += (
                f"; {left_out} REPORT line{'' if left_out == 1 else 's'} of other versions left out"
            )
        if len(events) >= MAX_LINES:
            reason += f" (from the first {MAX_LINES} log lines of the window only)"
        return self.result(ctx, status, reason, figures)


def _version_said(version: str, weight: float, figures: Mapping[str, float | None]) -> str:
    cold, invocations = figures["cold_starts"] or 0, figures["invocations"] or 0
    said = (
        f"version {version} ({weight:.0%}) {cold:.0f} cold start{'' if cold == 1 else 's'} in "
        f"{invocations:.0f} invocation{'' if invocations == 1 else 's'}"
    )
    if figures["init_p95_ms"] is not None:
        said += f", init P95 {figures['init_p95_ms']:.0f} ms"
    return said


def judge(figures: Mapping[str, float | None], params: Mapping[str, float]) -> tuple[Status, str]:
    """No REPORT lines means no invocation was seen: idle, or logging elsewhere. Never ok."""
    invocations = figures["invocations"] or 0
    cold = figures["cold_starts"] or 0
    share = figures["cold_start_ratio"]
    p95 = figures["init_p95_ms"]
    minutes = params["window_seconds"] / 60
    if invocations == 0:
        return Status.UNKNOWN, (
            f"no invocations seen: no REPORT lines in the function's log group in {minutes:.0f} min"
        )
    findings: list[tuple[Status, str]] = []
    if share is not None and invocations >= params["min_invocations"]:
        if share >= params["critical_cold_start_ratio"]:
            findings.append(
                (
                    Status.CRITICAL,
                    f"cold-start share critical at {params['critical_cold_start_ratio']:.0%}",
                )
            )
        elif share >= params["warning_cold_start_ratio"]:
            findings.append(
                (
                    Status.WARNING,
                    f"cold-start share warning at {params['warning_cold_start_ratio']:.0%}",
                )
            )
    if p95 is not None:
        if p95 >= params["critical_init_p95_ms"]:
            findings.append(
                (Status.CRITICAL, f"init P95 critical at {params['critical_init_p95_ms']:.0f} ms")
            )
        elif p95 >= params["warning_init_p95_ms"]:
            findings.append(
                (Status.WARNING, f"init P95 warning at {params['warning_init_p95_ms']:.0f} ms")
            )
    said = (
        f"{cold:.0f} cold start{'' if cold == 1 else 's'} in {invocations:.0f} invocations "
        f"({(share or 0):.1%}) in {minutes:.0f} min"
    )
    if p95 is not None:
        said += f", init P95 {p95:.0f} ms"
    if invocations < params["min_invocations"]:
        said += (
            f"; too few invocations to judge the share (at least {params['min_invocations']:.0f})"
        )
    if not findings:
        return Status.OK, said
    status = Status.worst([s for s, _ in findings])
    return status, f"{said} ({'; '.join(text for _, text in findings)})"
