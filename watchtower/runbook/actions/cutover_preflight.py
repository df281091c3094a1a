"""`cutover.preflight`: the dual-write monitoring report of Story 6.1, and its > 99.9% gate.

Shown before the approval that turns dual-write off: its outputs are the report's figures (the
approver reads them as the step's evidence) and a link to the whole report. When the gate fails
the step fails, so the run stops before the flip, unless `override_by` and `override_reason` are
given: then it passes, and the override is written in the cutover audit log (and this run's).
Read-only towards AWS and PostgreSQL; it writes Watchtower's own audit log, so it counts as
mutating: a dry run plans it instead of running it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from watchtower.cutover.gate import Override
from watchtower.runbook.actions.base import Action, ActionContext, register
from watchtower.runbook.errors import ActionError, ParamError
from watchtower.runbook.model import ApiCall, Param

PERSON = r"[^\x00-\x1f]{1,200}"
REASON = r"[^\x00-\x1f]{0,2000}"


@register
class CutoverPreflight(Action):
    name = "cutover.preflight"
    title = "Dual-write monitoring report and gate"
    # It reads AWS and PostgreSQL only, but it writes the decision (and any override) into the
    # cutover audit log: a dry run must not, so a dry run shows the calls it would make instead.
    mutating = True
    gated = False
    inputs = (
        Param(name="days", type="integer", default=7, minimum=1, maximum=14),
        Param(name="override_by", pattern=PERSON, description="who proceeds despite a failed gate"),
        Param(name="override_reason", pattern=REASON, description="why (at least 10 characters)"),
    )

    def check(self, values: dict[str, Any]) -> None:
        if bool((values.get("override_by") or "").strip()) != bool(
            (values.get("override_reason") or "").strip()
        ):
            raise ParamError("override_reason", "an override needs both who and why")

    def plan(self, values: Mapping[str, Any], ctx: ActionContext) -> list[ApiCall]:
        days = values["days"]
        return [
            ApiCall(
                service="cloudwatch",
                operation="GetMetricData",
                parameters={
                    "metrics": ["DualWrites", "DualWriteFailures", "Requests"],
                    "days": days,
                },
                note="one call: every day of the window, by outcome and failure reason",
            ),
            ApiCall(
                service="dynamodb",
                operation="Scan",
                parameters={"TableName": ctx.settings.table, "Select": "COUNT"},
                note="image records created in the window that still exist",
            ),
            ApiCall(
                service="postgresql",
                operation="SELECT count(*) FROM the legacy table",
                parameters={"table": ctx.settings.legacy_table, "days": days},
                note="rows inserted in the window that still exist",
            ),
        ]

    def run(self, values: Mapping[str, Any], ctx: ActionContext) -> dict[str, Any]:
        service = ctx.cutover
        if service is None:
            raise ActionError("the cutover service is not available to this run")
        override = (
            Override(by=values["override_by"], reason=values["override_reason"])
            if (values.get("override_by") or "").strip()
            else None
        )
        try:
            report = service.preflight(now=ctx.now, days=values["days"])
            decision = service.record_preflight(
                report,
                actor=f"runbook run {ctx.execution_id}",
                now=ctx.now,
                override=override,
                execution_id=ctx.execution_id,
            )
        except Exception as exc:  # the cutover's store or sources: say which, stop the run
            raise ActionError(f"the pre-flight report could not be made: {exc}") from exc
        doc = report.document
        rec = doc["reconciliation"]
        outputs = {
            # `reason` and `figures` are what the run's page shows the approver first.
            "reason": decision.text,
            "figures": {
                "dual-write attempts": doc["attempts"],
                "dual-write failures": doc["failures"],
                "success ratio": doc["success_ratio"],
                "DynamoDB images": rec["dynamodb_images"],
                f"{ctx.settings.legacy_table} rows": rec["postgres_rows"],
            },
            "gate": "passed"
            if report.gate.passed
            else "overridden"
            if decision.proceed
            else "failed",
            "checks": [c["text"] for c in doc["gate"]["checks"]],
            "attempts": doc["attempts"],
            "failures": doc["failures"],
            "success_ratio": doc["success_ratio"],
            "failures_by_reason": doc["failures_by_reason"],
            "daily_success_ratio": {d["start"][:10]: d["success_ratio"] for d in doc["daily"]},
            "reconciliation": {
                k: rec[k]
                for k in ("dynamodb_images", "postgres_rows", "difference", "upload_requests")
            },
            "report_url": f"{ctx.settings.public_url}/cutover/preflight?days={values['days']}",
            "sha256": doc["sha256"],
        }
        if decision.overridden and override is not None:
            ctx.record(
                "cutover.preflight_overridden", {"by": override.by, "reason": override.reason}
            )
        if not decision.proceed:
            raise ActionError(decision.text)
        return outputs
