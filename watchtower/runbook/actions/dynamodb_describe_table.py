"""`dynamodb.describe_table`: a table's billing mode, capacity and indexes (read-only)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from watchtower.runbook.actions._aws import TABLE
from watchtower.runbook.actions.base import Action, ActionContext, register
from watchtower.runbook.actions.dynamodb_set_billing_mode import billing_mode, describe
from watchtower.runbook.model import ApiCall, Param


@register
class DescribeTable(Action):
    name = "dynamodb.describe_table"
    title = "Read a DynamoDB table's capacity"
    mutating = False
    gated = False
    inputs = (Param(name="table", pattern=TABLE, required=True),)

    def plan(self, values: Mapping[str, Any], ctx: ActionContext) -> list[ApiCall]:
        return [
            ApiCall(
                service="dynamodb",
                operation="DescribeTable",
                parameters={"TableName": values["table"]},
            )
        ]

    def run(self, values: Mapping[str, Any], ctx: ActionContext) -> dict[str, Any]:
        table = describe(ctx, values["table"])
        mode = billing_mode(table)
        throughput = table.get("ProvisionedThroughput", {})
        provisioned = mode == "PROVISIONED"
        return {
            "table": table["TableName"],
            "status": table.get("TableStatus"),
            "billing_mode": mode,
            # On-demand tables report leftover figures here; they mean nothing then.
            "read_capacity": throughput.get("ReadCapacityUnits") if provisioned else None,
            "write_capacity": throughput.get("WriteCapacityUnits") if provisioned else None,
            "item_count": table.get("ItemCount"),
            "size_bytes": table.get("TableSizeBytes"),
            "indexes": [
                {
                    "name": i["IndexName"],
                    "status": i.get("IndexStatus"),
                    "read_capacity": i.get("ProvisionedThroughput", {}).get("ReadCapacityUnits")
                    if provisioned
                    else None,
                    "write_capacity": i.get("ProvisionedThroughput", {}).get("WriteCapacityUnits")
                    if provisioned
                    else None,
                }
                for i in table.get("GlobalSecondaryIndexes", [])
            ],
        }
