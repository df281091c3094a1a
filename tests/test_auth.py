"""Authentication and roles: tokens, basic auth, the login form, CSRF."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.security import generate_password_hash

from watchtower.config import Settings
from watchtower.runtime import Watchtower, build
from watchtower.web import create_app
from watchtower.web.auth import require

USERS = (
    ("olive", "operator", "op-secret"),
    ("ada", "admin", generate_password_hash("admin-pw", method="pbkdf2:sha256:1000")),
    ("vic", "viewer", "view-secret"),
)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    wt: Watchtower = build(
        Settings(
            database_url=f"sqlite:///{tmp_path / 'a.sqlite'}",
            users=USERS,
            anonymous_role="viewer",
            secret_key="k",
        )
    )
    app = create_app(wt)

    @app.post("/api/v1/poke")
    @require("operator")
    def poke() -> Any:
        return {"ok": True}

    @app.post("/poke-form")
    @require("operator")
    def poke_form() -> Any:
        return "done"

    yield app
    wt.close()


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
