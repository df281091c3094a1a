"""Who is asking, and may they: viewers read, operators run and approve, admins administer.

A caller is identified by a bearer token (`Authorization: Bearer <secret>`), HTTP basic auth, the
name a trusted reverse proxy signed in (single sign-on, WATCHTOWER_TRUSTED_USER_HEADER), or the
session cookie set by the login form; secrets come from WATCHTOWER_USERS and are compared in
constant time.

The proxy's header is believed only when it is configured and only on a connection from one of
WATCHTOWER_TRUSTED_PROXIES; from anyone else it is ignored (and logged). The proxy says who; the
role comes from WATCHTOWER_PROXY_USERS (or WATCHTOWER_PROXY_DEFAULT_ROLE), never from a header.

Every state-changing form carries a CSRF token bound to the session. What a browser attaches by
itself can be abused by a page on another site: the session cookie, and the proxy's header too,
since the proxy adds it to every request the browser sends through it, forged ones included. So
both need the form's token. A request whose `Authorization` header holds a user's secret or the
webhook's token needs none: no cross-site form can add that header (and Watchtower never asks a
browser for basic auth, so no browser has credentials cached to attach). Any other
`Authorization` header, such as an access token the proxy passes on, proves nothing.
"""

from __future__ import annotations

import contextlib
import functools
import hmac
import ipaddress
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    g,
    jsonify,
    redirect,
    render_template_string,
    request,
    session,
    url_for,
)
from werkzeug.security import check_password_hash

from watchtower.config import ROLES, Settings

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_RANK = {role: n for n, role in enumerate(ROLES)}
_HASHED = ("pbkdf2:", "scrypt:")


@dataclass(frozen=True)
class User:
    name: str
    role: str
    via: str  # "token", "basic", "proxy", "session" or "anonymous"

    def can(self, role: str) -> bool:
        return _RANK[self.role] >= _RANK[role]


def init_app(app: Flask, settings: Settings) -> None:
    app.config["SECRET_KEY"] = settings.secret_key or secrets.token_hex(32)
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.public_url.startswith("https://"),
    )
    app.extensions["watchtower.settings"] = settings
    app.extensions["watchtower.trusted_proxies"] = tuple(
        ipaddress.ip_network(n) for n in settings.trusted_proxies
    )
    app.before_request(_check_csrf)
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.jinja_env.globals["current_user"] = current_user
    app.register_blueprint(bp)


def _settings() -> Settings:
    settings: Settings = current_app.extensions["watchtower.settings"]
    return settings


def _secret_matches(stored: str, offered: str) -> bool:
    if stored.startswith(_HASHED):
        return check_password_hash(stored, offered)
    return hmac.compare_digest(stored.encode(), offered.encode())


def authenticate(name: str | None, secret: str) -> User | None:
    """The user whose secret this is (and whose name, when one is given)."""
    found = None
    for user_name, role, stored in _settings().users:
        # Compare against every user, so timing does not tell which names exist.
        if _secret_matches(stored, secret) and (
            name is None or hmac.compare_digest(user_name.encode(), name.encode())
        ):
            found = User(user_name, role, "token" if name is None else "basic")
    return found


def current_user() -> User | None:
    if "user" in g:
        user: User | None = g.user
        return user
    user = None
    auth = request.authorization
    if auth is not None and auth.type == "bearer" and auth.token:
        user = authenticate(None, auth.token)
    elif auth is not None and auth.type == "basic" and auth.username and auth.password:
        user = authenticate(auth.username, auth.password)
    # An Authorization header that names nobody may be the proxy's own (an access token it
    # passes on): the proxy's header, then the cookie, still count.
    if user is None and (signed_in := proxy_user_name()) is not None:
        # The proxy's word settles who it is: no fall-back to a cookie someone else may have left.
        role = dict(_settings().proxy_users).get(signed_in, _settings().proxy_default_role)
        user = User(signed_in, role, "proxy") if role is not None else None
    elif user is None and "user" in session:
        name, role = session["user"]
        known = {u[0]: u[1] for u in _settings().users}
        if known.get(name) == role:  # a user removed from settings loses their session
            user = User(name, role, "session")
    if user is None and _settings().anonymous_role is not None:
        user = User("anonymous", _settings().anonymous_role or "viewer", "anonymous")
    g.user = user
    return user


def proxy_user_name() -> str | None:
    """The name the trusted reverse proxy signed in; None when the header is not configured, not
    sent, not from a trusted proxy, or not a name."""
    header = _settings().trusted_user_header
    if header is None or header not in request.headers:
        return None
    if "proxy_user" in g:
        found: str | None = g.proxy_user
        return found
    g.proxy_user = None
    if not _from_trusted_proxy(request.remote_addr):
        # Someone reached Watchtower around the proxy, or the proxy's address is not configured.
        log.warning(
            "ignored %s from %s, which is not in WATCHTOWER_TRUSTED_PROXIES",
            header,
            request.remote_addr,
        )
        return None
    raw = request.headers[header]
    with contextlib.suppress(UnicodeError):  # WSGI hands headers over as latin-1; proxies
        raw = raw.encode("latin-1").decode("utf-8")  # send names in UTF-8
    name = raw.strip()
    if not 0 < len(name) <= 256 or not name.isprintable():
        log.warning("ignored %s from %s: not a user name", header, request.remote_addr)
        return None
    g.proxy_user = name
    return name


def _from_trusted_proxy(address: str | None) -> bool:
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    networks: tuple[_Network, ...] = current_app.extensions["watchtower.trusted_proxies"]
    return any(ip in network for network in networks)


def require(role: str) -> Callable[[F], F]:
    """Allow the view to callers with at least `role`: 401 without a login, 403 below it."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            user = current_user()
            if user is None or (user.via == "anonymous" and not user.can(role)):
                if _wants_json():
                    return _json_error(401, "unauthenticated", "log in or send a bearer token")
                return redirect(url_for("auth.login", next=request.full_path))
            if not user.can(role):
                return _json_error(
                    403, "forbidden", f"this needs the {role} role; {user.name} is {user.role}"
                )
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    token: str = session["csrf"]
    return token


def _check_csrf() -> None:
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    if _carries_a_secret():
        return  # a header no cross-site form can add, holding what only its sender knows
    ambient = "user" in session or proxy_user_name() is not None
    if not ambient and request.endpoint != "auth.login":
        return  # no identity to abuse: `require` answers 401 where a login is needed
    expected = session.get("csrf")
    offered = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token")
    if not expected or not offered or not hmac.compare_digest(expected, offered):
        abort(400, description="the form's CSRF token is missing or stale; reload the page")


def _carries_a_secret() -> bool:
    """Whether the Authorization header holds a user's secret or the webhook's token, rather
    than, say, an access token the proxy passes on with every request, forged ones too."""
    user = current_user()
    if user is not None and user.via in ("token", "basic"):
        return True
    auth, hook = request.authorization, _settings().webhook_token
    if auth is None or auth.type != "bearer" or not auth.token or hook is None:
        return False
    return hmac.compare_digest(auth.token.encode(), hook.encode())


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def _json_error(status: int, code: str, message: str) -> Any:
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    return response


bp = Blueprint("auth", __name__)

_LOGIN = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Log in · Watchtower
</title><link rel="stylesheet" href="{{ url_for('static', filename='watchtower.css') }}"></head>
<body><main class="login"><h1>Log in</h1>
{% if error %}<p class="error" role="alert">{{ error }}</p>{% endif %}
<form method="post"><input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
<input type="hidden" name="next" value="{{ next }}">
<label>Name <input name="name" autocomplete="username" required></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required>
</label><button type="submit">Log in</button></form></main></body></html>"""


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    target = request.values.get("next") or "/"
    if not target.startswith("/") or target.startswith("//"):
        target = "/"  # never an open redirect
    error = None
    if request.method == "POST":
        user = authenticate(request.form.get("name", ""), request.form.get("password", ""))
        if user is not None:
            session.clear()
            session["user"] = (user.name, user.role)
            return redirect(target)
        error = "Unknown name or wrong password."
    return render_template_string(_LOGIN, error=error, next=target), 401 if error else 200


@bp.post("/logout")
def logout() -> Any:
    session.clear()
    return redirect("/")
