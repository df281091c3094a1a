"""Alertmanager's webhook (`POST /api/v1/alerts`) and the executions it starts (`GET
/api/v1/executions`).

The webhook authenticates with the bearer token Alertmanager's `http_config` sends
(WATCHTOWER_WEBHOOK_TOKEN), reads at most WATCHTOWER_WEBHOOK_MAX_BYTES, and answers 202 as soon
as every alert is stored and handed to the runbook engine, which runs steps on its own worker.
A 5xx asks Alertmanager to retry; the retry starts nothing twice (the engine keys alert runs by
episode: runbook, fingerprint, startsAt), so a failure to start a runbook is answered 503. A
delivery of an episode whose run has ended is counted in watchtower_alerts_still_firing_total.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import logging
import threading
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.blueprints import BlueprintSetupState
from werkzeug.exceptions import RequestEntityTooLarge

from watchtower import alerting
from watchtower.config import Settings
from watchtower.errors import PayloadError
from watchtower.runbook.alert_records import Arrived
from watchtower.runbook.errors import NotificationNotFound, ParamError, RunbookError
from watchtower.runbook.intake import Intake
from watchtower.runbook.model import execution_json
from watchtower.runtime import Watchtower
from watchtower.web import access
from watchtower.web.auth import current_user, require

log = logging.getLogger(__name__)

bp = Blueprint("alerts", __name__)

MAX_LIST = 500
SLOTS = "watchtower.webhook.slots"
INTAKE = "watchtower.webhook.intake"


def _watchtower() -> Watchtower:
    wt: Watchtower = current_app.extensions["watchtower"]
    return wt


@bp.record_once
def _check_routes(state: BlueprintSetupState) -> None:
    """Say at start-up when a route names a runbook the engine does not have."""
    wt: Watchtower = state.app.extensions["watchtower"]
    state.app.extensions[SLOTS] = threading.BoundedSemaphore(wt.settings.webhook_max_in_flight)
    state.app.extensions[INTAKE] = wt.intake  # built by the composition root
    missing = alerting.unknown_runbooks(wt.settings.routes, wt.runbooks.runbooks)
    if missing:
        log.error(
            "alert routes name runbooks that do not exist: %s (known: %s); alerts routed to "
            "them are answered 503 and start nothing (WATCHTOWER_ROUTES_FILE)",
            ", ".join(missing),
            ", ".join(sorted(wt.runbooks.runbooks)) or "none",
        )


def _answer(status: int, outcome: str, body: dict[str, Any], **headers: str) -> Any:
    _watchtower().metrics.alert_notifications.labels(outcome).inc()
    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers)
    return response


def _error(status: int, outcome: str, message: str, **extra: Any) -> Any:
    headers = {"WWW-Authenticate": 'Bearer realm="watchtower"'} if status == 401 else {}
    return _answer(
        status, outcome, {"error": {"code": outcome, "message": message, **extra}}, **headers
    )


@bp.post("/api/v1/alerts")
@access.webhook  # its own token, checked here; never user sign-in
def receive() -> Any:
    wt = _watchtower()
    settings = wt.settings
    if settings.webhook_token is None:
        return _error(503, "unavailable", "the webhook is off: WATCHTOWER_WEBHOOK_TOKEN is not set")
    auth = request.authorization
    if auth is None or auth.type != "bearer" or not auth.token:
        return _error(401, "unauthenticated", "send the webhook token as a bearer token")
    if not hmac.compare_digest(auth.token.encode(), settings.webhook_token.encode()):
        return _error(403, "forbidden", "the bearer token is not the webhook token")
    slots: threading.BoundedSemaphore = current_app.extensions[SLOTS]
    if not slots.acquire(blocking=False):
        return _busy(settings.webhook_max_in_flight)
    try:
        return _receive(wt, settings)
    finally:
        slots.release()


def _busy(limit: int) -> Any:
    response = _error(503, "busy", f"more than {limit} notifications are in progress; retry")
    response.headers["Retry-After"] = "1"
    return response


def _receive(wt: Watchtower, settings: Settings) -> Any:
    request.max_content_length = settings.webhook_max_bytes
    try:
        body = request.get_data(cache=False)
    except RequestEntityTooLarge:
        return _error(
            413, "too_large", f"the body is larger than {settings.webhook_max_bytes} bytes"
        )
    try:
        notification = alerting.parse_notification(body)
    except PayloadError as exc:
        return _error(400, "malformed", str(exc), field=exc.field)
    if notification.truncated_alerts:
        log.warning(
            "Alertmanager left %d alerts out of a notification to %s (its max_alerts)",
            notification.truncated_alerts,
            notification.receiver,
        )
    if settings.webhook_deferred:
        return _defer(wt, body, notification)
    try:
        now = wt.now()
        kept = wt.runbooks.store.keep_notification(
            body.decode(json.detect_encoding(body)),
            received_at=now,
            receiver=notification.receiver,
            status=notification.status,
            alerts=len(notification.alerts),
        )
        done = alerting.dispatch(
            notification, routes=settings.routes, store=wt.store, runbooks=wt.runbooks, now=now
        )
    except Exception as exc:  # the store: Alertmanager keeps the notification and retries
        log.exception("could not store a notification of %d alerts", len(notification.alerts))
        return _error(503, "unavailable", f"alerts could not be stored: {type(exc).__name__}")
    for started in done.started:
        log.info(
            "alert %s (%s) -> runbook %s, %s: %s",
            started.alertname,
            started.fingerprint,
            started.runbook,
            started.mode,
            started.execution or "its episode already has its run",
        )
    for failed in done.failed:
        log.error(
            "alert %s: runbook %r did not start: %s",
            failed.fingerprint,
            failed.runbook,
            failed.error,
        )
    summary = {
        "notification": kept,
        "received": len(notification.alerts),
        "started": [dataclasses.asdict(s) for s in done.started],
        "resolved": list(done.resolved),
        "stale": list(done.stale),
    }
    if done.failed:
        return _answer(
            503,
            "failed",
            {
                **summary,
                "error": {"code": "failed", "message": "some runbooks did not start; retry"},
                "failed": [dataclasses.asdict(f) for f in done.failed],
            },
        )
    return _answer(202, "accepted", summary)


def _defer(wt: Watchtower, body: bytes, notification: alerting.Notification) -> Any:
    """One write (shared with the notifications arriving at the same time), then 202; the
    intake dispatches it from the store (WEBHOOK_DEFERRED)."""
    intake: Intake = current_app.extensions[INTAKE]
    arrived = Arrived(
        body=body.decode(json.detect_encoding(body)),
        received_at=wt.now(),
        receiver=notification.receiver,
        status=notification.status,
        alerts=len(notification.alerts),
    )
    try:
        kept = intake.keep(arrived)
    except Exception as exc:  # the store: Alertmanager keeps the notification and retries
        log.exception("could not store a notification of %d alerts", len(notification.alerts))
        return _error(503, "unavailable", f"alerts could not be stored: {type(exc).__name__}")
    intake.submit()
    return _answer(
        202,
        "accepted",
        {"notification": kept, "received": len(notification.alerts), "deferred": True},
    )


@bp.get("/api/v1/executions")
@require("viewer")
def executions() -> Any:
    """The newest executions first: runbook, status, the alert's fingerprint, each step's state."""
    raw = request.args.get("limit", "50")
    limit = int(raw) if raw.isascii() and raw.isdigit() else 0
    if not 1 <= limit <= MAX_LIST:
        message = f"limit must be a whole number from 1 to {MAX_LIST}"
        return jsonify({"error": {"code": "bad_request", "message": message}}), 400
    return jsonify({"executions": [execution_json(e) for e in _watchtower().runbooks.list(limit)]})


# -- stored notifications and replay ------------------------------------------------------------


def _stored(number: int) -> Any:
    try:
        stored = _watchtower().runbooks.store.notification(number)
    except NotificationNotFound:
        abort(404)
    return stored


@bp.get("/alerts/notifications/<int:number>")
@require("viewer")
def notification(number: int) -> Any:
    """A notification as Alertmanager sent it, its alerts, and what replaying it would start."""
    stored = _stored(number)
    parsed = alerting.parse_notification(stored.body.encode())
    routes = _watchtower().settings.routes
    alerts = [(a, alerting.select(routes, a.labels)) for a in parsed.alerts]
    user = current_user()
    return render_template(
        "alerts/notification.html",
        stored=stored,
        parsed=parsed,
        alerts=alerts,
        pretty=json.dumps(json.loads(stored.body), indent=2, sort_keys=True),
        can_operate=user is not None and user.can("operator"),
    )


def _replay(number: int) -> list[str]:
    wt = _watchtower()
    user = current_user()
    assert user is not None
    return wt.runbooks.replay(number, routes=wt.settings.routes, started_by=user.name)


@bp.post("/alerts/notifications/<int:number>/replay")
@require("operator")
def replay_page(number: int) -> Any:
    """The button: dry runs of the routes' runbooks from this notification's alerts."""
    _stored(number)
    try:
        started = _replay(number)
    except (ParamError, RunbookError) as exc:
        return render_template("alerts/replayed.html", number=number, error=str(exc)), 400
    if len(started) == 1:
        return redirect(url_for("runbooks.execution", execution_id=started[0]), 303)
    return render_template("alerts/replayed.html", number=number, started=started, error="")


@bp.post("/api/v1/notifications/<int:number>/replay")
@require("operator")
def replay_api(number: int) -> Any:
    """`{"dry_run": true}` only: a replay never changes anything."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or body.get("dry_run") is not True:
        message = 'send {"dry_run": true}: a replay is always a dry run'
        return jsonify({"error": {"code": "bad_request", "message": message}}), 400
    try:
        started = _replay(number)
    except NotificationNotFound as exc:
        return jsonify({"error": {"code": "not_found", "message": str(exc)}}), 404
    except (ParamError, RunbookError) as exc:
        return jsonify({"error": {"code": "refused", "message": str(exc)}}), 400
    return jsonify({"notification": number, "executions": started}), 201
