"""`cloudfront.get_distribution`: a distribution's state and cache TTLs (read-only)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from watchtower.runbook.actions._aws import DISTRIBUTION, call
from watchtower.runbook.actions.base import Action, ActionContext, register
from watchtower.runbook.model import ApiCall, Param


@register
class GetDistribution(Action):
    name = "cloudfront.get_distribution"
    title = "Read a CloudFront distribution"
    mutating = False
    gated = False
    inputs = (Param(name="distribution_id", pattern=DISTRIBUTION, required=True),)

    def plan(self, values: Mapping[str, Any], ctx: ActionContext) -> list[ApiCall]:
        return [
            ApiCall(
                service="cloudfront",
                operation="GetDistribution",
                parameters={"Id": values["distribution_id"]},
            )
        ]

    def run(self, values: Mapping[str, Any], ctx: ActionContext) -> dict[str, Any]:
        answer = call(
            ctx.aws("cloudfront"),
            "GetDistribution",
            f"distribution {values['distribution_id']!r}",
            Id=values["distribution_id"],
        )
        distribution = answer["Distribution"]
        config = distribution["DistributionConfig"]
        behaviour = config.get("DefaultCacheBehavior", {})
        return {
            "distribution_id": distribution["Id"],
            "status": distribution.get("Status", ""),
            "deployed": str(distribution.get("Status", "")).lower() == "deployed",
            "enabled": bool(config.get("Enabled")),
            "domain_name": distribution.get("DomainName", ""),
            "origins": [
                o.get("DomainName", "") for o in config.get("Origins", {}).get("Items", [])
            ],
            # Legacy TTL settings; a cache policy (CachePolicyId) replaces them when set.
            "cache_policy_id": behaviour.get("CachePolicyId"),
            "min_ttl": behaviour.get("MinTTL"),
            "default_ttl": behaviour.get("DefaultTTL"),
            "max_ttl": behaviour.get("MaxTTL"),
        }
