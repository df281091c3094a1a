"""Who is asking, and may they: viewers read, operators run and approve, admins administer.

A caller is identified by a bearer token (`Authorization: Bearer <secret>`), HTTP basic auth, the
name a trusted reverse proxy signed in (single sign-on, WATCHTOWER_TRUSTED_USER_HEADER), or the
session cookie set by the login form; secrets come from WATCHTOWER_USERS and are compared in
constant time.

The proxy's header is believed only when it is configured and only on a connection from one of
WATCHTOWER_TRUSTED_PROXIES; from anyone else it is ignored (and logged). The proxy says who; the
role comes from WATCHTOWER_PROXY_USERS (or WATCHTOWER_PROXY_DEFAULT_ROLE), never from a header.

Every route declares who may reach it (watchtower.web.access: `require(role)` declares too);
a gate before every request holds the caller to that level and refuses a route that declares
none, so a route added without a decision reaches nobody.

Every state-changing form carries a CSRF token bound to the session. What a browser attaches by
itself can be abused by a page on another site: the session cookie, and the proxy's header too,
since the proxy adds it to every request the browser sends through it, forged ones included. So
both need the form's token. A request whose `Authorization` header holds a user's secret or the
webhook's token needs none: no cross-site form can add that header (and Watchtower never asks a
browser for basic auth, so no browser has credentials cached to attach). Any other
`Authorization` header, such as an access token the proxy passes on, proves nothing.

Sign-in costs are bounded (docs/security.md): a bearer token is looked up by its digest, never
through a password hash (watchtower.web.accounts); a password is checked for the one user it
names, and failed ones are limited per name and address (watchtower.web.throttle). A login
session can be ended from the server (watchtower.web.sessions). Alertmanager's webhook has its
own token and never runs user authentication. Every body but the webhook's is limited to
WATCHTOWER_MAX_BODY_BYTES before anything reads it, and `next` after a login is only ever a
path on this site.
"""

from __future__ import annotations

import contextlib
import functools
import hmac
import io
import ipaddress
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

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
from werkzeug.exceptions import RequestEntityTooLarge

from watchtower.config import ROLES, Settings
from watchtower.ledger import Ledger, LedgerUnavailable, MemoryLedger
from watchtower.web import access
from watchtower.web.accounts import Account, Accounts
from watchtower.web.sessions import Sessions
from watchtower.web.throttle import SigninThrottle

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_RANK = {role: n for n, role in enumerate(ROLES)}
# Routes that authenticate with their own token and never run user authentication (nor CSRF,
# which no cross-site form passes without that token), and read their bodies under own limits.
OWN_TOKEN_ENDPOINTS = frozenset({"alerts.receive"})


@dataclass(frozen=True)
class User:
    name: str
    role: str
    via: str  # "token", "basic", "proxy", "session" or "anonymous"

    def can(self, role: str) -> bool:
        return _RANK[self.role] >= _RANK[role]


def init_app(app: Flask, settings: Settings, *, ledger: Ledger | None = None) -> None:
    """Sign-in for `app`. `ledger` holds sign-in limits and ended sessions: the composition root
    hands in the Watchtower's (Redis at WATCHTOWER_REDIS_URL, shared by replicas); without one,
    this process's memory."""
    app.config["SECRET_KEY"] = settings.secret_key or secrets.token_hex(32)
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.public_url.startswith("https://"),
        MAX_CONTENT_LENGTH=settings.max_body_bytes,  # bodies without a Content-Length too
    )
    app.extensions["watchtower.settings"] = settings
    app.extensions["watchtower.trusted_proxies"] = tuple(
        ipaddress.ip_network(n) for n in settings.trusted_proxies
    )
    wt = app.extensions.get("watchtower")
    if ledger is None:
        ledger = MemoryLedger()
    accounts = app.extensions["watchtower.accounts"] = Accounts(settings.users)
    app.extensions["watchtower.throttle"] = SigninThrottle(
        ledger,
        per_name=settings.signin_max_failures,
        per_address=settings.signin_max_failures_per_address,
        window=settings.signin_window_seconds,
        counter=wt.metrics.signins if wt is not None else None,
        known=lambda name: accounts.get(name) is not None,
    )
    app.extensions["watchtower.sessions"] = Sessions(
        ledger,
        key=app.config["SECRET_KEY"].encode(),
        idle_seconds=settings.session_idle_seconds,
        max_age_seconds=int(app.permanent_session_lifetime.total_seconds()),
        clock=(lambda: wt.clock()) if wt is not None else time.time,
    )
    app.before_request(_limit_body)  # first: nothing may read a body before it
    app.before_request(_check_csrf)
    app.before_request(_gate)  # every endpoint declares who may reach it, or it is refused
    access.declare_endpoint(app, "static", access.PUBLIC)
    app.register_error_handler(RequestEntityTooLarge, _too_large)
    app.register_error_handler(LedgerUnavailable, _ledger_unavailable)
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.jinja_env.globals["current_user"] = current_user
    app.register_blueprint(bp)


def _settings() -> Settings:
    settings: Settings = current_app.extensions["watchtower.settings"]
    return settings


def _accounts() -> Accounts:
    accounts: Accounts = current_app.extensions["watchtower.accounts"]
    return accounts


def _sessions() -> Sessions:
    sessions: Sessions = current_app.extensions["watchtower.sessions"]
    return sessions


def authenticate(name: str | None, secret: str) -> User | None:
    """The user whose bearer token this is (no name), or whose password (with the name).

    A password is checked only while the throttle allows the name and address (else 429)."""
    if name is None:
        account = _accounts().by_token(secret)
        return User(account.name, account.role, "token") if account is not None else None
    account = _password_signin(name, secret, "basic")
    return User(account.name, account.role, "basic") if account is not None else None


def _password_signin(name: str, password: str, via: str) -> Account | None:
    throttle: SigninThrottle = current_app.extensions["watchtower.throttle"]
    address = request.remote_addr or "unknown"
    retry = throttle.retry_after(name, address, via)
    if retry is not None:
        raise _Throttled(retry)
    account = _accounts().by_password(name, password)
    if account is None:
        throttle.failed(name, address, via)
    else:
        throttle.succeeded(name, via)
    return account


class _Throttled(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


def _too_many(retry_after: int) -> Any:
    response = _json_error(
        429, "too_many_sign_ins", f"too many failed sign-ins; retry in {retry_after} s"
    )
    response.headers["Retry-After"] = str(retry_after)
    return response


def current_user() -> User | None:
    if "user" in g:
        user: User | None = g.user
        return user
    user = None
    auth = request.authorization
    if auth is not None and auth.type == "bearer" and auth.token:
        user = authenticate(None, auth.token)
    elif auth is not None and auth.type == "basic" and auth.username and auth.password:
        try:
            user = authenticate(auth.username, auth.password)
        except _Throttled as exc:
            abort(_too_many(exc.retry_after))
    # An Authorization header that names nobody may be the proxy's own (an access token it
    # passes on): the proxy's header, then the cookie, still count.
    if user is None and (signed_in := proxy_user_name()) is not None:
        # The proxy's word settles who it is: no fall-back to a cookie someone else may have left.
        role = dict(_settings().proxy_users).get(signed_in, _settings().proxy_default_role)
        user = User(signed_in, role, "proxy") if role is not None else None
    elif user is None and "user" in session:
        # Ended (logout, sign out everywhere, idle), or issued under another secret or role: out.
        account = _sessions().resume(session, _accounts())
        user = User(account.name, account.role, "session") if account is not None else None
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
    """Allow the view to callers with at least `role`: 401 without a login, 403 below it.

    It declares the view's access level too (watchtower.web.access)."""
    if role not in ROLES:
        raise ValueError(f"{role!r} is not a role ({', '.join(ROLES)})")

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            refusal = _refusal(role)
            if refusal is not None:
                return refusal
            return view(*args, **kwargs)

        return access.declare(wrapper, role)  # type: ignore[return-value]

    return decorate


def _refusal(role: str) -> Any:
    """None when the caller has at least `role`; else the answer: 401 (a page: the login form)
    without a login, 403 below it."""
    user = current_user()
    if user is None or (user.via == "anonymous" and not user.can(role)):
        if _wants_json():
            return _json_error(401, "unauthenticated", "log in or send a bearer token")
        return redirect(url_for("auth.login", next=request.full_path))
    if not user.can(role):
        return _json_error(
            403, "forbidden", f"this needs the {role} role; {user.name} is {user.role}"
        )
    return None


def _gate() -> Any:
    """Before every view: refuse an endpoint that declares no access level (fail closed), and
    hold a declared role here too, whatever the view does. Public and webhook views pass: the
    webhook checks its own token and never runs user authentication."""
    endpoint = request.endpoint
    if endpoint is None:
        return None  # no route matched: the 404 or 405 follows
    level = access.level_of(current_app, endpoint)
    if level is None:
        log.error(
            "refused %s %s: endpoint %r declares no access level",
            request.method,
            request.path,
            endpoint,
        )
        return _json_error(
            403, "undeclared_access", "this route declares no access level; nobody may reach it"
        )
    if level in (access.PUBLIC, access.WEBHOOK):
        return None
    return _refusal(level)


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    token: str = session["csrf"]
    return token


def _limit_body() -> Any:
    """413 for a body over WATCHTOWER_MAX_BODY_BYTES before any of it is parsed: told by its
    Content-Length, or, sent in chunks without one, by reading at most one byte past the limit
    (werkzeug would cut such a form off at the limit and parse the rest silently)."""
    if request.endpoint in OWN_TOKEN_ENDPOINTS:
        return None  # the webhook reads its body under its own, larger limit
    limit = _settings().max_body_bytes
    length = request.content_length
    if length is not None and length > limit:
        return _too_large(None)
    if length is None and request.environ.get("wsgi.input_terminated"):
        body = request.environ["wsgi.input"].read(limit + 1)
        if len(body) > limit:
            return _too_large(None)
        request.environ.update({"wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))})
    return None


def _ledger_unavailable(_: LedgerUnavailable) -> Any:
    response = _json_error(503, "unavailable", "sign-in checks are unavailable; retry shortly")
    response.headers["Retry-After"] = "5"
    return response


def _too_large(_: Exception | None) -> Any:
    limit = request.max_content_length or _settings().max_body_bytes
    return _json_error(413, "too_large", f"the body is larger than {limit} bytes")


def _check_csrf() -> None:
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    if request.endpoint in OWN_TOKEN_ENDPOINTS:
        return  # its own token, which no cross-site form can send; no user authentication
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

_LOGIN = """{% extends "base.html" %}{% block title %}Sign in{% endblock %}{% block body %}
<main class="login"><h1>Sign in</h1>
{% if error %}<p class="error" role="alert">{{ error }}</p>{% endif %}
<form method="post"><input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
<input type="hidden" name="next" value="{{ next }}">
<label>Name <input name="name" autocomplete="username" required></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required>
</label><button type="submit">Sign in</button></form></main>{% endblock %}"""


def safe_next(raw: str | None) -> str:
    """`raw` when it is a path on this site, else "/": one leading slash, no scheme or host, no
    backslash, whitespace or control character, as sent nor in its path percent-decoded (a
    browser drops a tab or newline, making `/%09/evil.example` the host `//evil.example`). Its
    query may hold an encoded space: it cannot move the host."""
    if not raw:
        return "/"
    seen, candidate = [raw], raw
    for _ in range(3):  # a double-encoded "%2509" is a tab to whoever decodes twice
        candidate = unquote(candidate.split("?", 1)[0].split("#", 1)[0])
        seen.append(candidate)
    for text in seen:
        if not text.startswith("/") or text.startswith("//") or "\\" in text:
            return "/"
        if any(c.isspace() or not c.isprintable() for c in text):
            return "/"
        parts = urlsplit(text)
        if parts.scheme or parts.netloc:
            return "/"
    return raw


@bp.route("/login", methods=["GET", "POST"])
@access.public
def login() -> Any:
    target = safe_next(request.values.get("next"))  # never an open redirect
    error, status, headers = None, 200, {}
    if request.method == "POST":
        try:
            account = _password_signin(
                request.form.get("name", ""), request.form.get("password", ""), "form"
            )
        except _Throttled as exc:
            error = f"Too many failed sign-ins; try again in {exc.retry_after} seconds."
            status, headers = 429, {"Retry-After": str(exc.retry_after)}
        else:
            if account is not None:
                _sessions().start(session, account)
                return redirect(target)
            error, status = "Unknown name or wrong password.", 401
    return render_template_string(_LOGIN, error=error, next=target), status, headers


@bp.post("/logout")
@access.public  # ending one's own session needs no role; with a session, the form's CSRF token
def logout() -> Any:
    _sessions().end(session)  # every copy of this session's cookie, on every replica
    return redirect("/")


_SESSIONS = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sessions ·
Watchtower</title><link rel="stylesheet" href="{{ url_for('static', filename='watchtower.css')
}}"></head><body><main><h1>Sign out everywhere</h1>
{% if done %}<p role="status">{{ done }}</p>{% endif %}
<p>Ends every login session (the login form's cookie) of a user, or of everyone, on every
replica. Bearer tokens and single sign-on are not sessions: change the token, or sign out at the
proxy.</p>
<form method="post"><input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
<label>User <select name="name"><option value="">everyone</option>
{% for name in names %}<option>{{ name }}</option>{% endfor %}</select></label>
<button type="submit">Sign out everywhere</button></form></main></body></html>"""


@bp.route("/sessions", methods=["GET", "POST"])
@require("admin")
def sessions_page() -> Any:
    """An admin's "sign out everywhere", for one user or for all."""
    names = [u[0] for u in _settings().users]
    done = None
    if request.method == "POST":
        name = request.form.get("name") or None
        if name is not None and name not in names:
            return _json_error(400, "unknown_user", "no configured user has that name")
        _sessions().end_everywhere(name)
        user = current_user()
        log.warning("%s signed out %s everywhere", user.name if user else "?", name or "everyone")
        done = f"Every session of {name or 'everyone'} has ended."
    return render_template_string(_SESSIONS, names=names, done=done)
