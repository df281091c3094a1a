"""`lambda.get_provisioned_concurrency`: an alias's provisioned concurrency (read-only)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from watchtower.runbook.actions._aws import FUNCTION, code, said
from watchtower.runbook.actions.base import Action, ActionContext, register
from watchtower.runbook.actions.lambda_set_provisioned_concurrency import QUALIFIER
from watchtower.runbook.errors import ActionError
from watchtower.runbook.model import ApiCall, Param


@register
class GetProvisionedConcurrency(Action):
    name = "lambda.get_provisioned_concurrency"
    title = "Read a Lambda alias's provisioned concurrency"
    mutating = False
    gated = False
    inputs = (
        Param(name="function", pattern=FUNCTION, required=True),
        Param(name="qualifier", pattern=QUALIFIER, required=True),
    )

    def plan(self, values: Mapping[str, Any], ctx: ActionContext) -> list[ApiCall]:
        return [
            ApiCall(
                service="lambda",
                operation="GetProvisionedConcurrencyConfig",
                parameters={"FunctionName": values["function"], "Qualifier": values["qualifier"]},
            )
        ]

    def run(self, values: Mapping[str, Any], ctx: ActionContext) -> dict[str, Any]:
        what = f"function {values['function']!r}:{values['qualifier']}"
        try:
            answer = ctx.aws("lambda").get_provisioned_concurrency_config(
                FunctionName=values["function"], Qualifier=values["qualifier"]
            )
        except ClientError as exc:
            if code(exc) == "ProvisionedConcurrencyConfigNotFoundException":
                return {"status": "NONE", "requested": 0, "allocated": 0, "available": 0}
            raise ActionError(
                f"{what}: GetProvisionedConcurrencyConfig failed: {said(exc)}"
            ) from exc
        except BotoCoreError as exc:
            raise ActionError(f"{what}: GetProvisionedConcurrencyConfig failed: {exc}") from exc
        return {
            "status": answer.get("Status"),
            "requested": answer.get("RequestedProvisionedConcurrentExecutions"),
            "allocated": answer.get("AllocatedProvisionedConcurrentExecutions"),
            "available": answer.get("AvailableProvisionedConcurrentExecutions"),
            "reason": answer.get("StatusReason", ""),
        }
