"""Incident history: a page per component and UTC day (each 90-day bar links to it), and
`/incidents`, the last 90 days' incidents newest first. No script.

A component's day is an incident when its rollup's worst reading was a warning or critical. The
day page lists what went wrong that day: the readings that were not ok with their reasons (from
the raw results while retention keeps them, else the day's worst reading from its rollup), the
alerts whose episode overlapped the day (with Alertmanager's generatorURL), the runbook
executions started that day with their outcome and approvers, and operators' public notes.

A note is short (at most NOTE_MAX characters), shown escaped, and append-only: each is stored
with who wrote it and when (the table is its own audit log) and logged as an audit line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import Blueprint, current_app, jsonify, redirect, render_template, request, url_for

from watchtower import status
from watchtower.model import Status
from watchtower.runtime import Watchtower, feeds_for
from watchtower.web.auth import current_user, require
from watchtower.web.status import gzipped

bp = Blueprint("incidents", __name__)
bp.after_request(gzipped)
audit = logging.getLogger("watchtower.audit")
NOTE_MAX = 280
PROBLEMS_MAX = 200


def _watchtower() -> Watchtower:
    wt: Watchtower = current_app.extensions["watchtower"]
    return wt


def _error(code: int, name: str, message: str) -> Any:
    response = jsonify({"error": {"code": name, "message": message}})
    response.status_code = code
    return response


@dataclass(frozen=True, kw_only=True)
class Incident:
    component: str
    title: str
    day: date
    worst: Status
    reason: str
    readings: int  # not ok that day


def _titles(wt: Watchtower) -> dict[str, str]:
    known = feeds_for(wt.settings, wt.probes, wt.checks)
    states = status.component_states(known, {}, wt.now())
    return {c.component.id: c.component.title for c in states}


@bp.get("/incidents")
@require("viewer")
def incidents() -> Any:
    wt = _watchtower()
    today = wt.now().date()
    titles = _titles(wt)
    by_day: dict[tuple[str, date], list[status.DayRollup]] = {}
    for r in wt.store.rollups(since=today - timedelta(days=status.DAYS - 1)):
        by_day.setdefault((r.component, r.day), []).append(r)
    found = []
    for (component, day), rows in by_day.items():
        worst = max(rows, key=lambda r: status.RANK[r.worst])
        if worst.worst not in (Status.WARNING, Status.CRITICAL):
            continue
        found.append(
            Incident(
                component=component,
                title=titles.get(component, component),
                day=day,
                worst=worst.worst,
                reason=worst.worst_reason,
                readings=sum(r.warning + r.critical for r in rows),
            )
        )
    found.sort(key=lambda i: (i.day, status.RANK[i.worst]), reverse=True)
    return render_template("incidents/list.html", incidents=found, now=wt.now(), status=status)


@dataclass(frozen=True, kw_only=True)
class Problem:
    at: datetime
    source: str
    status: Status
    reason: str


def _day_or_error(component: str, day: str) -> tuple[date | None, Any]:
    wt = _watchtower()
    if component not in _titles(wt):
        return None, _error(404, "unknown_component", f"no component {component!r}")
    try:
        parsed = date.fromisoformat(day)
    except ValueError:
        return None, _error(400, "bad_day", "the day must be a date, YYYY-MM-DD")
    if parsed > wt.now().date():
        return None, _error(404, "future_day", "that day has not happened yet")
    return parsed, None


@bp.get("/incidents/<component>/<day>")
@require("viewer")
def day_page(component: str, day: str) -> Any:
    wt = _watchtower()
    parsed, error = _day_or_error(component, day)
    if parsed is None:
        return error
    start = datetime(parsed.year, parsed.month, parsed.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    known = [f for f in feeds_for(wt.settings, wt.probes, wt.checks) if component in f.rows]
    problems = []
    for feed in known:
        for r in wt.store.problems(feed.name, since=start, until=end):
            reading = status.read(feed, r, component)
            if reading.status is not Status.OK:
                problems.append(
                    Problem(
                        at=r.observed_at,
                        source=feed.title,
                        status=reading.status,
                        reason=reading.reason,
                    )
                )
    problems.sort(key=lambda p: p.at)
    rollups = [
        r
        for r in wt.store.rollups(since=parsed, until=parsed + timedelta(days=1))
        if r.component == component
    ]
    summary = status.day_of(parsed, rollups, wt.now())
    executions = []
    for e in wt.runbooks.list(limit=500):
        began = e.started_at or e.created_at
        if start <= began < end:
            approvers = [
                f"{s.approval.decision} by {s.approval.decided_by}"
                for s in e.steps
                if s.approval is not None and s.approval.decided_by
            ]
            executions.append((e, approvers))
    user = current_user()
    return render_template(
        "incidents/day.html",
        component=component,
        title=_titles(wt)[component],
        day=parsed,
        summary=summary,
        rollups=rollups,
        problems=problems[-PROBLEMS_MAX:],
        more=max(0, len(problems) - PROBLEMS_MAX),
        alerts=wt.store.alerts_between(start, end),
        executions=executions,
        notes=wt.store.notes(component, parsed),
        can_note=user is not None and user.can("operator"),
        note_max=NOTE_MAX,
        status=status,
    )


@bp.post("/incidents/<component>/<day>/notes")
@require("operator")
def add_note(component: str, day: str) -> Any:
    wt = _watchtower()
    parsed, error = _day_or_error(component, day)
    if parsed is None:
        return error
    text = " ".join((request.form.get("note") or "").split())
    if not text:
        return _error(400, "empty_note", "the note is empty")
    if len(text) > NOTE_MAX:
        return _error(400, "note_too_long", f"a note is at most {NOTE_MAX} characters")
    user = current_user()
    author = user.name if user is not None else "unknown"
    wt.store.add_note(component, parsed, text, author=author, at=wt.now())
    audit.info("incident note added", extra={"component": component, "day": day, "author": author})
    return redirect(url_for("incidents.day_page", component=component, day=day), code=303)
