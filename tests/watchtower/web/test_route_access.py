"""Issue 12, finding 1: with WATCHTOWER_ANONYMOUS_ROLE=none, every page that is not public is
closed to a visitor who is not signed in (pages: to the login form; JSON: 401), and still open
to viewers. The runbook and execution pages used to answer 200 and show an execution's
parameters, evidence, approvers and comments to anyone."""

from __future__ import annotations

import secrets
import textwrap
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from watchtower.runtime import Watchtower
from watchtower.web import access, create_app

VIEWER_TOKEN = secrets.token_urlsafe(32)
USERS = (("vic", "viewer", VIEWER_TOKEN), ("olive", "operator", "olive-pw"))
SECRET_PARAM = "do-not-leak-me"

RUNBOOK = """\
    ---
    id: probe-notes
    title: Probe notes
    params:
      note:
        description: A note that only viewers may read.
        default: ""
        pattern: '[a-z-]{0,40}'
    ---
    # Probe notes

    ```step
    id: confirm
    manual: Confirm by hand.
    ```
"""

PAGES = ["/runbooks", "/runbooks/probe-notes", "/executions", "/executions/{id}"]
APIS = ["/api/v1/results", "/api/v1/executions", "/api/v1/status", "/api/v1/cutover"]


def _app(make_watchtower: Callable[..., Watchtower], tmp_path: Path, anonymous: str | None):
    books = tmp_path / f"books-{anonymous}"
    books.mkdir()
    (books / "probe-notes.md").write_text(textwrap.dedent(RUNBOOK))
    wt = make_watchtower(
        users=USERS,
        anonymous_role=anonymous,
        secret_key=secrets.token_urlsafe(32),
        runbooks_dir=str(books),
    )
    assert not wt.runbooks.problems
    execution_id = wt.runbooks.start(
        "probe-notes", params={"note": SECRET_PARAM}, started_by="olive"
    )
    return create_app(wt), execution_id


@pytest.fixture
def closed(make_watchtower: Callable[..., Watchtower], tmp_path: Path) -> tuple[Flask, str]:
    return _app(make_watchtower, tmp_path, None)


def test_pages_redirect_a_visitor_to_the_login_form(closed: tuple[Flask, str]) -> None:
    app, execution_id = closed
    client = app.test_client()
    for page in PAGES:
        path = page.format(id=execution_id)
        answer = client.get(path)
        assert answer.status_code == 302, path
        location = urlsplit(answer.headers["Location"])
        assert location.path == "/login" and path in location.query.replace("%2F", "/"), path
        assert SECRET_PARAM not in answer.get_data(as_text=True)


def test_json_answers_401_to_a_visitor(closed: tuple[Flask, str]) -> None:
    app, execution_id = closed
    client = app.test_client()
    for path in [*APIS, *(p.format(id=execution_id) for p in PAGES)]:
        answer = client.get(path, headers={"Accept": "application/json"})
        assert answer.status_code == 401, path
        assert answer.json["error"]["code"] == "unauthenticated", path
        assert SECRET_PARAM not in answer.get_data(as_text=True)


def test_a_wrong_token_is_no_way_in(closed: tuple[Flask, str]) -> None:
    app, execution_id = closed
    answer = app.test_client().get(
        f"/executions/{execution_id}", headers={"Authorization": "Bearer nope"}
    )
    assert answer.status_code == 302 and SECRET_PARAM not in answer.get_data(as_text=True)


def test_viewers_still_read_every_page(closed: tuple[Flask, str]) -> None:
    app, execution_id = closed
    client = app.test_client()
    bearer = {"Authorization": f"Bearer {VIEWER_TOKEN}"}
    for page in PAGES:
        answer = client.get(page.format(id=execution_id), headers=bearer)
        assert answer.status_code == 200, page
    assert SECRET_PARAM in client.get(f"/executions/{execution_id}", headers=bearer).get_data(
        as_text=True
    )
    for path in APIS:
        assert client.get(path, headers=bearer).status_code == 200, path


def test_someone_signed_in_by_the_login_form_reads_the_execution(
    closed: tuple[Flask, str],
) -> None:
    app, execution_id = closed
    client = _signed_in(app, "olive", "olive-pw")
    answer = client.get(f"/executions/{execution_id}")
    assert answer.status_code == 200 and SECRET_PARAM in answer.get_data(as_text=True)


def test_every_route_that_is_not_public_is_closed_to_a_visitor(closed: tuple[Flask, str]) -> None:
    """Not only the pages of the finding: every rule, by its declared level, through HTTP."""
    app, _ = closed
    client = app.test_client()
    checked = 0
    for rule in app.url_map.iter_rules():
        level = access.level_of(app, rule.endpoint)
        if level in (access.PUBLIC, access.WEBHOOK):
            continue
        path = rule.build({name: "x" for name in rule.arguments})[1]  # type: ignore[index]
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            answer = client.open(path, method=method, headers={"Accept": "application/json"})
            assert answer.status_code == 401, (method, path, answer.status_code)
            checked += 1
    assert checked >= 20


def test_with_the_default_anonymous_viewer_nothing_changes_for_visitors(
    make_watchtower: Callable[..., Watchtower], tmp_path: Path
) -> None:
    app, execution_id = _app(make_watchtower, tmp_path, "viewer")
    client = app.test_client()
    for page in PAGES:
        assert client.get(page.format(id=execution_id)).status_code == 200, page
    assert client.get("/api/v1/results").status_code == 200
    assert client.get("/sessions").status_code == 302  # admin only: to the login form


def _signed_in(app: Flask, name: str, password: str) -> FlaskClient:
    client = app.test_client()
    client.get("/login")
    with client.session_transaction() as s:
        token = s["csrf"]
    answer = client.post(
        "/login", data={"name": name, "password": password, "csrf_token": token, "next": "/"}
    )
    assert answer.status_code == 302, answer.get_data(as_text=True)
    return client
