"""`alertmanager.get_silence`: read one silence back (Alertmanager's API v2): its state
(`active`, `pending`, `expired`), when it ends, who made it. Read-only: a silence step's
post-check."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from watchtower.runbook.actions.alertmanager_create_silence import base_url, call
from watchtower.runbook.actions.alertmanager_expire_silence import SILENCE_ID
from watchtower.runbook.actions.base import Action, ActionContext, register
from watchtower.runbook.model import ApiCall, Param


@register
class GetSilence(Action):
    name = "alertmanager.get_silence"
    title = "Read a silence (Alertmanager)"
    mutating = False
    gated = False
    inputs = (Param(name="silence_id", pattern=SILENCE_ID, required=True),)

    def plan(self, values: Mapping[str, Any], ctx: ActionContext) -> list[ApiCall]:
        return [
            ApiCall(
                service="alertmanager",
                operation=f"GET /api/v2/silence/{values['silence_id']}",
                parameters={},
            )
        ]

    def run(self, values: Mapping[str, Any], ctx: ActionContext) -> dict[str, Any]:
        found = call("GET", f"{base_url(ctx)}/api/v2/silence/{values['silence_id']}")
        return {
            "silence_id": values["silence_id"],
            "state": (found.get("status") or {}).get("state", ""),
            "ends_at": found.get("endsAt", ""),
            "created_by": found.get("createdBy", ""),
            "comment": found.get("comment", ""),
        }
