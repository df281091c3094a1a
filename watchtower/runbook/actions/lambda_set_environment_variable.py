"""`lambda.set_environment_variable`: set (or unset) one variable, keeping every other one.

Lambda replaces the whole environment on each update, so this reads the current configuration
and writes it back with one variable changed (read-modify-write), passing the revision it read
so that a concurrent change makes the update fail instead of being overwritten (where the API
returns a RevisionId; the moto server does not). The values of the other variables may be
secrets: plans and outputs name them but never show their values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from watchtower.runbook.actions._aws import FUNCTION, call
from watchtower.runbook.actions.base import Action, ActionContext, register
from watchtower.runbook.errors import ParamError
from watchtower.runbook.model import ApiCall, Param

KEPT = "<unchanged>"


@register
class SetEnvironmentVariable(Action):
    name = "lambda.set_environment_variable"
    title = "Set one environment variable of a Lambda function"
    inputs = (
        Param(name="function", pattern=FUNCTION, required=True),
        Param(name="name", pattern=r"[A-Za-z][A-Za-z0-9_]{0,127}", required=True),
        Param(name="value", pattern=r"[^\n\r]{0,4096}"),
        Param(name="unset", type="boolean", default=False),
    )

    def check(self, values: dict[str, Any]) -> None:
        if values["unset"] and values["value"] is not None:
            raise ParamError("value", "give a value or unset: true, not both")
        if not values["unset"] and values["value"] is None:
            raise ParamError("value", "is required (or unset: true to remove the variable)")

    def _read(
        self, values: Mapping[str, Any], ctx: ActionContext
    ) -> tuple[dict[str, str], str | None]:
        answer = call(
            ctx.aws("lambda"),
            "GetFunctionConfiguration",
            f"function {values['function']!r}",
            FunctionName=values["function"],
        )
        variables = dict((answer.get("Environment") or {}).get("Variables") or {})
        return variables, answer.get("RevisionId")

    def _request(
        self, values: Mapping[str, Any], variables: Mapping[str, str], revision: str | None
    ) -> dict[str, Any]:
        new = dict(variables)
        if values["unset"]:
            new.pop(values["name"], None)
        else:
            new[values["name"]] = values["value"]
        request: dict[str, Any] = {
            "FunctionName": values["function"],
            "Environment": {"Variables": new},
        }
        if revision:
            request["RevisionId"] = revision
        return request

    def plan(self, values: Mapping[str, Any], ctx: ActionContext) -> list[ApiCall]:
        variables, revision = self._read(values, ctx)
        request = self._request(values, variables, revision)
        shown = {
            k: (v if k == values["name"] else KEPT)
            for k, v in request["Environment"]["Variables"].items()
        }
        return [
            ApiCall(
                service="lambda",
                operation="GetFunctionConfiguration",
                parameters={"FunctionName": values["function"]},
                note="read first: Lambda replaces the whole environment",
            ),
            ApiCall(
                service="lambda",
                operation="UpdateFunctionConfiguration",
                parameters={**request, "Environment": {"Variables": shown}},
                note=f"every other variable is sent back as it is ({KEPT}: values not shown)",
            ),
        ]

    def run(self, values: Mapping[str, Any], ctx: ActionContext) -> dict[str, Any]:
        variables, revision = self._read(values, ctx)
        previous = variables.get(values["name"])
        answer = call(
            ctx.aws("lambda"),
            "UpdateFunctionConfiguration",
            f"function {values['function']!r}",
            **self._request(values, variables, revision),
        )
        after = (answer.get("Environment") or {}).get("Variables") or {}
        return {
            "function": values["function"],
            "name": values["name"],
            "value": after.get(values["name"]),
            "previous": previous,
            "was_set": previous is not None,
            "kept": sorted(k for k in after if k != values["name"]),
        }
