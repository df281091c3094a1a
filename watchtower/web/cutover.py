"""The cutover sign-off pages (`/cutover`): the live window, sign-offs, rollback, reports.

The web edge: it reads the clock (through the Watchtower) and the signed-in user, and hands them
to the cutover service. Viewers read; operators and admins sign, confirm a detected flip, start
the rollback runbook and record rollbacks, through CSRF-protected forms.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)

from watchtower.cutover.errors import NotSigner, NoWindow, Refused
from watchtower.cutover.markdown import preflight_markdown, window_markdown
from watchtower.cutover.model import CloseReason, iso
from watchtower.cutover.render import helpers
from watchtower.cutover.service import CutoverService, parse_moment
from watchtower.cutover.signing import Report
from watchtower.runtime import Watchtower
from watchtower.web.auth import current_user, require

EXTENSION = "watchtower.cutover"
REFRESH_SECONDS = 60
FORMATS = ("html", "md", "json")

bp = Blueprint("cutover", __name__)


def _service() -> CutoverService:
    service: CutoverService = current_app.extensions[EXTENSION]
    return service


def _wt() -> Watchtower:
    wt: Watchtower = current_app.extensions["watchtower"]
    return wt


def _can_operate() -> bool:
    user = current_user()
    return user is not None and user.via != "anonymous" and user.can("operator")


def _format() -> str:
    chosen = request.args.get("format", "html")
    if chosen not in FORMATS:
        abort(400, description=f"format must be one of {', '.join(FORMATS)}")
    return chosen


# -- the live window ----------------------------------------------------------------------------


@bp.get("/cutover")
@require("viewer")
def page() -> Any:
    return _page(None)


@bp.get("/cutover/windows/<window_id>")
@require("viewer")
def window_page(window_id: str) -> Any:
    return _page(window_id)


def _page(window_id: str | None, *, error: str = "", status: int = 200) -> Any:
    service = _service()
    now = _wt().now()
    windows = service.store.windows()
    report = None
    if windows:
        try:
            report = service.report(window_id, now=now)
        except NoWindow:
            abort(404, description=f"no cutover window {window_id!r}")
    elif window_id is not None:
        abort(404, description=f"no cutover window {window_id!r}")
    body = render_template(
        "cutover/page.html",
        report=report,
        doc=report.document if report else None,
        sha256=report.sha256 if report else None,
        frozen=report.frozen if report else False,
        verification=_verification(report),
        windows=windows,
        detected=service.detected_flip(now=now),
        can_operate=_can_operate(),
        signing=_signing(report),
        rollback_runbook=service.cutover.rollback_runbook,
        error=error,
        now=now,
        refresh_seconds=REFRESH_SECONDS,
        stylesheet=url_for("static", filename="watchtower.css"),
        h=helpers,
        iso=iso,
    )
    return body, status


def _signing(report: Report | None) -> dict[str, Any]:
    """What the signed-in user may sign here: the roles still open to them, or the role they
    signed already (one login, one role)."""
    user = current_user()
    if report is None or user is None or user.via == "anonymous":
        return {"roles": [], "signed_as": None}
    for s in report.document["signoffs"]:
        if str(s.get("user", "")).casefold() == user.name.casefold():
            return {"roles": [], "signed_as": s["role"]}
    cutover = _service().cutover
    roles = [
        role
        for role in report.document["missing_roles"]
        if (allowed := cutover.allowed_signers(role)) is None or user.name in allowed
    ]
    return {"roles": roles, "signed_as": None}


def _verification(report: Report | None) -> dict[str, Any] | None:
    if report is None or report.verification is None:
        return None
    return {"ok": report.verification.ok, "problems": list(report.verification.problems)}


@bp.get("/api/v1/cutover")
@require("viewer")
def api() -> Any:
    service = _service()
    now = _wt().now()
    detected = service.detected_flip(now=now)
    body: dict[str, Any] = {
        "detected_flip": {"last_on": iso(detected.last_on), "first_off": iso(detected.first_off)}
        if detected
        else None,
        "window": None,
    }
    try:
        report = service.report(now=now)
    except NoWindow:
        return jsonify(body)
    body["window"] = {
        "frozen": report.frozen,
        "sha256": report.sha256,
        "verification": _verification(report),
        "document": report.document,
    }
    return jsonify(body)


# -- reports ------------------------------------------------------------------------------------


@bp.get("/cutover/windows/<window_id>/report")
@require("viewer")
def report(window_id: str) -> Any:
    chosen = _format()
    try:
        found = _service().report(window_id, now=_wt().now())
    except NoWindow:
        abort(404, description=f"no cutover window {window_id!r}")
    verification = _verification(found)
    if chosen == "json":
        return jsonify(
            {
                "sha256": found.sha256,
                "frozen": found.frozen,
                "verification": verification,
                "document": found.document,
            }
        )
    if chosen == "md":
        text = window_markdown(
            found.document, sha256=found.sha256, frozen=found.frozen, verification=verification
        )
        return _download(text, "text/markdown", f"cutover-{window_id[:8]}.md")
    return render_template(
        "cutover/standalone.html",
        body="cutover/_window.html",
        title="Cutover sign-off report",
        stylesheet=url_for("static", filename="watchtower.css"),
        doc=found.document,
        sha256=found.sha256,
        frozen=found.frozen,
        verification=verification,
        h=helpers,
    )


def _download(text: str, mimetype: str, filename: str) -> Response:
    response = Response(text, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'inline; filename="{filename}"'
    return response


@bp.get("/cutover/preflight")
@require("operator")  # it scans the DynamoDB table: not for every anonymous page view
def preflight() -> Any:
    chosen = _format()
    days_raw = request.args.get("days", "")
    days = None
    if days_raw:
        if not days_raw.isdigit() or not 1 <= int(days_raw) <= 14:
            abort(400, description="days must be a whole number from 1 to 14")
        days = int(days_raw)
    result = _service().preflight(now=_wt().now(), days=days)
    if chosen == "json":
        return jsonify(result.document)
    if chosen == "md":
        return _download(preflight_markdown(result.document), "text/markdown", "preflight.md")
    return render_template(
        "cutover/preflight.html",
        pre=result.document,
        h=helpers,
        stylesheet=url_for("static", filename="watchtower.css"),
    )


# -- changes (operators) ------------------------------------------------------------------------


def _user_name() -> str:
    user = current_user()
    assert user is not None
    return user.name


@bp.post("/cutover/windows")
@require("operator")
def open_window() -> Any:
    """Confirm a flip the dual_write check detected, and open its window."""
    service = _service()
    now = _wt().now()
    try:
        at = parse_moment(request.form.get("at", ""))
        window = service.open_window(
            flipped_by=request.form.get("flipped_by", "").strip()
            or "unknown (seen by the dual_write check)",
            at=at,
            now=now,
            via="detected",
            confirmed_by=_user_name(),
            comment=request.form.get("comment", ""),
        )
    except Refused as exc:
        return _page(None, error=str(exc), status=400)
    return redirect(url_for("cutover.window_page", window_id=window.id), 303)


@bp.post("/cutover/windows/<window_id>/signoffs")
@require("operator")
def sign(window_id: str) -> Any:
    """Sign as the signed-in login (the typed name is only shown): one role per login."""
    user = current_user()
    assert user is not None
    if user.via == "anonymous":  # WATCHTOWER_ANONYMOUS_ROLE=operator signs nobody in
        return _refused(
            window_id,
            403,
            "sign_in_required",
            "sign in to sign off: a sign-off "
            "records who signed, and an anonymous visitor is nobody",
        )
    try:
        _service().sign(
            window_id,
            name=request.form.get("name", ""),
            role=request.form.get("role", ""),
            comment=request.form.get("comment", ""),
            user=user.name,
            via=user.via,
            now=_wt().now(),
        )
    except NoWindow:
        abort(404, description=f"no cutover window {window_id!r}")
    except NotSigner as exc:
        return _refused(window_id, 403, "not_a_signer", str(exc))
    except Refused as exc:
        return _refused(window_id, 409, "refused", str(exc))
    return redirect(url_for("cutover.window_page", window_id=window_id), 303)


def _refused(window_id: str, status: int, code: str, message: str) -> Any:
    """A refused sign-off: JSON to a client that asks for it, else the page saying why."""
    if request.accept_mimetypes.best == "application/json":
        return jsonify({"error": {"code": code, "message": message}}), status
    return _page(window_id, error=f"Not signed: {message}", status=status)


@bp.post("/cutover/windows/<window_id>/rollback")
@require("operator")
def rollback(window_id: str) -> Any:
    """Record a rollback done outside the rollback runbook (the runbook records its own)."""
    service = _service()
    now = _wt().now()
    try:
        at_raw = request.form.get("at", "").strip()
        service.close(
            window_id,
            reason=CloseReason.ROLLED_BACK,
            by=_user_name(),
            at=parse_moment(at_raw) if at_raw else now,
            comment=request.form.get("reason", ""),
            now=now,
        )
    except NoWindow:
        abort(404, description=f"no cutover window {window_id!r}")
    except Refused as exc:
        return _page(window_id, error=f"Not recorded: {exc}", status=409)
    return redirect(url_for("cutover.window_page", window_id=window_id), 303)
