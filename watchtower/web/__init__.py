"""Watchtower's web app (Flask app factory): metrics, health, readiness and the status API."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, jsonify, redirect, url_for
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from watchtower.errors import StoreUnavailable
from watchtower.model import Result
from watchtower.runtime import Watchtower
from watchtower.scheduler import Scheduler
from watchtower.web import (
    access,
    alerts,
    auth,
    cutover,
    incidents,
    layout,
    rehearsal,
    runbooks,
    sandbox,
    sealing,
    status,
)
from watchtower.web.auth import require

# Every page satisfies it: no script at all, styles from our own files, SVG charts inline.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def create_app(watchtower: Watchtower, *, scheduler: Scheduler | None = None) -> Flask:
    app = Flask(__name__)
    app.extensions["watchtower"] = watchtower
    auth.init_app(app, watchtower.settings, ledger=watchtower.ledger)
    layout.init_app(app)  # the header, navigation and footer every page shares
    app.after_request(_security_headers)
    app.register_error_handler(StoreUnavailable, _store_unreachable)
    app.extensions["watchtower.scheduler"] = scheduler
    if scheduler is not None:
        sealing.schedule_sealing(scheduler, watchtower)
    app.extensions[cutover.EXTENSION] = watchtower.cutover
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.add_url_rule("/metrics", view_func=metrics)
    app.add_url_rule("/healthz", view_func=healthz)
    app.add_url_rule("/favicon.ico", view_func=favicon)
    app.add_url_rule("/readyz", view_func=readyz)
    app.add_url_rule("/api/v1/results", view_func=latest_results)
    app.register_blueprint(sandbox.bp)
    app.register_blueprint(rehearsal.bp)
    app.register_blueprint(status.bp)
    app.register_blueprint(incidents.bp)
    app.register_blueprint(alerts.bp)
    app.register_blueprint(runbooks.bp)
    app.register_blueprint(cutover.bp)
    return app


def _security_headers(response: Any) -> Any:
    if response.mimetype == "text/html":
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _watchtower() -> Watchtower:
    wt: Watchtower = current_app.extensions["watchtower"]
    return wt


@access.public
def metrics() -> Any:
    return (
        generate_latest(_watchtower().metrics.registry),
        200,
        {"Content-Type": CONTENT_TYPE_LATEST},
    )


def _store_unreachable(exc: StoreUnavailable) -> Any:
    """A store is down: say so (503, retry), never a bare 500. The one place it is mapped."""
    current_app.logger.warning("store unreachable: %s", exc)
    response = jsonify(
        {
            "error": {
                "code": "store_unreachable",
                "message": "the history store is unreachable; retry shortly",
            }
        }
    )
    response.status_code = 503
    response.headers["Retry-After"] = "5"
    return response


@access.public
def favicon() -> Any:
    return redirect(url_for("static", filename="favicon.svg"), code=301)


@access.public
def healthz() -> Any:
    """Liveness: the process serves requests."""
    return jsonify({"status": "ok"})


@access.public
def readyz() -> Any:
    """Readiness: the history store answers and, when scheduling here, the scheduler runs."""
    problems = []
    try:
        _watchtower().store.ping()
    except Exception as exc:
        problems.append(f"history store unreachable: {type(exc).__name__}")
    scheduler: Scheduler | None = current_app.extensions["watchtower.scheduler"]
    if scheduler is not None and not scheduler.running:
        problems.append("scheduler not running")
    body = {"status": "ok" if not problems else "not ready", "problems": problems}
    return jsonify(body), 200 if not problems else 503


@require("viewer")
def latest_results() -> Any:
    latest = _watchtower().store.latest()
    return jsonify({"results": [result_json(r) for r in latest.values()]})


def result_json(result: Result) -> dict[str, Any]:
    return {
        "name": result.name,
        "kind": result.kind,
        "status": result.status.value,
        "reason": result.reason,
        "observed_at": result.observed_at.isoformat(),
        "figures": result.figures,
        "thresholds": result.thresholds,
        "steps": [
            {"name": s.name, "ok": s.ok, "seconds": s.seconds, "reason": s.reason}
            for s in result.steps
        ],
        "duration_seconds": result.duration_seconds,
        "attempt": result.attempt,
    }
