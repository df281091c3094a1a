"""The cutover rehearsal's endpoints: served only where `watchtower demo` attached a rehearsal
(`app.extensions["watchtower.rehearsal"]`); elsewhere they answer 404.

    GET  /api/v1/sandbox/rehearsal   the rehearsal settings and the current rehearsal's steps
    POST /api/v1/sandbox/rehearsal   {"inject": "legacy-writes"} or {} (JSON, or the /cutover
                                     page's form, which is sent back to /cutover): start one
"""

from __future__ import annotations

from typing import Any, Protocol

from flask import Blueprint, current_app, jsonify, redirect, request

from watchtower.errors import SandboxError
from watchtower.web.auth import require

EXTENSION = "watchtower.rehearsal"


class RehearsalControl(Protocol):
    def describe(self) -> dict[str, Any]: ...

    def start(self, inject: str | None = None) -> dict[str, Any]:
        """Start one; raises ValueError (bad input) or SandboxError (busy, or not a rehearsal)."""


bp = Blueprint("rehearsal", __name__, url_prefix="/api/v1/sandbox/rehearsal")


def _control() -> RehearsalControl | None:
    control: RehearsalControl | None = current_app.extensions.get(EXTENSION)
    return control


def _error(status: int, code: str, message: str) -> Any:
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    return response


@bp.get("")
@require("viewer")
def state() -> Any:
    control = _control()
    if control is None:
        return _error(404, "no_sandbox", "rehearsals run in the sandbox only (`watchtower demo`)")
    return jsonify(control.describe())


@bp.post("")
@require("operator")
def start() -> Any:
    control = _control()
    if control is None:
        return _error(404, "no_sandbox", "rehearsals run in the sandbox only (`watchtower demo`)")
    from_form = not request.is_json
    body = request.get_json(silent=True) if request.is_json else dict(request.form)
    if not isinstance(body, dict):
        return _error(400, "bad_body", 'send {"inject": "legacy-writes"} or {}')
    inject = body.get("inject") or None
    if inject is not None and not isinstance(inject, str):
        return _error(400, "bad_inject", "inject is a scenario name")
    try:
        described = control.start(inject)
    except ValueError as exc:
        return _error(400, "bad_inject", str(exc))
    except SandboxError as exc:
        return _error(409, "rehearsal_refused", str(exc))
    if from_form:
        return redirect("/cutover", code=303)
    return jsonify(described), 202


@bp.app_context_processor
def _rehearsal_context() -> dict[str, Any]:
    """`rehearsal` for the /cutover page's button: the settings and the current steps, or None."""
    control = _control()
    return {"rehearsal": control.describe() if control is not None else None}
