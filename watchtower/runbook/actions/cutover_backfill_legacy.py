"""`cutover.backfill_legacy`: after a rollback, write into the legacy table every image created
while dual-write was off (from its DynamoDB record), so the legacy table has no hole.

Idempotent (`ON CONFLICT (id) DO NOTHING`; only ids the table lacks are written), batched. Its
dry run (the plan) reads both stores and says how many rows it would write, and which.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from watchtower.cutover import legacy_backfill
from watchtower.errors import SourceError
from watchtower.runbook.actions.base import Action, ActionContext, register
from watchtower.runbook.errors import ActionError
from watchtower.runbook.model import ApiCall, Param
from watchtower.sources import PostgresSql

SHOWN = 20


def _legacy_url(ctx: ActionContext) -> str:
    url = ctx.settings.legacy_database_url
    if not url:
        raise ActionError(
            "the legacy database is not configured (WATCHTOWER_LEGACY_DATABASE_URL): nothing "
            "can be backfilled, and the images created while dual-write was off are not in "
            f"{ctx.settings.legacy_table}"
        )
    return url


def _plan(values: Mapping[str, Any], ctx: ActionContext) -> legacy_backfill.Plan:
    url = _legacy_url(ctx)
    try:
        return legacy_backfill.plan(
            ctx.aws("dynamodb"),
            ctx.settings.table,
            PostgresSql(url, table=ctx.settings.legacy_table),
            since=ctx.now - timedelta(hours=values["hours"]),
            until=ctx.now,
        )
    except SourceError as exc:
        raise ActionError(str(exc)) from exc


@register
class BackfillLegacy(Action):
    name = "cutover.backfill_legacy"
    title = "Backfill the legacy table with the images created while dual-write was off"
    # It writes what dual-write would have written, as part of a rollback a person already
    # approved (the flag step): no second approval, except in a run an alert only suggested.
    gated = False
    inputs = (
        Param(name="hours", type="integer", default=26, minimum=1, maximum=24 * 14),
        Param(name="batch_size", type="integer", default=500, minimum=1, maximum=5000),
    )

    def plan(self, values: Mapping[str, Any], ctx: ActionContext) -> list[ApiCall]:
        table = ctx.settings.legacy_table
        if not ctx.settings.legacy_database_url:
            return [
                ApiCall(
                    service="postgresql",
                    operation="INSERT INTO the legacy table",
                    parameters={"table": table},
                    note="the legacy database is not configured "
                    "(WATCHTOWER_LEGACY_DATABASE_URL): the step will fail, nothing backfilled",
                )
            ]
        found = _plan(values, ctx)
        return [
            ApiCall(
                service="dynamodb",
                operation="Scan",
                parameters={"TableName": ctx.settings.table},
                note=f"reads the image records created in the last {values['hours']} h "
                "(the plan made this read too)",
            ),
            ApiCall(
                service="postgresql",
                operation="INSERT INTO the legacy table ... ON CONFLICT (id) DO NOTHING",
                parameters={
                    "table": table,
                    "rows": len(found.records),
                    "batch_size": values["batch_size"],
                    "first_ids": found.ids[:SHOWN],
                },
                note=f"would write {len(found.records)} rows: the images created in the last "
                f"{values['hours']} h that {table} lacks",
            ),
            ApiCall(
                service="postgresql",
                operation="DELETE FROM the legacy table WHERE id = ANY(...)",
                parameters={
                    "table": table,
                    "rows": len(found.stale),
                    "first_ids": list(found.stale[:SHOWN]),
                },
                note=f"would delete {len(found.stale)} rows of images deleted while dual-write "
                "was off",
            ),
        ]

    def run(self, values: Mapping[str, Any], ctx: ActionContext) -> dict[str, Any]:
        found = _plan(values, ctx)
        try:
            table = ctx.settings.legacy_table
            written = legacy_backfill.write(
                _legacy_url(ctx), found.records, table=table, batch_size=values["batch_size"]
            )
            deleted = legacy_backfill.delete(
                _legacy_url(ctx), found.stale, table=table, batch_size=values["batch_size"]
            )
        except SourceError as exc:
            raise ActionError(str(exc)) from exc
        ctx.record(
            "cutover.legacy_backfilled",
            {
                "rows": written,
                "found": len(found.records),
                "deleted": deleted,
                "first_ids": found.ids[:SHOWN],
            },
        )
        return {
            "reason": f"{written} rows written into {ctx.settings.legacy_table} "
            f"({len(found.records)} "
            f"missing in the last {values['hours']} h), {deleted} rows of deleted images removed",
            "rows_written": written,
            "rows_deleted": deleted,
            "rows_missing": len(found.records),
            "first_ids": found.ids[:SHOWN],
        }
