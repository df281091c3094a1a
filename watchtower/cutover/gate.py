"""The pre-flight gate: may dual-write be turned off? Pure.

The gate passes when, over the report's days, dual-writes were attempted, more than
`min_success_ratio` of them succeeded (Story 6.1 AC 2: "> 99.9%"), and the two stores agree on
the images created (within `reconciliation_tolerance` of DynamoDB's count). Anything that cannot
be confirmed fails it: an unreadable source is not a pass. A failed gate can still be overridden
by a named person with a reason, which is recorded in the audit log.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from watchtower import figures as fig
from watchtower.checks.dual_write import success_meets
from watchtower.cutover.model import PreflightReport, Reconciliation


@dataclass(frozen=True, kw_only=True)
class GateCheck:
    name: str
    passed: bool
    text: str


@dataclass(frozen=True, kw_only=True)
class Gate:
    passed: bool
    checks: tuple[GateCheck, ...]

    @property
    def failures(self) -> list[str]:
        return [c.text for c in self.checks if not c.passed]


@dataclass(frozen=True, kw_only=True)
class Override:
    by: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class Decision:
    proceed: bool
    overridden: bool
    text: str


MIN_REASON = 10  # characters: "because" is not a reason


def decide_gate(report: PreflightReport, *, min_success_ratio: float, tolerance: float) -> Gate:
    checks = []
    if report.metrics_error:
        checks.append(
            GateCheck(
                name="metrics",
                passed=False,
                text=f"dual-write metrics could not be read: {report.metrics_error}",
            )
        )
    else:
        attempts = report.attempts
        if attempts <= 0:
            checks.append(
                GateCheck(
                    name="success_ratio",
                    passed=False,
                    text=f"no dual-write was attempted in {report.days} days: the success rate "
                    "cannot be confirmed (is dual-write already off, or the metrics missing?)",
                )
            )
        else:
            ratio = report.success_ratio or 0.0
            ok = success_meets(ratio, min_success_ratio)
            checks.append(
                GateCheck(
                    name="success_ratio",
                    passed=ok,
                    text=f"dual-write success {fig.percent(ratio)} of {attempts:,.0f} attempts "
                    f"({report.failures:,.0f} failed) in {report.days} days: "
                    + ("above" if ok else "not above")
                    + f" {fig.percent(min_success_ratio, 1)}",
                )
            )
    rec = report.reconciliation
    if rec.difference is None:
        why = "; ".join(e for e in (rec.dynamodb_error, rec.postgres_error) if e)
        checks.append(
            GateCheck(
                name="reconciliation",
                passed=False,
                text=f"the two stores could not be reconciled: {why}",
            )
        )
    elif rec.by_identity:
        checks.append(_identity_check(rec, tolerance))
    else:
        allowed = math.floor(tolerance * (rec.dynamodb_images or 0))
        ok = abs(rec.difference) <= allowed
        said = (
            f"DynamoDB has {rec.dynamodb_images:,} images created in the window, "
            f"{rec.legacy_table} {rec.postgres_rows:,} rows: "
        )
        if rec.difference == 0:
            said += "they agree"
        else:
            side = "missing from PostgreSQL" if rec.difference > 0 else "more in PostgreSQL"
            said += f"{abs(rec.difference):,} {side}"
            said += (
                f" (within the {allowed:,} allowed)" if ok else f" (at most {allowed:,} allowed)"
            )
        checks.append(GateCheck(name="reconciliation", passed=ok, text=said))
    return Gate(passed=all(c.passed for c in checks), checks=tuple(checks))


def _identity_check(rec: Reconciliation, tolerance: float) -> GateCheck:
    """By identity: every id on one side only is a difference, and the first are named."""
    allowed = math.floor(tolerance * (rec.dynamodb_images or 0))
    differing = rec.differing or 0
    ok = differing <= allowed
    said = (
        f"DynamoDB has {rec.dynamodb_images:,} images created in the window, {rec.legacy_table} "
        f"{rec.postgres_rows:,} rows: "
    )
    if differing == 0:
        return GateCheck(name="reconciliation", passed=True, text=said + "they agree, id for id")
    parts: list[str] = []
    named: list[str] = []
    for count, ids, side in (
        (rec.missing_from_postgres_count, rec.missing_from_postgres, "missing from PostgreSQL"),
        (rec.missing_from_dynamodb_count, rec.missing_from_dynamodb, "only in PostgreSQL"),
    ):
        if count:
            parts.append(f"{count:,} {side}")
            named += ids[:3]
    said += "; ".join(parts)
    said += f" (within the {allowed:,} allowed)" if ok else f" (at most {allowed:,} allowed)"
    said += f": {', '.join(named)}" + (", …" if differing > len(named) else "")
    return GateCheck(name="reconciliation", passed=ok, text=said)


def decide(gate: Gate, override: Override | None) -> Decision:
    """Proceed when the gate passed, or when it failed and a named person overrides it."""
    if gate.passed:
        return Decision(proceed=True, overridden=False, text="the pre-flight gate passed")
    failures = "; ".join(gate.failures)
    if override is None:
        return Decision(
            proceed=False,
            overridden=False,
            text=f"the pre-flight gate failed ({failures}); refusing to turn dual-write off "
            "unless someone overrides it, with their name and a reason",
        )
    by, reason = override.by.strip(), override.reason.strip()
    if not by or len(reason) < MIN_REASON:
        return Decision(
            proceed=False,
            overridden=False,
            text=f"an override needs who (got {by!r}) and why (at least {MIN_REASON} "
            f"characters, got {len(reason)})",
        )
    return Decision(
        proceed=True,
        overridden=True,
        text=f"the pre-flight gate failed ({failures}), overridden by {by}: {reason}",
    )
