"""`lambda.set_alias_variable`: change one environment variable of what an alias serves.

Traffic through an alias runs a published version, whose configuration cannot change: writing
`$LATEST` alone changes nothing users see. So this reads the configuration of the version the
alias serves, writes it to `$LATEST` with the one variable changed (every other variable as
that version has it), waits for the update, publishes a version (only if `$LATEST`'s code is
the code the alias serves: otherwise the flip would also deploy other code) and moves the alias
to it, clearing any weighted routing. The published version's description records the version
the alias was at, which `lambda.move_alias` goes back to. Variable values other than the one
changed are never shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from watchtower.runbook.actions._alias import (
    ALIAS,
    AliasState,
    flip_description,
    move_request,
    read_alias,
)
from watchtower.runbook.actions._aws import FUNCTION, call
from watchtower.runbook.actions.base import Action, ActionContext, register
from watchtower.runbook.errors import ActionError, ParamError
from watchtower.runbook.model import ApiCall, Param

KEPT = "<unchanged>"
PUBLISHED = "<the version PublishVersion returns>"


@register
class SetAliasVariable(Action):
    name = "lambda.set_alias_variable"
    title = "Set one variable of what a Lambda alias serves: write, publish, move the alias"
    inputs = (
        Param(name="function", pattern=FUNCTION, required=True),
        Param(name="alias", pattern=ALIAS, required=True),
        Param(name="name", pattern=r"[A-Za-z][A-Za-z0-9_]{0,127}", required=True),
        Param(name="value", pattern=r"[^\n\r]{0,4096}"),
        Param(name="unset", type="boolean", default=False),
    )

    def check(self, values: dict[str, Any]) -> None:
        if values["unset"] and values["value"] is not None:
            raise ParamError("value", "give a value or unset: true, not both")
        if not values["unset"] and values["value"] is None:
            raise ParamError("value", "is required (or unset: true to remove the variable)")

    def _prepare(
        self, values: Mapping[str, Any], ctx: ActionContext
    ) -> tuple[AliasState, dict[str, Any], dict[str, Any]]:
        """The alias as it is, the $LATEST update and the PublishVersion request."""
        client = ctx.aws("lambda")
        function = values["function"]
        state = read_alias(client, function, values["alias"])
        latest = call(
            client, "GetFunctionConfiguration", f"function {function!r}", FunctionName=function
        )
        served_code, latest_code = state.config.get("CodeSha256"), latest.get("CodeSha256")
        if served_code and latest_code and served_code != latest_code:
            raise ActionError(
                f"function {function!r}: $LATEST's code ({latest_code[:12]}…) is not the code "
                f"alias {state.alias!r} serves (version {state.version}, {served_code[:12]}…): "
                "publishing it would deploy other code as well; deploy first, or flip by hand"
            )
        variables = state.variables
        if values["unset"]:
            variables.pop(values["name"], None)
        else:
            variables[values["name"]] = values["value"]
        update: dict[str, Any] = {"FunctionName": function, "Environment": {"Variables": variables}}
        if latest.get("RevisionId"):
            update["RevisionId"] = latest["RevisionId"]
        publish: dict[str, Any] = {
            "FunctionName": function,
            "Description": flip_description(
                values["name"],
                None if values["unset"] else values["value"],
                state,
                ctx.execution_id,
            ),
        }
        if served_code:
            publish["CodeSha256"] = served_code
        return state, update, publish

    def plan(self, values: Mapping[str, Any], ctx: ActionContext) -> list[ApiCall]:
        state, update, publish = self._prepare(values, ctx)
        shown = {
            k: (v if k == values["name"] else KEPT)
            for k, v in update["Environment"]["Variables"].items()
        }
        routing = ", ".join(f"version {v} at {w:.0%}" for v, w in state.weights.items())
        return [
            ApiCall(
                service="lambda",
                operation="GetFunctionConfiguration",
                parameters={"FunctionName": state.function, "Qualifier": state.version},
                note=f"alias {state.alias!r} serves version {state.version}: its environment "
                "is the base",
            ),
            ApiCall(
                service="lambda",
                operation="UpdateFunctionConfiguration",
                parameters={**update, "Environment": {"Variables": shown}},
                note=f"$LATEST gets version {state.version}'s environment with "
                f"{values['name']} changed ({KEPT}: values not shown)",
            ),
            ApiCall(
                service="lambda",
                operation="GetFunctionConfiguration",
                parameters={"FunctionName": state.function},
                note="until LastUpdateStatus is Successful",
            ),
            ApiCall(service="lambda", operation="PublishVersion", parameters=publish),
            ApiCall(
                service="lambda",
                operation="UpdateAlias",
                parameters=move_request(state, PUBLISHED),
                note=f"from version {state.version}"
                + (f"; the weighted routing ({routing}) is removed" if routing else ""),
            ),
        ]

    def run(self, values: Mapping[str, Any], ctx: ActionContext) -> dict[str, Any]:
        client = ctx.aws("lambda")
        state, update, publish = self._prepare(values, ctx)
        what = f"function {state.function!r}"
        call(client, "UpdateFunctionConfiguration", what, **update)
        try:
            client.get_waiter("function_updated_v2").wait(
                FunctionName=state.function, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
            )
        except Exception as exc:  # botocore's WaiterError: the update failed or never ended
            raise ActionError(f"{what}: the update of $LATEST did not succeed: {exc}") from exc
        published = call(client, "PublishVersion", what, **publish)
        version = str(published["Version"])
        call(
            client,
            "UpdateAlias",
            f"alias {state.alias!r} of {what}",
            **move_request(state, version),
        )
        return {
            "function": state.function,
            "alias": state.alias,
            "name": values["name"],
            "value": None if values["unset"] else values["value"],
            "previous": state.variables.get(values["name"]),
            "previous_version": state.version,
            "previous_weights": state.weights,
            "version": version,
        }
