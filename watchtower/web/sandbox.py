"""The sandbox's endpoints: what it simulates, and switching its scenario (operators only).

Served only when a sandbox runs in this process (`watchtower demo` attaches it to the app as
`app.extensions["watchtower.sandbox"]`); elsewhere they answer 404.

    GET  /api/v1/sandbox            the scenario, the scenarios, what is simulated, the endpoints
    POST /api/v1/sandbox/scenario   {"scenario": "cold-starts"} (JSON or form): switch to it
"""

from __future__ import annotations

from typing import Any, Protocol

from flask import Blueprint, current_app, jsonify, request

from watchtower.errors import ScenarioUnavailable, UnknownScenario
from watchtower.web.auth import require

EXTENSION = "watchtower.sandbox"


class SandboxControl(Protocol):
    def describe(self) -> dict[str, Any]: ...

    def switch_scenario(self, name: str) -> dict[str, Any]:
        """Switch and describe; raises UnknownScenario or ScenarioUnavailable."""


bp = Blueprint("sandbox", __name__, url_prefix="/api/v1/sandbox")


def _control() -> SandboxControl | None:
    control: SandboxControl | None = current_app.extensions.get(EXTENSION)
    return control


def _error(status: int, code: str, message: str) -> Any:
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    return response


def _no_sandbox() -> Any:
    return _error(404, "no_sandbox", "no sandbox runs here (start one with `watchtower demo`)")


@bp.get("")
@require("viewer")
def state() -> Any:
    control = _control()
    if control is None:
        return _no_sandbox()
    return jsonify(control.describe())


@bp.post("/scenario")
@require("operator")
def switch_scenario() -> Any:
    control = _control()
    if control is None:
        return _no_sandbox()
    body = request.get_json(silent=True) if request.is_json else None
    name = (body or {}).get("scenario") if isinstance(body, dict) else None
    name = name or request.form.get("scenario")
    if not isinstance(name, str) or not name:
        return _error(400, "missing_scenario", 'send {"scenario": "<name>"}')
    try:
        described = control.switch_scenario(name)
    except UnknownScenario as exc:
        return _error(400, "unknown_scenario", str(exc))
    except ScenarioUnavailable as exc:
        return _error(409, "scenario_unavailable", str(exc))
    return jsonify(described)
