"""The HTTP API (Flask app factory). JSON in and out; errors as {"error": {"code", "message"}}."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, Flask, current_app, g, jsonify, request
from werkzeug.exceptions import Forbidden, HTTPException

from image_core import idempotency
from image_core.app import Components, build
from image_core.config import USER_ID, Settings
from image_core.errors import (
    BadRequest,
    DependencyError,
    IdempotencyConflict,
    Overloaded,
    PayloadTooLarge,
    RequestError,
    Unauthenticated,
)
from image_core.openapi import document
from image_core.service import ImageService
from image_core.telemetry import Outcome

SYNTHETIC_HEADER = "X-Synthetic-Traffic"
USER_HEADER = "X-User-Id"
_MULTIPART_OVERHEAD = 64 * 1024
_OPERATIONS = {
    "images.upload": "upload",
    "images.get_image": "get",
    "images.list_images": "list",
    "images.delete_image": "delete",
}

bp = Blueprint("images", __name__)

# Who may reach each route: every view declares it (`view.access`), and `_gate` refuses an
# endpoint that does not, so a route added without a decision fails closed (tests/test_routes.py
# holds every route to a table). API Gateway names the caller; the API holds nothing else.
PUBLIC = "public"  # anyone: health, the API's description
USER = "user"  # a signed-in user of the product, who sees only their own images
LEVELS = (PUBLIC, USER)
_F = TypeVar("_F", bound=Callable[..., Any])


def public(view: _F) -> _F:
    view.access = PUBLIC  # type: ignore[attr-defined]
    return view


def signed_in(view: _F) -> _F:
    view.access = USER  # type: ignore[attr-defined]
    return view


def level_of(app: Flask, endpoint: str) -> str | None:
    """The declared access level of `endpoint`, or None when nobody decided."""
    level = getattr(app.view_functions.get(endpoint), "access", None)
    return level if level in LEVELS else None


def create_app(settings: Settings | None = None, components: Components | None = None) -> Flask:
    """Build the app; pass `components` to reuse clients, else they are built from `settings`."""
    if components is None:
        components = build(settings if settings is not None else Settings.from_env())
    app = Flask(__name__, static_folder=None)  # it serves no files: no /static route
    app.extensions["image_core"] = components
    # Werkzeug answers 413 as soon as the declared length is over, before reading the body.
    app.config["MAX_CONTENT_LENGTH"] = components.settings.max_bytes + _MULTIPART_OVERHEAD
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.register_blueprint(bp)
    app.before_request(_start_timer)
    app.before_request(_gate)
    app.after_request(_record_request)
    app.register_error_handler(RequestError, _request_error)
    app.register_error_handler(DependencyError, _dependency_error)
    app.register_error_handler(Overloaded, _overloaded)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
    return app


def _components() -> Components:
    components: Components = current_app.extensions["image_core"]
    return components


def _service() -> ImageService:
    return _components().service


# -- routes -----------------------------------------------------------------------------------


@bp.post("/images")
@signed_in
def upload() -> Any:
    settings = _components().settings
    user_id = _caller()
    key = idempotency.validate_key(
        request.headers.get("Idempotency-Key"), required=settings.require_idempotency_key
    )
    stored = request.files.get("file")
    if stored is None:
        raise BadRequest(
            "send the image as multipart/form-data in the field 'file'", code="missing_file"
        )
    data = stored.stream.read(settings.max_bytes + 1)
    if len(data) > settings.max_bytes:
        raise PayloadTooLarge(f"the file is over the limit of {settings.max_bytes} bytes")
    result = _service().upload(
        user_id=user_id, data=data, idempotency_key=key, synthetic=g.synthetic
    )
    response = jsonify(result.body)
    response.status_code = result.status
    response.headers["Location"] = f"/images/{result.body['id']}"
    if result.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@bp.get("/images/<image_id>")
@signed_in
def get_image(image_id: str) -> Any:
    return jsonify(_service().get(user_id=_caller(), image_id=image_id))


@bp.get("/images")
@signed_in
def list_images() -> Any:
    user_id = _caller()
    raw_limit = request.args.get("limit", "20")
    # isdigit() alone lets "²" through, which int() refuses.
    if not (raw_limit.isascii() and raw_limit.isdigit()) or not 1 <= int(raw_limit) <= 100:
        raise BadRequest("limit must be a whole number from 1 to 100", code="invalid_limit")
    cursor = request.args.get("cursor") or None
    return jsonify(_service().list(user_id=user_id, limit=int(raw_limit), cursor=cursor))


@bp.delete("/images/<image_id>")
@signed_in
def delete_image(image_id: str) -> Any:
    _service().delete(user_id=_caller(), image_id=image_id)
    return "", 204


@bp.get("/healthz")
@public
def healthz() -> Any:
    return jsonify({"status": "ok"})


@bp.get("/openapi.json")
@public
def openapi() -> Any:
    return jsonify(document())


# -- identity ---------------------------------------------------------------------------------


def _gate() -> None:
    """Refuse an endpoint without a declared level; name the caller of a user's route before
    its view reads anything (401 without one)."""
    endpoint = request.endpoint
    if endpoint is None:
        return  # no route matched: the 404 or 405 follows
    level = level_of(current_app, endpoint)
    if level is None:
        current_app.logger.error(
            "refused %s: endpoint %r declares no access", request.path, endpoint
        )
        raise Forbidden("this route declares no access level; nobody may reach it")
    if level == USER:
        _caller()


def _caller() -> str:
    if "caller" in g:  # named once per request (the gate, then the view)
        caller: str = g.caller
        return caller
    user_id = (
        _authorizer_user()
        or _bearer_user()
        or (request.headers.get(USER_HEADER) if _components().settings.trust_user_header else None)
    )
    if not user_id:
        raise Unauthenticated("no caller identity: sign in (API Gateway authorizer) first")
    if not USER_ID.fullmatch(user_id):
        raise BadRequest(
            "the caller's user id has characters outside A-Z a-z 0-9 _ . @ : + = -",
            code="invalid_user_id",
        )
    g.synthetic = _synthetic(user_id)
    g.caller = user_id
    return user_id


def _authorizer_user() -> str | None:
    context = request.environ.get("apig_wsgi.request_context") or {}
    authorizer = context.get("authorizer") or {}
    claims = (authorizer.get("jwt") or {}).get("claims") or {}
    lambda_ctx = authorizer.get("lambda") or {}
    user = claims.get("sub") or lambda_ctx.get("user_id") or lambda_ctx.get("sub")
    return str(user) if user else None


def _bearer_user() -> str | None:
    """Served as a server: a bearer JWT verified here (image_core/auth.py), when configured."""
    bearer = _components().bearer
    return bearer.user(request.headers.get("Authorization")) if bearer is not None else None


def _synthetic(user_id: str) -> bool:
    """Whether the request is the probe's: the header counts only from IMAGE_SYNTHETIC_USER_IDS.

    Anyone else's marker is ignored (their traffic stays in the user figures the upload_success
    check reads) and logged, naming the user only.
    """
    if request.headers.get(SYNTHETIC_HEADER, "").strip().lower() not in {"1", "true"}:
        return False
    if user_id in _components().settings.synthetic_user_ids:
        return True
    current_app.logger.warning(
        "%s ignored from user %r: not in IMAGE_SYNTHETIC_USER_IDS; counted as user traffic",
        SYNTHETIC_HEADER,
        user_id,
    )
    return False


# -- telemetry and errors ---------------------------------------------------------------------


def _start_timer() -> None:
    g.started = time.perf_counter()


def _record_request(response: Any) -> Any:
    operation = _OPERATIONS.get(request.endpoint or "")
    if operation is not None and "started" in g:
        status = response.status_code
        outcome: Outcome = (
            "success" if status < 400 else "client_error" if status < 500 else "server_error"
        )
        _components().telemetry.request(
            operation=operation,
            traffic="synthetic" if g.get("synthetic") else "user",
            outcome=outcome,
            seconds=time.perf_counter() - g.started,
            reason=g.get("error_code"),
        )
    return response


def _error(status: int, code: str, message: str) -> Any:
    g.error_code = code
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    return response


def _request_error(exc: RequestError) -> Any:
    response = _error(exc.status, exc.code, exc.message)
    if isinstance(exc, IdempotencyConflict):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def _dependency_error(exc: DependencyError) -> Any:
    current_app.logger.error("dependency failed: %s", exc)
    response = _error(
        exc.status,
        exc.code,
        f"a backing service is unavailable ({exc.reason}); nothing was stored, retry later",
    )
    response.headers["Retry-After"] = "1"
    return response


def _overloaded(exc: Overloaded) -> Any:
    current_app.logger.warning("upload refused: %s", exc.message)
    response = _error(exc.status, exc.code, exc.message)
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


def _http_error(exc: HTTPException) -> Any:
    status = exc.code or 500
    if status == 413:
        limit = _components().settings.max_bytes
        return _error(413, "payload_too_large", f"the request is over the limit of {limit} bytes")
    code = (exc.name or "error").lower().replace(" ", "_")
    return _error(status, code, exc.description or exc.name or "error")


def _unexpected_error(exc: Exception) -> Any:
    current_app.logger.exception("unexpected error")
    return _error(500, "internal_error", "an unexpected error happened; it has been logged")
