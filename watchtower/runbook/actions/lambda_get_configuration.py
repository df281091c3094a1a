"""`lambda.get_configuration`: a function's size, memory, concurrency and chosen variables
(read-only). Only the variables named are shown: the others may hold secrets."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from watchtower.runbook.actions._aws import FUNCTION, call
from watchtower.runbook.actions.base import Action, ActionContext, register
from watchtower.runbook.model import ApiCall, Param


@register
class GetConfiguration(Action):
    name = "lambda.get_configuration"
    title = "Read a Lambda function's configuration"
    mutating = False
    gated = False
    inputs = (
        Param(name="function", pattern=FUNCTION, required=True),
        Param(name="variables", type="list", pattern=r"[A-Za-z][A-Za-z0-9_]{0,127}", default=[]),
    )

    def plan(self, values: Mapping[str, Any], ctx: ActionContext) -> list[ApiCall]:
        name = {"FunctionName": values["function"]}
        return [
            ApiCall(service="lambda", operation="GetFunctionConfiguration", parameters=name),
            ApiCall(service="lambda", operation="GetFunctionConcurrency", parameters=name),
        ]

    def run(self, values: Mapping[str, Any], ctx: ActionContext) -> dict[str, Any]:
        client = ctx.aws("lambda")
        what = f"function {values['function']!r}"
        config = call(client, "GetFunctionConfiguration", what, FunctionName=values["function"])
        concurrency = call(client, "GetFunctionConcurrency", what, FunctionName=values["function"])
        variables = (config.get("Environment") or {}).get("Variables") or {}
        size = config.get("CodeSize")
        return {
            "function": config.get("FunctionName", values["function"]),
            "runtime": config.get("Runtime"),
            "memory_mb": config.get("MemorySize"),
            "timeout_s": config.get("Timeout"),
            "code_size_bytes": size,
            "code_size_mb": round(size / 1_048_576, 3) if isinstance(size, int) else None,
            "state": config.get("State"),
            "last_update_status": config.get("LastUpdateStatus"),
            "last_modified": config.get("LastModified"),
            "reserved_concurrency": concurrency.get("ReservedConcurrentExecutions"),
            "variable_names": sorted(variables),
            "variables": {n: variables.get(n) for n in values["variables"]},
        }
