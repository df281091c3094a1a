"""`cloudfront.get_invalidation`: an invalidation's status (read-only)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from watchtower.runbook.actions._aws import DISTRIBUTION, call
from watchtower.runbook.actions.base import Action, ActionContext, register
from watchtower.runbook.model import ApiCall, Param


@register
class GetInvalidation(Action):
    name = "cloudfront.get_invalidation"
    title = "Read a CloudFront invalidation's status"
    mutating = False
    gated = False
    inputs = (
        Param(name="distribution_id", pattern=DISTRIBUTION, required=True),
        Param(name="invalidation_id", pattern=r"[A-Z0-9]{1,64}", required=True),
    )

    def plan(self, values: Mapping[str, Any], ctx: ActionContext) -> list[ApiCall]:
        return [
            ApiCall(
                service="cloudfront",
                operation="GetInvalidation",
                parameters={
                    "DistributionId": values["distribution_id"],
                    "Id": values["invalidation_id"],
                },
            )
        ]

    def run(self, values: Mapping[str, Any], ctx: ActionContext) -> dict[str, Any]:
        invalidation, distribution = values["invalidation_id"], values["distribution_id"]
        answer = call(
            ctx.aws("cloudfront"),
            "GetInvalidation",
            f"invalidation {invalidation!r} of distribution {distribution!r}",
            DistributionId=values["distribution_id"],
            Id=values["invalidation_id"],
        )
        status = str(answer["Invalidation"]["Status"])
        # AWS says "Completed"; the moto server says "COMPLETED".
        return {"status": status, "completed": status.lower() == "completed"}
