"""`cutover.record_event`: write into the run's audit log that the cutover window opened (after
the dual-write flag flip) or that dual-write was rolled back.

This is the hook the cutover sign-off builds on: its window opens from this event. Until then the
record is the audit entry itself, with the window's start and end.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from watchtower.runbook.actions._aws import FUNCTION
from watchtower.runbook.actions.base import Action, ActionContext, register
from watchtower.runbook.model import ApiCall, Param

EVENTS = ("window_started", "rolled_back")


@register
class RecordCutoverEvent(Action):
    name = "cutover.record_event"
    title = "Record a cutover event"
    gated = False  # it changes only Watchtower's own records
    inputs = (
        Param(name="event", choices=EVENTS, required=True),
        Param(name="function", pattern=FUNCTION, required=True),
        Param(name="hours", type="integer", default=24, minimum=1, maximum=24 * 14),
        # With an alias: the versions of the flip (the window records them; a rollback reads them)
        Param(name="alias", pattern=r"[A-Za-z0-9_-]{0,128}", default=""),
        Param(name="previous_version", pattern=r"[0-9]{0,10}", default=""),
        Param(name="version", pattern=r"[0-9]{0,10}", default=""),
    )

    def _event(self, values: Mapping[str, Any], ctx: ActionContext) -> dict[str, Any]:
        event: dict[str, Any] = {
            "event": values["event"],
            "function": values["function"],
            "at": ctx.now.isoformat(),
        }
        for key in ("alias", "previous_version", "version"):
            if values[key]:
                event[key] = values[key]
        if values["event"] == "window_started":
            event["hours"] = values["hours"]
            event["ends_at"] = (ctx.now + timedelta(hours=values["hours"])).isoformat()
        return event

    def plan(self, values: Mapping[str, Any], ctx: ActionContext) -> list[ApiCall]:
        return [
            ApiCall(
                service="watchtower",
                operation="RecordCutoverEvent",
                parameters=self._event(values, ctx),
                note="an entry in this run's audit log",
            )
        ]

    def run(self, values: Mapping[str, Any], ctx: ActionContext) -> dict[str, Any]:
        event = self._event(values, ctx)
        ctx.record(f"cutover.{values['event']}", event)
        return event
