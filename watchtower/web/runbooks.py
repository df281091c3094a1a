"""Runbooks and their executions as HTML: read by anyone who may view, run and decided on by
operators. The pages use no script and no inline style (the app's CSP forbids both); a running
execution's page refreshes itself with a meta refresh."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for

from watchtower.runbook.engine import Engine, needs_approval
from watchtower.runbook.errors import (
    ExecutionNotFound,
    ExpressionError,
    ParamError,
    Refused,
    UnknownRunbook,
)
from watchtower.runbook.model import Execution, ExecutionStatus, Runbook, StepRun
from watchtower.runbook.render import document, prose
from watchtower.web.auth import current_user, require

bp = Blueprint("runbooks", __name__)
REFRESH_SECONDS = 3


@bp.app_template_filter("pretty")
def pretty(value: Any) -> str:
    """Data as indented JSON, for people; the template's autoescape makes it safe HTML."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _engine() -> Engine:
    engine: Engine = current_app.extensions["watchtower"].runbooks
    return engine


def _runbook(runbook_id: str) -> Runbook:
    try:
        return _engine().runbook(runbook_id)
    except UnknownRunbook:
        abort(404, description=f"no runbook {runbook_id!r}")


def _can_operate() -> bool:
    user = current_user()
    return user is not None and user.can("operator")


@bp.get("/runbooks")
@require("viewer")
def index() -> Any:
    engine = _engine()
    latest: dict[str, Execution] = {}
    for execution in engine.list(200):
        latest.setdefault(execution.runbook_id, execution)
    return render_template(
        "runbooks/list.html",
        runbooks=sorted(engine.runbooks.values(), key=lambda r: r.title),
        latest=latest,
        problems=engine.problems,
    )


@bp.get("/runbooks/<runbook_id>")
@require("viewer")
def show(runbook_id: str) -> Any:
    return _show(_runbook(runbook_id))


def _show(runbook: Runbook, *, error: str = "", form: dict[str, str] | None = None) -> Any:
    engine = _engine()
    recent = engine.list(10, runbook_id=runbook.id)
    latest = recent[0] if recent else None
    results: dict[str, StepRun] = {s.step_id: s for s in latest.steps} if latest else {}
    page = render_template(
        "runbooks/runbook.html",
        runbook=runbook,
        segments=document(runbook),
        results=results,
        latest=latest,
        recent=recent,
        can_operate=_can_operate(),
        defaults=engine.defaults(runbook),
        actions=engine.catalog.actions,
        needs_approval=needs_approval,
        prose=prose,
        error=error,
        form=form or {},
    )
    return page, 400 if error else 200


@bp.post("/runbooks/<runbook_id>/executions")
@require("operator")
def start(runbook_id: str) -> Any:
    runbook = _runbook(runbook_id)
    user = current_user()
    assert user is not None
    given = {p.name: request.form.get(f"param.{p.name}", "").strip() for p in runbook.params}
    try:
        execution_id = _engine().start(
            runbook.id,
            params={k: v for k, v in given.items() if v},
            started_by=user.name,
            dry_run=request.form.get("dry_run") == "1",
        )
    except (ParamError, ExpressionError) as exc:  # a default or the lock over these params
        return _show(runbook, error=str(exc), form=given)
    return redirect(url_for("runbooks.execution", execution_id=execution_id), 303)


@bp.get("/executions")
@require("viewer")
def executions() -> Any:
    return render_template("runbooks/executions.html", executions=_engine().list(100))


@bp.get("/executions/<execution_id>")
@require("viewer")
def execution(execution_id: str) -> Any:
    return _execution(execution_id)


def _execution(execution_id: str, *, error: str = "") -> Any:
    engine = _engine()
    try:
        run = engine.get(execution_id)
    except ExecutionNotFound:
        abort(404, description=f"no execution {execution_id!r}")
    runbook = engine.runbooks.get(run.runbook_id)
    user = current_user()
    waiting = run.waiting_step
    page = render_template(
        "runbooks/execution.html",
        run=run,
        runbook=runbook,
        waiting=waiting,
        evidence=run.evidence(),
        audit=engine.audit(run.id),
        can_operate=_can_operate(),
        self_approval=bool(
            waiting is not None
            and waiting.kind != "manual"
            and run.mode == "manual"
            and user is not None
            and user.name == run.started_by
        ),
        refresh=REFRESH_SECONDS if not run.status.final else None,
        waiting_status=ExecutionStatus.WAITING,
        error=error,
    )
    return page, 409 if error else 200


def _decide(execution_id: str, decision: str) -> Any:
    user = current_user()
    assert user is not None
    engine = _engine()
    comment = request.form.get("comment", "").strip()[:2000]
    try:
        if decision == "approve":
            engine.approve(execution_id, by=user.name, comment=comment)
        elif decision == "reject":
            engine.reject(execution_id, by=user.name, comment=comment)
        else:
            engine.cancel(execution_id, by=user.name, comment=comment)
    except ExecutionNotFound:
        abort(404, description=f"no execution {execution_id!r}")
    except Refused as exc:
        return _execution(execution_id, error=str(exc))
    return redirect(url_for("runbooks.execution", execution_id=execution_id), 303)


@bp.post("/executions/<execution_id>/approve")
@require("operator")
def approve(execution_id: str) -> Any:
    return _decide(execution_id, "approve")


@bp.post("/executions/<execution_id>/reject")
@require("operator")
def reject(execution_id: str) -> Any:
    return _decide(execution_id, "reject")


@bp.post("/executions/<execution_id>/cancel")
@require("operator")
def cancel(execution_id: str) -> Any:
    return _decide(execution_id, "cancel")
