"""Every route of both apps, held to the access level decided for it.

A new route fails here until it is added to the table below with a decision, and the apps
refuse a route that declares no level (403) whoever asks: Watchtower's levels are public, the
webhook's own token, viewer, operator and admin; the image API's are public and a signed-in
user. docs/security.md says why each public route is public.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from image_core import api as image_api
from image_core.app import Components
from watchtower.config import Settings
from watchtower.runtime import Watchtower, build
from watchtower.scheduler_main import create_app as scheduler_app
from watchtower.scheduler_main import create_intake_app
from watchtower.web import access, auth, create_app

GET, POST, GET_POST, DELETE = ("GET",), ("POST",), ("GET", "POST"), ("DELETE",)

# endpoint -> (rule, methods, access level)
WATCHTOWER_ROUTES: dict[str, tuple[str, tuple[str, ...], str]] = {
    # Anyone: the login form and logout (which ends only the caller's own session, with the
    # form's CSRF token), the orchestrator's probes, Prometheus' scrape, the stylesheets.
    "auth.login": ("/login", GET_POST, "public"),
    "auth.logout": ("/logout", POST, "public"),
    "healthz": ("/healthz", GET, "public"),
    "readyz": ("/readyz", GET, "public"),
    "metrics": ("/metrics", GET, "public"),
    "favicon": ("/favicon.ico", GET, "public"),
    "static": ("/static/<path:filename>", GET, "public"),
    # Alertmanager, with the webhook's own token.
    "alerts.receive": ("/api/v1/alerts", POST, "webhook"),
    # Reading: status, results, runbooks, executions, the cutover window and its reports.
    "status.page": ("/", GET, "viewer"),
    "status.api": ("/api/v1/status", GET, "viewer"),
    "latest_results": ("/api/v1/results", GET, "viewer"),
    "alerts.executions": ("/api/v1/executions", GET, "viewer"),
    "runbooks.index": ("/runbooks", GET, "viewer"),
    "runbooks.show": ("/runbooks/<runbook_id>", GET, "viewer"),
    "runbooks.executions": ("/executions", GET, "viewer"),
    "runbooks.execution": ("/executions/<execution_id>", GET, "viewer"),
    "cutover.page": ("/cutover", GET, "viewer"),
    "cutover.window_page": ("/cutover/windows/<window_id>", GET, "viewer"),
    "cutover.report": ("/cutover/windows/<window_id>/report", GET, "viewer"),
    "cutover.api": ("/api/v1/cutover", GET, "viewer"),
    "sandbox.state": ("/api/v1/sandbox", GET, "viewer"),
    "rehearsal.state": ("/api/v1/sandbox/rehearsal", GET, "viewer"),
    "alerts.notification": ("/alerts/notifications/<int:number>", GET, "viewer"),
    "incidents.incidents": ("/incidents", GET, "viewer"),
    "incidents.day_page": ("/incidents/<component>/<day>", GET, "viewer"),
    # Acting: runbooks, approvals, the cutover window, the sandbox's scenario.
    "runbooks.start": ("/runbooks/<runbook_id>/executions", POST, "operator"),
    "runbooks.approve": ("/executions/<execution_id>/approve", POST, "operator"),
    "runbooks.reject": ("/executions/<execution_id>/reject", POST, "operator"),
    "runbooks.cancel": ("/executions/<execution_id>/cancel", POST, "operator"),
    "cutover.preflight": ("/cutover/preflight", GET, "operator"),  # scans the DynamoDB table
    "cutover.open_window": ("/cutover/windows", POST, "operator"),
    "cutover.sign": ("/cutover/windows/<window_id>/signoffs", POST, "operator"),
    "cutover.rollback": ("/cutover/windows/<window_id>/rollback", POST, "operator"),
    "sandbox.switch_scenario": ("/api/v1/sandbox/scenario", POST, "operator"),
    "rehearsal.start": ("/api/v1/sandbox/rehearsal", POST, "operator"),
    "alerts.replay_page": ("/alerts/notifications/<int:number>/replay", POST, "operator"),
    "alerts.replay_api": ("/api/v1/notifications/<int:number>/replay", POST, "operator"),
    "incidents.add_note": ("/incidents/<component>/<day>/notes", POST, "operator"),
    # Administering: sign out everywhere.
    "auth.sessions_page": ("/sessions", GET_POST, "admin"),
}

IMAGE_API_ROUTES: dict[str, tuple[str, tuple[str, ...], str]] = {
    "images.healthz": ("/healthz", GET, "public"),
    "images.openapi": ("/openapi.json", GET, "public"),
    "images.upload": ("/images", POST, "user"),
    "images.list_images": ("/images", GET, "user"),
    "images.get_image": ("/images/<image_id>", GET, "user"),
    "images.delete_image": ("/images/<image_id>", DELETE, "user"),
}

# The scheduler's own app has no sign-in at all: everything on it must stay public.
SCHEDULER_ROUTES = {
    "metrics": "/metrics",
    "readyz": "/readyz",
    "healthz": "/healthz",
    "static": "/static/<path:filename>",  # over a folder that does not exist: always 404
}

# The intake's (`watchtower intake`) likewise.
INTAKE_ROUTES = {
    "metrics": "/metrics",
    "intake_healthz": "/healthz",
    "static": "/static/<path:filename>",  # over a folder that does not exist: always 404
}

ADMIN_TOKEN = "Ih4FvO0qQ3a2cT9xkZr8LmNw6PbYs1Ue5GdJtRfHpA7"


def _table(app: Flask, level_of: Callable[[Flask, str], str | None]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for rule in app.url_map.iter_rules():
        assert rule.endpoint not in found, f"{rule.endpoint} serves two rules: list both"
        methods = tuple(sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}))
        found[rule.endpoint] = (rule.rule, methods, level_of(app, rule.endpoint))
    return found


@pytest.fixture
def watchtower(tmp_path: Path) -> Iterator[Watchtower]:
    wt = build(
        Settings(
            database_url=f"sqlite:///{tmp_path / 'routes.sqlite'}",
            users=(("ada", "admin", ADMIN_TOKEN),),
            anonymous_role="viewer",
        )
    )
    yield wt
    wt.close()


def test_every_watchtower_route_has_its_decided_access_level(watchtower: Watchtower) -> None:
    found = _table(create_app(watchtower), access.level_of)
    assert set(found) - set(WATCHTOWER_ROUTES) == set(), "new routes: decide who may reach them"
    assert set(WATCHTOWER_ROUTES) - set(found) == set(), "routes gone: drop them from the table"
    assert found == WATCHTOWER_ROUTES


def test_the_webhook_level_is_exactly_the_routes_that_skip_user_sign_in(
    watchtower: Watchtower,
) -> None:
    found = _table(create_app(watchtower), access.level_of)
    webhook = {endpoint for endpoint, (_, _, level) in found.items() if level == access.WEBHOOK}
    assert webhook == set(auth.OWN_TOKEN_ENDPOINTS)


def test_every_image_api_route_has_its_decided_access_level(
    make_components: Callable[..., Components],
) -> None:
    app = image_api.create_app(components=make_components())
    assert _table(app, image_api.level_of) == IMAGE_API_ROUTES


def test_the_scheduler_app_serves_only_its_public_routes(watchtower: Watchtower) -> None:
    app = scheduler_app(watchtower, None)  # type: ignore[arg-type]
    assert {r.endpoint: r.rule for r in app.url_map.iter_rules()} == SCHEDULER_ROUTES


def test_the_intake_app_serves_only_its_public_routes(watchtower: Watchtower) -> None:
    app = create_intake_app(watchtower)
    assert {r.endpoint: r.rule for r in app.url_map.iter_rules()} == INTAKE_ROUTES


def test_a_watchtower_route_without_a_decision_is_refused_to_everyone(
    watchtower: Watchtower,
) -> None:
    app = create_app(watchtower)

    @app.get("/api/v1/forgotten")
    def forgotten() -> Any:  # declares nothing: nobody reaches it
        return {"leaked": True}

    client = app.test_client()
    for headers in ({}, {"Authorization": f"Bearer {ADMIN_TOKEN}"}):
        answer = client.get("/api/v1/forgotten", headers=headers)
        assert answer.status_code == 403
        assert answer.json["error"]["code"] == "undeclared_access"
    assert client.get("/healthz").status_code == 200  # declared routes still answer


def test_an_image_api_route_without_a_decision_is_refused_to_everyone(
    make_components: Callable[..., Components],
) -> None:
    app = image_api.create_app(components=make_components())

    @app.get("/forgotten")
    def forgotten() -> Any:
        return {"leaked": True}

    answer = app.test_client().get("/forgotten", headers={"X-User-Id": "alice"})
    assert answer.status_code == 403 and answer.json["error"]["code"] == "forbidden"
    assert app.test_client().get("/images", headers={}).status_code == 401
