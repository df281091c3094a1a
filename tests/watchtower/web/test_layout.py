"""The shared layout as people see it, through HTTP: who is signed in on every page, and the
sandbox's rehearsal endpoints and /cutover button (operators only, a rehearsal control only)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from watchtower.errors import SandboxError
from watchtower.runtime import Watchtower
from watchtower.web import create_app
from watchtower.web.rehearsal import EXTENSION

USERS = (("olive", "operator", "olive-pw"), ("vic", "viewer", "vic-pw"))
PAGES = ("/", "/runbooks", "/executions", "/cutover")


class FakeRehearsal:
    def __init__(self) -> None:
        self.started: list[str | None] = []
        self.busy = False

    def describe(self) -> dict[str, Any]:
        return {
            "window_seconds": 1200,
            "sample_seconds": 10,
            "signers": ["x (REHEARSAL)"],
            "current": None,
        }

    def start(self, inject: str | None = None) -> dict[str, Any]:
        if inject not in (None, "legacy-writes"):
            raise ValueError(f"cannot inject {inject!r}")
        if self.busy:
            raise SandboxError("a rehearsal runs already")
        self.started.append(inject)
        self.busy = True
        return self.describe()


@pytest.fixture
def app(make_watchtower: Callable[..., Watchtower]) -> Flask:
    return create_app(make_watchtower(users=USERS, secret_key="k", anonymous_role="viewer"))


def csrf(client: FlaskClient) -> str:
    with client.session_transaction() as session:
        token: str = session["csrf"]
    return token


def login(app: Flask, name: str, password: str) -> FlaskClient:
    client = app.test_client()
    client.get("/login")
    answer = client.post(
        "/login", data={"name": name, "password": password, "csrf_token": csrf(client)}
    )
    assert answer.status_code == 302
    client.get("/runbooks")  # a page with a form (the header's sign-out) mints the CSRF token
    return client


def test_every_page_names_who_is_signed_in_and_offers_the_sign_out(app: Flask) -> None:
    olive = login(app, "olive", "olive-pw")
    for path in (*PAGES, "/login"):
        text = olive.get(path).get_data(as_text=True)
        header = re.search(r'<header class="site-header">.*?</header>', text, re.S)
        assert header, path
        assert "olive (operator)" in header.group(0), path
        assert 'action="/logout"' in header.group(0) and "Sign in" not in header.group(0), path
    anonymous = app.test_client().get("/runbooks").get_data(as_text=True)
    assert 'href="/login?next=/runbooks">Sign in</a>' in anonymous


def test_rehearsal_endpoints_answer_404_without_a_sandbox(app: Flask) -> None:
    client = login(app, "olive", "olive-pw")
    assert client.get("/api/v1/sandbox/rehearsal").status_code == 404
    answer = client.post("/api/v1/sandbox/rehearsal", data={"csrf_token": csrf(client)})
    assert answer.status_code == 404
    assert answer.json["error"]["code"] == "no_sandbox"  # type: ignore[index]
    assert "Start a cutover rehearsal" not in client.get("/cutover").get_data(as_text=True)


def test_the_cutover_button_starts_a_rehearsal_for_operators_only(app: Flask) -> None:
    fake = FakeRehearsal()
    app.extensions[EXTENSION] = fake
    vic = login(app, "vic", "vic-pw")
    assert "Start a cutover rehearsal" not in vic.get("/cutover").get_data(as_text=True)
    refused = vic.post("/api/v1/sandbox/rehearsal", data={"csrf_token": csrf(vic)})
    assert refused.status_code == 403
    anonymous = app.test_client().post("/api/v1/sandbox/rehearsal", json={})
    assert anonymous.status_code == 401

    olive = login(app, "olive", "olive-pw")
    text = olive.get("/cutover").get_data(as_text=True)
    assert "Start a cutover rehearsal" in text and "REHEARSAL" in text
    no_token = olive.post("/api/v1/sandbox/rehearsal", data={"inject": "legacy-writes"})
    assert no_token.status_code in (400, 403) and fake.started == []
    bad = olive.post(
        "/api/v1/sandbox/rehearsal", data={"inject": "meltdown", "csrf_token": csrf(olive)}
    )
    assert bad.status_code == 400 and bad.json["error"]["code"] == "bad_inject"  # type: ignore[index]
    started = olive.post(
        "/api/v1/sandbox/rehearsal", data={"inject": "legacy-writes", "csrf_token": csrf(olive)}
    )
    assert started.status_code == 303 and started.headers["Location"] == "/cutover"
    assert fake.started == ["legacy-writes"]
    busy = olive.post("/api/v1/sandbox/rehearsal", data={"csrf_token": csrf(olive)})
    assert busy.status_code == 409 and busy.json["error"]["code"] == "rehearsal_refused"  # type: ignore[index]
