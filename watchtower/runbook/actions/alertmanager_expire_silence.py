"""`alertmanager.expire_silence`: end a silence early (Alertmanager's API v2), typically the
compensation of `alertmanager.create_silence` with `${this.silence_id}`. A silence already
expired is done; one that does not exist is an error."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from watchtower.runbook.actions.alertmanager_create_silence import base_url, call
from watchtower.runbook.actions.base import Action, ActionContext, register
from watchtower.runbook.errors import ActionError
from watchtower.runbook.model import ApiCall, Param

SILENCE_ID = r"[0-9a-fA-F-]{1,64}"


@register
class ExpireSilence(Action):
    name = "alertmanager.expire_silence"
    title = "Expire a silence (Alertmanager)"
    gated = False
    inputs = (Param(name="silence_id", pattern=SILENCE_ID, required=True),)

    def plan(self, values: Mapping[str, Any], ctx: ActionContext) -> list[ApiCall]:
        return [
            ApiCall(
                service="alertmanager",
                operation=f"DELETE /api/v2/silence/{values['silence_id']}",
                parameters={},
                note="the silenced alerts notify again",
            )
        ]

    def run(self, values: Mapping[str, Any], ctx: ActionContext) -> dict[str, Any]:
        url = f"{base_url(ctx)}/api/v2/silence/{values['silence_id']}"
        state = call("GET", url)
        status = (state.get("status") or {}).get("state") if isinstance(state, dict) else None
        if status is None:
            raise ActionError(f"no silence {values['silence_id']!r}")
        if status != "expired":
            call("DELETE", url)
        return {"silence_id": values["silence_id"], "expired": True, "was": status}
