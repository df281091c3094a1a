"""`dynamodb.set_billing_mode`: on-demand (PAY_PER_REQUEST), or provisioned with a capacity.

Switching to PROVISIONED sets the same capacity on every global secondary index, which the API
requires. AWS allows one switch to on-demand per table per 24 hours.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from watchtower.runbook.actions._aws import TABLE, call
from watchtower.runbook.actions.base import Action, ActionContext, register
from watchtower.runbook.errors import ParamError
from watchtower.runbook.model import ApiCall, Param


def describe(ctx: ActionContext, table: str) -> dict[str, Any]:
    answer = call(ctx.aws("dynamodb"), "DescribeTable", f"table {table!r}", TableName=table)
    return dict(answer["Table"])


def billing_mode(description: Mapping[str, Any]) -> str:
    # Tables created PROVISIONED before billing modes existed have no BillingModeSummary.
    return str((description.get("BillingModeSummary") or {}).get("BillingMode", "PROVISIONED"))


@register
class SetBillingMode(Action):
    name = "dynamodb.set_billing_mode"
    title = "Switch a DynamoDB table's billing mode or capacity"
    inputs = (
        Param(name="table", pattern=TABLE, required=True),
        Param(name="mode", choices=("PAY_PER_REQUEST", "PROVISIONED"), required=True),
        Param(name="read_capacity", type="integer", minimum=1, maximum=40_000),
        Param(name="write_capacity", type="integer", minimum=1, maximum=40_000),
    )

    def check(self, values: dict[str, Any]) -> None:
        capacity = (values["read_capacity"], values["write_capacity"])
        if values["mode"] == "PROVISIONED" and None in capacity:
            raise ParamError("read_capacity", "PROVISIONED needs read_capacity and write_capacity")
        if values["mode"] == "PAY_PER_REQUEST" and capacity != (None, None):
            raise ParamError("read_capacity", "PAY_PER_REQUEST takes no capacity")

    def _request(self, values: Mapping[str, Any], description: Mapping[str, Any]) -> dict[str, Any]:
        request: dict[str, Any] = {"TableName": values["table"], "BillingMode": values["mode"]}
        if values["mode"] == "PROVISIONED":
            throughput = {
                "ReadCapacityUnits": values["read_capacity"],
                "WriteCapacityUnits": values["write_capacity"],
            }
            request["ProvisionedThroughput"] = throughput
            indexes = [i["IndexName"] for i in description.get("GlobalSecondaryIndexes", [])]
            if indexes:
                request["GlobalSecondaryIndexUpdates"] = [
                    {"Update": {"IndexName": name, "ProvisionedThroughput": throughput}}
                    for name in indexes
                ]
        return request

    def plan(self, values: Mapping[str, Any], ctx: ActionContext) -> list[ApiCall]:
        description = describe(ctx, values["table"])
        current = billing_mode(description)
        return [
            ApiCall(
                service="dynamodb",
                operation="DescribeTable",
                parameters={"TableName": values["table"]},
                note=f"now {current}",
            ),
            ApiCall(
                service="dynamodb",
                operation="UpdateTable",
                parameters=self._request(values, description),
                note="nothing to change" if current == values["mode"] == "PAY_PER_REQUEST" else "",
            ),
        ]

    def run(self, values: Mapping[str, Any], ctx: ActionContext) -> dict[str, Any]:
        description = describe(ctx, values["table"])
        previous = billing_mode(description)
        throughput = description.get("ProvisionedThroughput", {})
        out = {
            "table": values["table"],
            "mode": values["mode"],
            "previous_mode": previous,
            "previous_read_capacity": throughput.get("ReadCapacityUnits"),
            "previous_write_capacity": throughput.get("WriteCapacityUnits"),
            "changed": False,
        }
        if previous == values["mode"] == "PAY_PER_REQUEST":
            return out  # UpdateTable refuses a request that changes nothing
        answer = call(
            ctx.aws("dynamodb"),
            "UpdateTable",
            f"table {values['table']!r}",
            **self._request(values, description),
        )
        return {**out, "changed": True, "status": answer["TableDescription"].get("TableStatus")}
