"""The runbook pages: readable by viewers, run and decided on by logged-in operators with CSRF
tokens, no script or inline style, and the approver's name in the audit log."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.watchtower.runbook.conftest import REPO_RUNBOOKS, Aws, write_runbook
from watchtower.runtime import Watchtower
from watchtower.web import create_app

USERS = (
    ("olive", "operator", "olive-pw"),
    ("oscar", "operator", "oscar-pw"),
    ("vic", "viewer", "vic-pw"),
)

HOSTILE = """
---
id: hostile
title: Prose with <b>markup</b>
---
# Hostile prose

<script>alert(1)</script> and <img src=x onerror=alert(2)> and [a link](javascript:alert(3)).

```step
id: look
check: dual_write
```
"""


@pytest.fixture
def watchtower(aws: Aws, tmp_path: Path, make_watchtower: Callable[..., Watchtower]) -> Watchtower:
    aws.function({"ENABLE_DYNAMODB_DUAL_WRITE": "false", "OTHER": "x"})
    books = tmp_path / "books"
    books.mkdir()
    for source in REPO_RUNBOOKS.glob("*.md"):
        (books / source.name).write_text(source.read_text())
    write_runbook(books, "hostile", HOSTILE)
    return make_watchtower(
        clock=time.time,
        aws_endpoint_url=aws.url,
        lambda_function="image-api",
        users=USERS,
        anonymous_role="viewer",
        secret_key="test-key",
        runbooks_dir=str(books),
    )


@pytest.fixture
def app(watchtower: Watchtower) -> Flask:
    return create_app(watchtower)


def login(app: Flask, name: str, password: str) -> FlaskClient:
    client = app.test_client()
    client.get("/login")
    answer = client.post(
        "/login", data={"name": name, "password": password, "csrf_token": csrf(client)}
    )
    assert answer.status_code == 302
    client.get("/runbooks")  # any page with a form mints the session's CSRF token
    return client


def csrf(client: FlaskClient) -> str:
    with client.session_transaction() as session:
        token: str = session["csrf"]
    return token


def page(client: FlaskClient, path: str) -> str:
    answer = client.get(path)
    assert answer.status_code == 200, answer.get_data(as_text=True)[:500]
    text = answer.get_data(as_text=True)
    assert "<script" not in text.lower() and " style=" not in text.lower()
    return text


def forms(text: str) -> list[str]:
    return re.findall(r'<form method="post" action="([^"]+)"', text)


def test_viewers_read_runbooks_but_see_no_buttons(app: Flask) -> None:
    viewer = app.test_client()  # anonymous visitors are viewers here
    text = page(viewer, "/runbooks")
    for title in ("Disable dual-write (Story 6.1)", "DynamoDB throttling", "Lambda cold starts"):
        assert title in text
    text = page(viewer, "/runbooks/disable-dual-write")
    assert "<h1>Disable dual-write</h1>" in text
    assert 'id="step-flip"' in text and "Set ENABLE_DYNAMODB_DUAL_WRITE=false" in text
    assert "Not run yet." in text
    assert forms(text) == []
    assert "Operators can start this runbook here." in text
    assert viewer.get("/runbooks/nope").status_code == 404
    logged_in_viewer = login(app, "vic", "vic-pw")
    assert forms(page(logged_in_viewer, "/runbooks/disable-dual-write")) == ["/logout"]


def test_prose_is_rendered_with_html_escaped(app: Flask) -> None:
    text = page(app.test_client(), "/runbooks/hostile")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<img" not in text
    assert 'href="javascript' not in text
    assert "Prose with &lt;b&gt;markup&lt;/b&gt;" in text


def test_starting_a_run_needs_a_login_and_a_csrf_token(app: Flask) -> None:
    anonymous = app.test_client()
    answer = anonymous.post("/runbooks/rollback-dual-write/executions", data={"dry_run": "1"})
    assert answer.status_code == 302 and "/login" in answer.headers["Location"]
    viewer = login(app, "vic", "vic-pw")
    answer = viewer.post(
        "/runbooks/rollback-dual-write/executions", data={"csrf_token": csrf(viewer)}
    )
    assert answer.status_code == 403
    olive = login(app, "olive", "olive-pw")
    assert olive.post("/runbooks/rollback-dual-write/executions", data={}).status_code == 400
    text = page(olive, "/runbooks/rollback-dual-write")
    assert "/runbooks/rollback-dual-write/executions" in forms(text)
    bad = olive.post(
        "/runbooks/rollback-dual-write/executions",
        data={"csrf_token": csrf(olive), "param.function": "a b"},
    )
    assert bad.status_code == 400 and "parameter &#39;function&#39;" in bad.get_data(as_text=True)


def _start(app: Flask, client: FlaskClient, **data: str) -> str:
    answer = client.post(
        "/runbooks/rollback-dual-write/executions", data={"csrf_token": csrf(client), **data}
    )
    assert answer.status_code == 303, answer.get_data(as_text=True)
    return str(answer.headers["Location"]).rsplit("/", 1)[1]


def test_approval_with_context_by_a_second_operator(
    app: Flask, watchtower: Watchtower, aws: Aws
) -> None:
    olive = login(app, "olive", "olive-pw")
    run_id = _start(app, olive)
    watchtower.runbooks.run_pending()
    text = page(olive, f"/executions/{run_id}")
    assert '<meta http-equiv="refresh" content="3">' in text
    assert "Waiting for approval" in text and "Resolved parameters" in text
    assert "UpdateFunctionConfiguration" in text and "&lt;unchanged&gt;" in text
    assert "Evidence from earlier steps" in text and "The flag and dual-writes now" in text
    # Olive started it: no approve button for her, only reject and cancel.
    assert "a second operator must approve it" in text
    assert forms(text) == [
        "/logout",
        f"/executions/{run_id}/reject",
        f"/executions/{run_id}/cancel",
    ]
    refused = olive.post(f"/executions/{run_id}/approve", data={"csrf_token": csrf(olive)})
    assert refused.status_code == 409
    assert "cannot approve it alone" in refused.get_data(as_text=True)

    viewer = app.test_client()
    assert forms(page(viewer, f"/executions/{run_id}")) == []
    assert viewer.post(f"/executions/{run_id}/approve").status_code == 302  # to the login

    oscar = login(app, "oscar", "oscar-pw")
    text = page(oscar, f"/executions/{run_id}")
    assert f"/executions/{run_id}/approve" in forms(text)
    no_token = oscar.post(f"/executions/{run_id}/approve", data={})
    assert no_token.status_code == 400
    done = oscar.post(
        f"/executions/{run_id}/approve", data={"csrf_token": csrf(oscar), "comment": "go"}
    )
    assert done.status_code == 303
    watchtower.runbooks.run_pending()
    text = page(oscar, f"/executions/{run_id}")
    assert "http-equiv" not in text  # finished: no more refreshing
    assert "succeeded" in text
    audit = [(a.actor, a.action, a.comment) for a in watchtower.runbooks.audit(run_id)]
    assert ("olive", "started", "") in audit
    assert ("olive", "approval-refused", "who started a run cannot approve it alone") in audit
    assert ("oscar", "approved", "go") in audit
    assert aws.environment() == {"ENABLE_DYNAMODB_DUAL_WRITE": "true", "OTHER": "x"}
    runbook_page = page(oscar, "/runbooks/rollback-dual-write")
    assert 'class="rb-step rb-step-succeeded" id="step-re-enable"' in runbook_page
    listing = page(oscar, "/executions")
    assert run_id in listing


def test_reject_and_cancel_from_the_page(app: Flask, watchtower: Watchtower) -> None:
    olive = login(app, "olive", "olive-pw")
    first = _start(app, olive)
    watchtower.runbooks.run_pending()
    answer = olive.post(
        f"/executions/{first}/reject", data={"csrf_token": csrf(olive), "comment": "not now"}
    )
    assert answer.status_code == 303
    assert watchtower.runbooks.get(first).reason == "step 're-enable' rejected by olive: not now"
    second = _start(app, olive, dry_run="1")
    olive.post(f"/executions/{second}/cancel", data={"csrf_token": csrf(olive)})
    assert watchtower.runbooks.get(second).reason == "cancelled by olive"
    again = olive.post(f"/executions/{second}/cancel", data={"csrf_token": csrf(olive)})
    assert again.status_code == 409
    assert olive.get("/executions/nope").status_code == 404


def test_the_worker_starts_and_stops_with_the_scheduler(watchtower: Watchtower) -> None:
    scheduler = watchtower.scheduler()
    scheduler.start()
    try:
        deadline = time.monotonic() + 10
        while not watchtower.runbooks.running:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        scheduler.shutdown()
    watchtower.close()
    assert not watchtower.runbooks.running
