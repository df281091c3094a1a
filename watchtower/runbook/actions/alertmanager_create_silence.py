"""`alertmanager.create_silence`: silence the alerts a runbook knowingly sets off for a while.

A runbook that makes things worse before they get better (a cache invalidation lowers the hit
rate first) silences the alerts it would set off, through Alertmanager's API v2: equality
matchers (`name=value`), a duration, the creator `watchtower`, and a comment that names the
execution and links to it. Its compensation is `alertmanager.expire_silence` with
`${this.silence_id}`. Alertmanager's URL is WATCHTOWER_ALERTMANAGER_URL.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import urllib3

from watchtower.runbook.actions.base import Action, ActionContext, register
from watchtower.runbook.errors import ActionError, ParamError
from watchtower.runbook.model import ApiCall, Param

CREATOR = "watchtower"
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)=([^\s=]{1,200})")
MAX_MINUTES = 24 * 60
TIMEOUT = urllib3.Timeout(connect=2, read=10)


def base_url(ctx: ActionContext) -> str:
    url = getattr(ctx.settings, "alertmanager_url", None)
    if not url:
        raise ActionError("Alertmanager is not configured (WATCHTOWER_ALERTMANAGER_URL)")
    return str(url).rstrip("/")


def call(method: str, url: str, body: Any = None) -> Any:
    try:
        answer = urllib3.request(
            method,
            url,
            body=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            timeout=TIMEOUT,
            retries=False,
        )
    except urllib3.exceptions.HTTPError as exc:
        raise ActionError(f"Alertmanager did not answer: {type(exc).__name__}") from exc
    if answer.status >= 300:
        text = answer.data.decode(errors="replace")[:300]
        raise ActionError(f"Alertmanager answered {answer.status}: {text}")
    return answer.json() if answer.data else {}


@register
class CreateSilence(Action):
    name = "alertmanager.create_silence"
    title = "Silence alerts for a while (Alertmanager)"
    gated = False  # it pages nobody and changes no resource; it is expired on compensation
    inputs = (
        Param(name="matchers", type="list", pattern=MATCHER.pattern, required=True),
        Param(name="minutes", type="integer", default=30),
        Param(name="comment", default="", pattern=r"[^\x00-\x1f\x7f]{0,300}"),
        # The status page's component under maintenance meanwhile (its uptime excludes it).
        Param(name="component", default="", pattern=r"[a-z0-9_-]{0,64}"),
    )

    def check(self, values: dict[str, Any]) -> None:
        if not values["matchers"]:
            raise ParamError("matchers", "needs at least one name=value (a silence of all alerts)")
        if not 1 <= values["minutes"] <= MAX_MINUTES:
            raise ParamError("minutes", f"must be from 1 to {MAX_MINUTES}")

    def _silence(self, values: Mapping[str, Any], ctx: ActionContext) -> dict[str, Any]:
        link = f"{ctx.settings.public_url.rstrip('/')}/executions/{ctx.execution_id}"
        said = values["comment"] or "a runbook's planned change"
        return {
            "matchers": [
                {"name": n, "value": v, "isRegex": False, "isEqual": True}
                for n, v in (MATCHER.fullmatch(m).groups() for m in values["matchers"])  # type: ignore[union-attr]
            ],
            "startsAt": ctx.now.isoformat(),
            "endsAt": (ctx.now + timedelta(minutes=values["minutes"])).isoformat(),
            "createdBy": CREATOR,
            "comment": f"{said} (Watchtower execution {ctx.execution_id}: {link})",
        }

    def plan(self, values: Mapping[str, Any], ctx: ActionContext) -> list[ApiCall]:
        return [
            ApiCall(
                service="alertmanager",
                operation="POST /api/v2/silences",
                parameters=self._silence(values, ctx),
                note=f"silences those alerts for {values['minutes']} minutes",
            )
        ]

    def run(self, values: Mapping[str, Any], ctx: ActionContext) -> dict[str, Any]:
        silence = self._silence(values, ctx)
        answer = call("POST", f"{base_url(ctx)}/api/v2/silences", silence)
        silence_id = answer.get("silenceID") if isinstance(answer, dict) else None
        if not silence_id:
            raise ActionError(f"Alertmanager answered no silence id: {answer!r}")
        return {
            "silence_id": silence_id,
            "matchers": list(values["matchers"]),
            "starts_at": silence["startsAt"],
            "ends_at": silence["endsAt"],
            "component": values["component"],
        }
