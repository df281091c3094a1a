"""`lambda.get_alias`: the version an alias serves (and a weighted one, with its share), that
version's code hash and the variables named (read-only; the others may hold secrets)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from watchtower.runbook.actions._alias import ALIAS, read_alias
from watchtower.runbook.actions._aws import FUNCTION
from watchtower.runbook.actions.base import Action, ActionContext, register
from watchtower.runbook.model import ApiCall, Param


@register
class GetAlias(Action):
    name = "lambda.get_alias"
    title = "Read which version a Lambda alias serves"
    mutating = False
    gated = False
    inputs = (
        Param(name="function", pattern=FUNCTION, required=True),
        Param(name="alias", pattern=ALIAS, required=True),
        Param(name="variables", type="list", pattern=r"[A-Za-z][A-Za-z0-9_]{0,127}", default=[]),
    )

    def plan(self, values: Mapping[str, Any], ctx: ActionContext) -> list[ApiCall]:
        function, alias = values["function"], values["alias"]
        return [
            ApiCall(
                service="lambda",
                operation="GetAlias",
                parameters={"FunctionName": function, "Name": alias},
            ),
            ApiCall(
                service="lambda",
                operation="GetFunctionConfiguration",
                parameters={"FunctionName": function, "Qualifier": "<the alias's version>"},
            ),
        ]

    def run(self, values: Mapping[str, Any], ctx: ActionContext) -> dict[str, Any]:
        state = read_alias(ctx.aws("lambda"), values["function"], values["alias"])
        variables = state.variables
        return {
            "function": state.function,
            "alias": state.alias,
            "version": state.version,
            "weights": state.weights,
            "weighted": bool(state.weights),
            "code_sha256": state.config.get("CodeSha256"),
            "description": state.config.get("Description") or "",
            "recorded_previous": state.recorded_previous,
            "variable_names": sorted(variables),
            "variables": {n: variables.get(n) for n in values["variables"]},
        }
