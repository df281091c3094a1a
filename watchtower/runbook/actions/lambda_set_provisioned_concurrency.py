"""`lambda.set_provisioned_concurrency`: keep instances of an alias or version initialised.

Provisioned concurrency applies to a qualifier (an alias or a published version), never to
$LATEST. Allocation takes minutes: the status is IN_PROGRESS, then READY (or FAILED).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from watchtower.runbook.actions._aws import FUNCTION, call, code, said
from watchtower.runbook.actions.base import Action, ActionContext, register
from watchtower.runbook.errors import ActionError, ParamError
from watchtower.runbook.model import ApiCall, Param

QUALIFIER = r"[A-Za-z0-9_-]{1,128}"


@register
class SetProvisionedConcurrency(Action):
    name = "lambda.set_provisioned_concurrency"
    title = "Set a Lambda alias's provisioned concurrency"
    inputs = (
        Param(name="function", pattern=FUNCTION, required=True),
        Param(name="qualifier", pattern=QUALIFIER, required=True),
        Param(name="count", type="integer", required=True, minimum=1, maximum=1000),
    )

    def check(self, values: dict[str, Any]) -> None:
        if values["qualifier"].upper() == "LATEST":
            raise ParamError("qualifier", "provisioned concurrency needs an alias or a version")

    def plan(self, values: Mapping[str, Any], ctx: ActionContext) -> list[ApiCall]:
        return [
            ApiCall(
                service="lambda",
                operation="PutProvisionedConcurrencyConfig",
                parameters={
                    "FunctionName": values["function"],
                    "Qualifier": values["qualifier"],
                    "ProvisionedConcurrentExecutions": values["count"],
                },
                note="billed per instance-hour while it is configured",
            )
        ]

    def run(self, values: Mapping[str, Any], ctx: ActionContext) -> dict[str, Any]:
        client = ctx.aws("lambda")
        what = f"function {values['function']!r}:{values['qualifier']}"
        previous = None
        try:
            before = client.get_provisioned_concurrency_config(
                FunctionName=values["function"], Qualifier=values["qualifier"]
            )
            previous = before.get("RequestedProvisionedConcurrentExecutions")
        except ClientError as exc:
            if code(exc) != "ProvisionedConcurrencyConfigNotFoundException":
                raise ActionError(
                    f"{what}: GetProvisionedConcurrencyConfig failed: {said(exc)}"
                ) from exc
        answer = call(
            client,
            "PutProvisionedConcurrencyConfig",
            what,
            FunctionName=values["function"],
            Qualifier=values["qualifier"],
            ProvisionedConcurrentExecutions=values["count"],
        )
        return {
            "function": values["function"],
            "qualifier": values["qualifier"],
            "requested": answer.get("RequestedProvisionedConcurrentExecutions"),
            "allocated": answer.get("AllocatedProvisionedConcurrentExecutions"),
            "status": answer.get("Status"),
            "previous": previous,
        }
