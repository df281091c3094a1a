"""`lambda.set_reserved_concurrency`: reserve (and cap) a function's concurrency."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from watchtower.runbook.actions._aws import FUNCTION, call
from watchtower.runbook.actions.base import Action, ActionContext, register
from watchtower.runbook.model import ApiCall, Param


@register
class SetReservedConcurrency(Action):
    name = "lambda.set_reserved_concurrency"
    title = "Set a Lambda function's reserved concurrency"
    inputs = (
        Param(name="function", pattern=FUNCTION, required=True),
        Param(name="count", type="integer", required=True, minimum=0, maximum=10_000),
    )

    def plan(self, values: Mapping[str, Any], ctx: ActionContext) -> list[ApiCall]:
        return [
            ApiCall(
                service="lambda",
                operation="PutFunctionConcurrency",
                parameters={
                    "FunctionName": values["function"],
                    "ReservedConcurrentExecutions": values["count"],
                },
                note="0 stops every invocation of the function" if values["count"] == 0 else "",
            )
        ]

    def run(self, values: Mapping[str, Any], ctx: ActionContext) -> dict[str, Any]:
        client = ctx.aws("lambda")
        what = f"function {values['function']!r}"
        before = call(client, "GetFunctionConcurrency", what, FunctionName=values["function"])
        answer = call(
            client,
            "PutFunctionConcurrency",
            what,
            FunctionName=values["function"],
            ReservedConcurrentExecutions=values["count"],
        )
        return {
            "function": values["function"],
            "count": answer.get("ReservedConcurrentExecutions"),
            "previous": before.get("ReservedConcurrentExecutions"),
        }
