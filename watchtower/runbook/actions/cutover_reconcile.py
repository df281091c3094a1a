"""`cutover.reconcile`: do DynamoDB and the legacy table hold the same image ids for the last
hours? Read-only; fails the step while any id is on one side only, naming the first ones."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from watchtower.cutover.reconcile import (
    DynamoDbImageIds,
    Pacer,
    Progress,
    differences,
    reconcile,
)
from watchtower.errors import SourceError
from watchtower.runbook.actions.base import Action, ActionContext, register
from watchtower.runbook.errors import ActionError
from watchtower.runbook.model import ApiCall, Param
from watchtower.sources import PostgresSql


@register
class Reconcile(Action):
    name = "cutover.reconcile"
    title = "Reconcile DynamoDB and the legacy table, id for id"
    mutating = False
    gated = False
    inputs = (
        Param(name="hours", type="integer", default=26, minimum=1, maximum=24 * 14),
        Param(name="read_units_per_second", type="integer", default=100, minimum=1),
    )

    def plan(self, values: Mapping[str, Any], ctx: ActionContext) -> list[ApiCall]:
        return [
            ApiCall(
                service="dynamodb",
                operation="Scan",
                parameters={"TableName": ctx.settings.table, "ProjectionExpression": "pk"},
                note=f"image ids created in the last {values['hours']} h, paced",
            ),
            ApiCall(
                service="postgresql",
                operation="SELECT id FROM the legacy table",
                parameters={"table": ctx.settings.legacy_table, "hours": values["hours"]},
                note="the same range, keyset pages",
            ),
        ]

    def run(self, values: Mapping[str, Any], ctx: ActionContext) -> dict[str, Any]:
        url = ctx.settings.legacy_database_url
        if not url:
            raise ActionError(
                "the legacy database is not configured (WATCHTOWER_LEGACY_DATABASE_URL)"
            )
        try:
            done = reconcile(
                Progress(since=ctx.now - timedelta(hours=values["hours"]), until=ctx.now),
                images=DynamoDbImageIds(ctx.aws("dynamodb"), ctx.settings.table),
                sql=PostgresSql(url, table=ctx.settings.legacy_table),
                pacer=Pacer(float(values["read_units_per_second"])),
            )
        except SourceError as exc:
            raise ActionError(str(exc)) from exc
        diff = differences(done)
        table = ctx.settings.legacy_table
        reason = (
            f"{diff.count} differences: {diff.missing_from_postgres_count} missing "
            f"from {table}, {diff.missing_from_dynamodb_count} only in {table}"
        )
        outputs: dict[str, Any] = {
            "reason": reason,
            "dynamodb_images": diff.dynamodb_images,
            "postgres_rows": diff.postgres_rows,
            "differences": diff.count,
            "missing_from_postgres": list(diff.missing_from_postgres),
            "missing_from_dynamodb": list(diff.missing_from_dynamodb),
        }
        if diff.count:
            raise ActionError(
                reason
                + " (first: "
                + ", ".join([*diff.missing_from_postgres[:5], *diff.missing_from_dynamodb[:5]])
                + ")"
            )
        return outputs
