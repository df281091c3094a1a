"""Authentication and roles: tokens, basic auth, the login form, CSRF."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from werkzeug.security import generate_password_hash

from watchtower.config import Settings
from watchtower.errors import ConfigError
from watchtower.runtime import Watchtower
from watchtower.web import create_app
from watchtower.web.auth import current_user, require

USERS = (
    ("olive", "operator", "op-secret"),
    ("ada", "admin", generate_password_hash("admin-pw", method="pbkdf2:sha256:1000")),
    ("vic", "viewer", "view-secret"),
)


@pytest.fixture
def app(make_watchtower: Callable[..., Watchtower]) -> Flask:
    wt = make_watchtower(clock=time.time, users=USERS, anonymous_role="viewer", secret_key="k")
    app = create_app(wt)

    @app.post("/api/v1/poke")
    @require("operator")
    def poke() -> Any:
        return {"ok": True}

    @app.post("/poke-form")
    @require("operator")
    def poke_form() -> Any:
        return "done"

    return app


def test_bearer_tokens_carry_roles(app: Flask) -> None:
    client = app.test_client()
    assert client.post("/api/v1/poke").status_code == 401
    viewer = client.post("/api/v1/poke", headers={"Authorization": "Bearer view-secret"})
    assert viewer.status_code == 403 and "operator" in viewer.json["error"]["message"]
    assert client.post("/api/v1/poke", headers={"Authorization": "Bearer op-secret"}).json == {
        "ok": True
    }
    assert client.post("/api/v1/poke", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_basic_auth_with_a_hashed_password(app: Flask) -> None:
    client = app.test_client()
    good = client.post("/api/v1/poke", auth=("ada", "admin-pw"))
    assert good.status_code == 200
    assert client.post("/api/v1/poke", auth=("olive", "admin-pw")).status_code == 401


def test_login_form_then_csrf_protected_form(app: Flask) -> None:
    client = app.test_client()
    client.get("/login")
    with client.session_transaction() as s:
        token = s["csrf"]
    wrong = client.post("/login", data={"name": "olive", "password": "x", "csrf_token": token})
    assert wrong.status_code == 401
    client.post(
        "/login",
        data={
            "name": "olive",
            "password": "op-secret",
            "csrf_token": token,
            "next": "//evil.example/",
        },
    )
    without_token = client.post("/poke-form")
    assert without_token.status_code == 400
    client.get("/login")  # any page with a form mints the session's token
    with client.session_transaction() as s:
        token = s["csrf"]
    assert client.post("/poke-form", data={"csrf_token": token}).get_data(as_text=True) == "done"


def test_login_never_redirects_off_site(app: Flask) -> None:
    client = app.test_client()
    client.get("/login")
    with client.session_transaction() as s:
        token = s["csrf"]
    answer = client.post(
        "/login",
        data={
            "name": "olive",
            "password": "op-secret",
            "csrf_token": token,
            "next": "//evil.example/x",
        },
    )
    assert answer.headers["Location"] == "/"


def test_secrets_never_show_in_settings_repr() -> None:
    text = repr(Settings(users=USERS, webhook_token="hook-secret", secret_key="key-secret"))
    assert "op-secret" not in text and "hook-secret" not in text and "key-secret" not in text


# -- single sign-on: the trusted reverse proxy's header ------------------------------------------

PROXY_USERS = (("sam@example.com", "operator"), ("zoë", "admin"))


@pytest.fixture
def make_app(make_watchtower: Callable[..., Watchtower]) -> Any:
    def make(**settings: Any) -> Flask:
        values: dict[str, Any] = {
            "users": USERS,
            "anonymous_role": None,
            "secret_key": "k",
            "trusted_user_header": "X-Forwarded-User",
            "proxy_users": PROXY_USERS,
        }
        app = create_app(make_watchtower(clock=time.time, **{**values, **settings}))

        @app.get("/api/v1/whoami")
        @require("viewer")
        def whoami() -> Any:
            user = current_user()
            assert user is not None
            return {"name": user.name, "role": user.role, "via": user.via}

        @app.post("/api/v1/poke")
        @require("operator")
        def poke() -> Any:
            return {"ok": True}

        return app

    return make


def _from(address: str) -> dict[str, str]:
    return {"REMOTE_ADDR": address}


def test_the_proxy_header_signs_people_in_with_the_role_watchtower_gives(make_app: Any) -> None:
    client = make_app().test_client()
    sam = client.get("/api/v1/whoami", headers={"X-Forwarded-User": "sam@example.com"})
    assert sam.json == {"name": "sam@example.com", "role": "operator", "via": "proxy"}
    # Proxies send names in UTF-8; WSGI hands them over as latin-1.
    zoe = client.get(
        "/api/v1/whoami", headers={"X-Forwarded-User": "zoë".encode().decode("latin-1")}
    )
    assert zoe.json["name"] == "zoë" and zoe.json["role"] == "admin"
    # The status page names them, and offers no log-out: the proxy signs people out.
    page = client.get("/", headers={"X-Forwarded-User": "sam@example.com"})
    text = page.get_data(as_text=True)
    assert "sam@example.com (operator)" in text and "Log out" not in text


def test_the_header_is_ignored_unless_configured(make_app: Any) -> None:
    client = make_app(trusted_user_header=None).test_client()
    answer = client.get("/api/v1/whoami", headers={"X-Forwarded-User": "sam@example.com"})
    assert answer.status_code == 401


def test_the_header_from_anyone_but_a_trusted_proxy_is_ignored(
    make_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_app().test_client()  # trusted: loopback only, the default
    sam = {"X-Forwarded-User": "sam@example.com"}
    around = client.get("/api/v1/whoami", headers=sam, environ_base=_from("203.0.113.9"))
    assert around.status_code == 401
    assert "ignored X-Forwarded-User from 203.0.113.9" in caplog.text
    # An IPv4 loopback address seen through a dual-stack socket is still the proxy.
    mapped = client.get("/api/v1/whoami", headers=sam, environ_base=_from("::ffff:127.0.0.1"))
    assert mapped.json["name"] == "sam@example.com"

    # Configured proxies replace the default: loopback is then just another address.
    client = make_app(trusted_proxies=("10.0.0.0/8",)).test_client()
    inside = client.get("/api/v1/whoami", headers=sam, environ_base=_from("10.1.2.3"))
    assert inside.json["via"] == "proxy"
    assert client.get("/api/v1/whoami", headers=sam).status_code == 401


@pytest.mark.parametrize("name", ["", "   ", "sam\x00", "sam\x1b[31m", "x" * 257])
def test_a_header_that_is_not_a_name_is_ignored(make_app: Any, name: str) -> None:
    client = make_app(proxy_default_role="admin").test_client()
    answer = client.get("/api/v1/whoami", headers={"X-Forwarded-User": name})
    assert answer.status_code == 401


def test_names_without_a_role_get_the_default_role_or_nothing(make_app: Any) -> None:
    stranger = {"X-Forwarded-User": "someone@example.com"}
    assert make_app().test_client().get("/api/v1/whoami", headers=stranger).status_code == 401
    viewer = make_app(proxy_default_role="viewer").test_client()
    assert viewer.get("/api/v1/whoami", headers=stranger).json["role"] == "viewer"
    assert viewer.post("/api/v1/poke", headers=stranger).status_code in (400, 403)


def test_the_proxy_decides_who_over_a_cookie_and_a_bearer_token_over_the_proxy(
    make_app: Any,
) -> None:
    client = make_app().test_client()
    client.get("/login")
    with client.session_transaction() as s:
        token = s["csrf"]
    client.post("/login", data={"name": "vic", "password": "view-secret", "csrf_token": token})
    assert client.get("/api/v1/whoami").json["name"] == "vic"
    sam = {"X-Forwarded-User": "sam@example.com"}
    assert client.get("/api/v1/whoami", headers=sam).json["name"] == "sam@example.com"
    olive = {**sam, "Authorization": "Bearer op-secret"}
    assert client.get("/api/v1/whoami", headers=olive).json == {
        "name": "olive",
        "role": "operator",
        "via": "token",
    }


def test_proxy_signed_in_forms_need_the_csrf_token(make_app: Any) -> None:
    """The proxy adds its header to every request the browser sends, forged ones too: like a
    cookie, so a form posted with it must carry the token of a page Watchtower served."""
    client = make_app().test_client()
    sam = {"X-Forwarded-User": "sam@example.com"}
    forged = client.post("/api/v1/poke", headers=sam)
    assert forged.status_code == 400 and b"CSRF" in forged.data
    assert client.post("/api/v1/poke", headers=sam, data={"csrf_token": "guess"}).status_code == 400
    client.get("/runbooks/dynamodb-throttling", headers=sam)  # its form mints the token
    with client.session_transaction() as s:
        token = s["csrf"]
        assert "user" not in s  # the session holds the token, not the identity
    assert client.post("/api/v1/poke", headers=sam, data={"csrf_token": token}).json == {"ok": True}
    # The token binds the form to this browser's session: another browser's token fails.
    other = make_app().test_client()
    assert other.post("/api/v1/poke", headers=sam, data={"csrf_token": token}).status_code == 400
    # Machines behind the proxy send a bearer token, which no cross-site form can.
    machine = {**sam, "Authorization": "Bearer op-secret"}
    assert other.post("/api/v1/poke", headers=machine).json == {"ok": True}


def test_proxy_settings_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "WATCHTOWER_TRUSTED_USER_HEADER": "X-Forwarded-User",
            "WATCHTOWER_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.7, fd00::/8",
            "WATCHTOWER_PROXY_USERS": "sam@example.com:operator, ada:admin",
            "WATCHTOWER_PROXY_DEFAULT_ROLE": "viewer",
        }
    )
    assert settings.trusted_user_header == "X-Forwarded-User"
    assert settings.trusted_proxies == ("10.0.0.0/8", "192.0.2.7/32", "fd00::/8")
    assert settings.proxy_users == (("sam@example.com", "operator"), ("ada", "admin"))
    assert settings.proxy_default_role == "viewer"
    assert Settings().trusted_user_header is None
    assert Settings().trusted_proxies == ("127.0.0.0/8", "::1/128")


@pytest.mark.parametrize(
    "variable, raw",
    [
        ("WATCHTOWER_TRUSTED_USER_HEADER", "X Forwarded User"),
        ("WATCHTOWER_TRUSTED_USER_HEADER", "Authorization"),
        ("WATCHTOWER_TRUSTED_PROXIES", "10.0.0.0/33"),
        ("WATCHTOWER_TRUSTED_PROXIES", "proxy.internal"),
        ("WATCHTOWER_PROXY_USERS", "sam"),
        ("WATCHTOWER_PROXY_USERS", "sam:root"),
        ("WATCHTOWER_PROXY_USERS", "sam:viewer,sam:admin"),
        ("WATCHTOWER_PROXY_DEFAULT_ROLE", "root"),
    ],
)
def test_bad_proxy_settings_stop_start_up_naming_the_variable(variable: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        Settings.from_env({variable: raw})


def test_an_access_token_the_proxy_passes_on_is_no_identity_and_no_csrf_pass(
    make_app: Any,
) -> None:
    """oauth2-proxy can pass its own `Authorization: Bearer <access token>` with every request,
    forged ones too: it names no Watchtower user, so the proxy's header decides who, and forms
    still need the token."""
    client = make_app().test_client()
    proxied = {"X-Forwarded-User": "sam@example.com", "Authorization": "Bearer eyJhbGciOi.x.y"}
    assert client.get("/api/v1/whoami", headers=proxied).json["via"] == "proxy"
    assert client.post("/api/v1/poke", headers=proxied).status_code == 400


def test_the_webhook_through_the_proxy_needs_its_token_not_a_form(make_app: Any) -> None:
    from tests.watchtower.alerts.test_alerting import payload

    client = make_app(webhook_token="hook-secret").test_client()
    sam = {"X-Forwarded-User": "sam@example.com"}
    hook = {**sam, "Authorization": "Bearer hook-secret"}
    assert client.post("/api/v1/alerts", json=payload(), headers=hook).status_code == 202
    refused = client.post("/api/v1/alerts", json=payload(), headers=sam)
    assert refused.status_code in (400, 401)  # by the CSRF check or by the webhook itself
