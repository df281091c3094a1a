"""Reports as plain data: what gets hashed, frozen, exported as JSON and rendered. Pure.

Every rendering (HTML, Markdown, JSON) is made from these documents, and a frozen report is
rendered from its stored document, never from live data: what people read is what was hashed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from watchtower.cutover.canonical import sha256
from watchtower.cutover.config import CutoverSettings
from watchtower.cutover.gate import Gate
from watchtower.cutover.judge import Chart, TimelineSlot, Verdict
from watchtower.cutover.model import PreflightReport, SignOff, iso

SCHEMA = "watchtower.cutover/1"
EVIDENCE_KEYS = ("window", "coverage", "criteria", "timeline", "thresholds")


def rollback_plan(cutover: CutoverSettings) -> dict[str, Any]:
    runbook = cutover.rollback_runbook
    return {
        "runbook": runbook,
        "url": f"/runbooks/{runbook}",
        "steps": [
            f"Run the {runbook} runbook: it sets ENABLE_DYNAMODB_DUAL_WRITE=true on the function "
            "(UpdateFunctionConfiguration) and waits until the update is in effect.",
            "Check that the dual_write check reads the flag on and sees dual-writes succeed "
            "(> 99.9%), and that rows reach the legacy table again.",
            "Images created while dual-write was off are not in the legacy table: reconcile them "
            "(the pre-flight report's counts) before anything reads PostgreSQL again.",
            "Record the rollback here: it closes this window as rolled back. Open a new window "
            "when dual-write is turned off again.",
        ],
    }


def thresholds(cutover: CutoverSettings) -> dict[str, Any]:
    return {
        "min_coverage": cutover.min_coverage,
        "min_success_ratio": cutover.min_success_ratio,
        "max_p95_ms": cutover.max_p95_ms,
        "max_p95_regression": cutover.max_p95_regression,
        "max_breach_seconds": cutover.max_breach_seconds,
        "min_write_ratio": cutover.min_write_ratio,
        "max_low_write_hours": cutover.max_low_write_hours,
        "max_lambda_error_ratio": cutover.max_lambda_error_ratio,
        "grace_seconds": cutover.grace_seconds,
        "metrics_lag_seconds": cutover.metrics_lag_seconds,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


def _chart(chart: Chart, start: datetime) -> dict[str, Any]:
    return {
        "unit": chart.unit,
        "threshold": chart.threshold,
        "lines": [
            {
                "label": line.label,
                "points": [[int((at - start).total_seconds()), _round(v)] for at, v in line.points],
            }
            for line in chart.lines
        ],
    }


def _segments(timeline: Sequence[TimelineSlot]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for slot in timeline:
        if out and out[-1]["state"] == slot.state and out[-1]["note"] == slot.note:
            out[-1]["end"] = iso(slot.end)
            out[-1]["slots"] += 1
        else:
            out.append(
                {
                    "start": iso(slot.start),
                    "end": iso(slot.end),
                    "state": slot.state,
                    "note": slot.note,
                    "slots": 1,
                }
            )
    return out


def signoff_json(s: SignOff) -> dict[str, Any]:
    return {
        "name": s.name,
        "role": s.role,
        "comment": s.comment,
        "at": iso(s.at),
        "user": s.user,
        "via": s.via,
        "evidence_hash": s.evidence_hash,
    }


REHEARSAL_NOTE = (
    "REHEARSAL: a rehearsal of the cutover sign-off on the sandbox, with a compressed window; "
    "it is not the cutover sign-off and signs nothing real"
)


def window_document(
    verdict: Verdict,
    *,
    cutover: CutoverSettings,
    preflight: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    w = verdict.window
    start = w.opened_at
    return {
        "schema": SCHEMA,
        "kind": "cutover-rehearsal" if cutover.rehearsal else "cutover-window",
        **({"rehearsal": REHEARSAL_NOTE} if cutover.rehearsal else {}),
        "judged_at": iso(verdict.now),
        "window": {
            "id": w.id,
            "opened_at": iso(w.opened_at),
            "ends_at": iso(w.ends_at),
            "opened_by": w.opened_by,
            "via": w.via,
            "confirmed_by": w.confirmed_by,
            "comment": w.comment,
            "duration_seconds": w.duration_seconds,
            "interval_seconds": w.interval_seconds,
            "closed_at": iso(w.closed_at),
            "close_reason": w.close_reason.value if w.close_reason else None,
            "closed_by": w.closed_by,
            "close_comment": w.close_comment,
        },
        "verdict": {
            "state": verdict.state.value,
            "headline": verdict.headline,
            "complete": verdict.complete,
            "can_sign": verdict.can_sign,
            "refusal": verdict.refusal,
        },
        "coverage": {
            "ratio": None if verdict.coverage.ratio is None else round(verdict.coverage.ratio, 6),
            "required": verdict.coverage.required,
            "covered_seconds": _round(verdict.coverage.covered_seconds),
            "due_seconds": _round(verdict.coverage.due_seconds),
            "window_seconds": _round(verdict.coverage.window_seconds),
            "gaps": [
                {"start": iso(g.start), "end": iso(g.end), "reason": g.reason}
                for g in verdict.coverage.gaps
            ],
            "backfilled": backfilled_json(verdict),
        },
        "criteria": [
            {
                "name": c.name,
                "title": c.title,
                "story": c.story,
                "status": c.status.value,
                "figure": c.figure,
                "threshold": c.threshold,
                "detail": c.detail,
                "failed_at": iso(c.failed_at),
                "events": [{"at": iso(e.at), "text": e.text} for e in c.events],
                "chart": _chart(c.chart, start),
            }
            for c in verdict.criteria
        ],
        "timeline": _segments(verdict.timeline),
        "baseline": w.baseline.as_json() if w.baseline else None,
        "thresholds": thresholds(cutover),
        "preflight": dict(preflight) if preflight else None,
        "signoffs": [signoff_json(s) for s in verdict.signoffs],
        "required_roles": list(verdict.required_roles),
        "missing_roles": list(verdict.missing_roles),
        "rollback": rollback_plan(cutover),
    }


def backfilled_json(verdict: Verdict) -> list[dict[str, Any]]:
    """The slots read back after a gap: when they were, when read back, and from what."""
    return [
        {"start": iso(b.start), "end": iso(b.end), "taken_at": b.taken_at, "sources": b.sources}
        for b in verdict.coverage.backfilled
    ]


def identity_json(rec: Any) -> dict[str, Any]:
    """Reconciliation by identity: the ids on one side only (the first 100) and their counts."""
    if not rec.by_identity:
        return {"by_identity": False}
    return {
        "by_identity": True,
        "missing_from_postgres": list(rec.missing_from_postgres),
        "missing_from_postgres_count": rec.missing_from_postgres_count,
        "missing_from_dynamodb": list(rec.missing_from_dynamodb),
        "missing_from_dynamodb_count": rec.missing_from_dynamodb_count,
    }


def evidence_hash(document: Mapping[str, Any]) -> str:
    """What a stakeholder signs: the evidence and its judgement, not the time it was judged."""
    return sha256({k: document.get(k) for k in EVIDENCE_KEYS})


def preflight_document(
    report: PreflightReport, gate: Gate, *, cutover: CutoverSettings, generated_at: datetime
) -> dict[str, Any]:
    rec = report.reconciliation
    document = {
        "schema": SCHEMA,
        "kind": "preflight",
        "generated_at": iso(generated_at),
        "start": iso(report.start),
        "end": iso(report.end),
        "days": report.days,
        "attempts": report.attempts,
        "successes": report.successes,
        "failures": report.failures,
        "failures_by_reason": dict(sorted(report.failures_by_reason.items())),
        "success_ratio": report.success_ratio,
        "min_success_ratio": cutover.min_success_ratio,
        "daily": [
            {
                "start": iso(d.start),
                "end": iso(d.end),
                "attempts": d.attempts,
                "successes": d.successes,
                "failures": d.failures,
                "success_ratio": d.success_ratio,
            }
            for d in report.daily
        ],
        "reconciliation": {
            "dynamodb_images": rec.dynamodb_images,
            "postgres_rows": rec.postgres_rows,
            "difference": rec.difference,
            "upload_requests": rec.upload_requests,
            "dynamodb_error": rec.dynamodb_error,
            "postgres_error": rec.postgres_error,
            "tolerance": cutover.reconciliation_tolerance,
            "legacy_table": rec.legacy_table,
            **identity_json(rec),
        },
        "metrics_error": report.metrics_error,
        "notes": list(report.notes),
        "gate": {
            "passed": gate.passed,
            "checks": [{"name": c.name, "passed": c.passed, "text": c.text} for c in gate.checks],
        },
    }
    return {**document, "sha256": sha256(document)}
