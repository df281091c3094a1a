"""`cloudfront.create_invalidation`: invalidate paths of a CloudFront distribution."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from watchtower.runbook.actions._aws import DISTRIBUTION, call
from watchtower.runbook.actions.base import Action, ActionContext, register
from watchtower.runbook.errors import ParamError
from watchtower.runbook.model import ApiCall, Param

MAX_PATHS = 30
MAX_WILDCARDS = 15  # CloudFront allows 15 wildcard paths in progress at once
# Starts with /, no whitespace, and `*` only as the last character.
PATH = r"/[^\s*]{0,4000}\*?"


@register
class CreateInvalidation(Action):
    name = "cloudfront.create_invalidation"
    title = "Invalidate CloudFront paths"
    inputs = (
        Param(name="distribution_id", pattern=DISTRIBUTION, required=True),
        Param(name="paths", type="list", pattern=PATH, required=True, max_items=MAX_PATHS),
    )

    def check(self, values: dict[str, Any]) -> None:
        paths = list(dict.fromkeys(values["paths"]))
        if not paths:
            raise ParamError("paths", "at least one path")
        wildcards = sum(p.endswith("*") for p in paths)
        if wildcards > MAX_WILDCARDS:
            raise ParamError("paths", f"at most {MAX_WILDCARDS} wildcard paths, not {wildcards}")
        values["paths"] = paths

    def _request(self, values: Mapping[str, Any], ctx: ActionContext) -> dict[str, Any]:
        return {
            "DistributionId": values["distribution_id"],
            "InvalidationBatch": {
                "Paths": {"Quantity": len(values["paths"]), "Items": list(values["paths"])},
                # One reference per run and step: CloudFront treats a repeat as the same request.
                "CallerReference": f"watchtower-{ctx.execution_id}-{ctx.step_id}",
            },
        }

    def plan(self, values: Mapping[str, Any], ctx: ActionContext) -> list[ApiCall]:
        return [
            ApiCall(
                service="cloudfront",
                operation="CreateInvalidation",
                parameters=self._request(values, ctx),
            )
        ]

    def run(self, values: Mapping[str, Any], ctx: ActionContext) -> dict[str, Any]:
        what = f"distribution {values['distribution_id']!r}"
        answer = call(
            ctx.aws("cloudfront"), "CreateInvalidation", what, **self._request(values, ctx)
        )
        invalidation = answer["Invalidation"]
        return {
            "distribution_id": values["distribution_id"],
            "invalidation_id": invalidation["Id"],
            "status": invalidation["Status"],
            "paths": list(values["paths"]),
        }
