"""The runbooks' cutover events acted on: `disable-dual-write` opens a window, `rollback-dual-write`
closes it. A part of `CutoverService` (watchtower.cutover.service), split out to keep each class
small; every method takes `now`."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from watchtower.cutover.errors import Refused
from watchtower.cutover.model import CloseReason, iso, parse_iso
from watchtower.cutover.ports import RunbookEvent, RunbookEvents

if TYPE_CHECKING:
    from watchtower.cutover.service import CutoverService

log = logging.getLogger(__name__)


class RunbookSync:
    """Opens and closes the service's windows for the events the runbooks recorded."""

    def __init__(self, service: CutoverService, events: RunbookEvents) -> None:
        self.service = service
        self.store = service.store
        self.events = events

    def sync(self, *, now: datetime) -> list[str]:
        """Open and close windows for the runbooks' `cutover.record_event` steps.

        `disable-dual-write` records `window_started` once the function reads the flag off;
        `rollback-dual-write` records `rolled_back`. Each event is acted on once: the audit
        entry it leads to names it (`runbook_event`), and one that cannot be acted on (a window
        is open already, or it is too old) is recorded as skipped, with why.
        """
        try:
            events = self.events.cutover_events()
        except Exception:  # the runbook tables: a failure here must not stop the sampling
            log.exception("could not read the runbooks' cutover events")
            return []
        handled = {
            e.detail.get("runbook_event")
            for e in self.store.audit()
            if e.detail.get("runbook_event")
        }
        done = []
        for event in events:
            key = f"{event.execution_id}:{event.id}"
            if key in handled:
                continue
            done.append(self._act_on(event, key, now=now))
        return done

    def _act_on(self, event: RunbookEvent, key: str, *, now: datetime) -> str:
        at = parse_moment(event.detail["at"]) if event.detail.get("at") else event.at
        current = self.store.open_window()
        why = None
        if event.kind == "window_started":
            if current is not None:
                why = f"window {current.id} is still open"
            else:
                try:
                    window = self.service.open_window(
                        flipped_by=event.who,
                        at=at,
                        now=now,
                        via="runbook",
                        execution_id=event.execution_id,
                        runbook_event=key,
                        comment=versions_comment(event.detail),
                    )
                except Refused as exc:
                    why = str(exc)
                else:
                    return f"opened window {window.id}"
        elif event.kind == "rolled_back":
            if current is None or at < current.opened_at:
                why = "no cutover window was open"
            else:
                self.service.close(
                    current.id,
                    reason=CloseReason.ROLLED_BACK,
                    by=event.who,
                    at=at,
                    comment=f"rollback-dual-write run {event.execution_id}",
                    now=now,
                    runbook_event=key,
                )
                return f"closed window {current.id} as rolled back"
        else:
            why = f"unknown event {event.kind!r}"
        self.store.append(
            at=now,
            actor=event.who,
            action="runbook-event-skipped",
            detail={"runbook_event": key, "event": event.kind, "at": iso(at), "why": why},
        )
        return f"skipped {event.kind}: {why}"


def parse_moment(text: str) -> datetime:
    """A moment from a form or the command line: ISO 8601, UTC when no zone is given."""
    try:
        return parse_iso(text.strip())
    except ValueError:
        raise Refused(
            f"{text!r} is not a date and time (ISO 8601, e.g. 2026-06-01T10:03:27Z)"
        ) from None


def versions_comment(detail: Mapping[str, str]) -> str:
    """`alias live: version 3 -> 4` when the flip moved an alias (the versions it recorded)."""
    if not detail.get("alias") or not detail.get("version"):
        return ""
    return (
        f"alias {detail['alias']}: version {detail.get('previous_version') or '?'} "
        f"-> {detail['version']}"
    )
