"""`lambda.move_alias`: point an alias at a version (all traffic; weighted routing removed).

Without a version, it goes back to the one recorded by the flip that published the version the
alias serves now (`lambda.set_alias_variable` writes it into that version's description); when
none is recorded it moves nothing and says so (`moved: false`), for the runbook to fall back on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from watchtower.runbook.actions._alias import ALIAS, VERSION, AliasState, move_request, read_alias
from watchtower.runbook.actions._aws import FUNCTION, call
from watchtower.runbook.actions.base import Action, ActionContext, register
from watchtower.runbook.model import ApiCall, Param


@register
class MoveAlias(Action):
    name = "lambda.move_alias"
    title = "Point a Lambda alias at a version"
    inputs = (
        Param(name="function", pattern=FUNCTION, required=True),
        Param(name="alias", pattern=ALIAS, required=True),
        Param(name="version", pattern=VERSION),  # unset: the version recorded at the flip
    )

    def _target(
        self, values: Mapping[str, Any], ctx: ActionContext
    ) -> tuple[AliasState, str | None]:
        state = read_alias(ctx.aws("lambda"), values["function"], values["alias"])
        return state, values["version"] or state.recorded_previous

    def plan(self, values: Mapping[str, Any], ctx: ActionContext) -> list[ApiCall]:
        state, target = self._target(values, ctx)
        read = ApiCall(
            service="lambda",
            operation="GetAlias",
            parameters={"FunctionName": state.function, "Name": state.alias},
            note=f"serves version {state.version} now",
        )
        if target is None:
            return [
                read,
                ApiCall(
                    service="lambda",
                    operation="(none)",
                    parameters={},
                    note=f"version {state.version} records no version to go back to: "
                    "nothing is moved (moved: false)",
                ),
            ]
        return [
            read,
            ApiCall(
                service="lambda", operation="UpdateAlias", parameters=move_request(state, target)
            ),
        ]

    def run(self, values: Mapping[str, Any], ctx: ActionContext) -> dict[str, Any]:
        state, target = self._target(values, ctx)
        out: dict[str, Any] = {
            "function": state.function,
            "alias": state.alias,
            "previous_version": state.version,
            "previous_weights": state.weights,
        }
        if target is None:
            return {**out, "moved": False, "version": state.version}
        call(
            ctx.aws("lambda"),
            "UpdateAlias",
            f"alias {state.alias!r} of function {state.function!r}",
            **move_request(state, target),
        )
        return {**out, "moved": True, "version": target}
