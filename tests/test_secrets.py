"""Secrets never appear in logs, pages or reports.

Watchtower and the image API run over real HTTP (so werkzeug's request log is captured too) with
every kind of secret set: users' tokens and passwords (plain and hashed), the webhook token, the
session key, and passwords inside the database and Redis URLs, whose servers are down so that
their errors are logged and shown. Then people and machines do what they do, wrongly as often as
rightly, and every log record (DEBUG and up) and every answer, headers included, is searched for
every secret.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
from werkzeug.security import generate_password_hash

from image_core.api import create_app as create_image_api
from image_core.app import Components
from image_core.app import build as build_components
from tests.helpers import image_bytes
from tests.watchtower.cutover.evidence import samples, window
from watchtower.config import Settings
from watchtower.runtime import Watchtower, build
from watchtower.web import create_app
from watchtower.web.cutover import EXTENSION

OPERATOR_TOKEN = "op-token-S3cr3t-1"
ADMIN_PASSWORD = "admin-pass-S3cr3t-2"
ADMIN_HASH = generate_password_hash(ADMIN_PASSWORD, method="pbkdf2:sha256:1000")
VIEWER_TOKEN = "viewer-token-S3cr3t-3"
WEBHOOK_TOKEN = "hook-token-S3cr3t-4"
SECRET_KEY = "session-key-S3cr3t-5"
LEGACY_PASSWORD = "legacy-db-S3cr3t-6"
REDIS_PASSWORD = "redis-S3cr3t-7"
SECRETS = {
    "operator token": OPERATOR_TOKEN,
    "admin password": ADMIN_PASSWORD,
    "admin password hash": ADMIN_HASH,
    "viewer token": VIEWER_TOKEN,
    "webhook token": WEBHOOK_TOKEN,
    "secret key": SECRET_KEY,
    "legacy database password": LEGACY_PASSWORD,
    "redis password": REDIS_PASSWORD,
}
# Nothing listens on port 9 (discard) here: connections to it are refused at once.
LEGACY_URL = f"postgresql://reader:{LEGACY_PASSWORD}@127.0.0.1:9/gallery"
REDIS_URL = f"redis://:{REDIS_PASSWORD}@127.0.0.1:9/0"


def _basic(name: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()


@pytest.fixture
def image_api(
    make_components: Callable[..., Components], serve_wsgi: Callable[[Any], str]
) -> Iterator[str]:
    tables = make_components()  # the bucket and table, in moto
    # Built without bootstrap: the legacy PostgreSQL and the Redis are down.
    components = build_components(
        dataclasses.replace(
            tables.settings, legacy_database_url=LEGACY_URL, dual_write=True, redis_url=REDIS_URL
        )
    )
    yield serve_wsgi(create_image_api(components=components))
    components.close()


@pytest.fixture
def watchtower(tmp_path: Path, moto: Any, image_api: str) -> Iterator[Watchtower]:
    wt = build(
        Settings(
            database_url=f"sqlite:///{tmp_path / 'w.sqlite'}",
            aws_endpoint_url=moto.url,
            image_api_url=image_api,
            legacy_database_url=LEGACY_URL,
            image_redis_url=REDIS_URL,
            users=(
                ("olive", "operator", OPERATOR_TOKEN),
                ("ada", "admin", ADMIN_HASH),
                ("vic", "viewer", VIEWER_TOKEN),
            ),
            anonymous_role="viewer",
            webhook_token=WEBHOOK_TOKEN,
            secret_key=SECRET_KEY,
            probe_timeout_seconds=3,
        )
    )
    yield wt
    wt.close()


class Browser:
    """A person's browser: keeps the session cookie, reads the CSRF token off the forms."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = urllib3.PoolManager()
        self.cookie = ""
        self.answers: list[str] = []

    def request(self, method: str, path: str, **kw: Any) -> urllib3.BaseHTTPResponse:
        headers = {**kw.pop("headers", {}), **({"Cookie": self.cookie} if self.cookie else {})}
        answer = self.http.request(
            method, self.base + path, headers=headers, redirect=False, timeout=10, **kw
        )
        if "Set-Cookie" in answer.headers:
            self.cookie = answer.headers["Set-Cookie"].split(";", 1)[0]
        self.answers.append(
            f"{method} {path} -> {answer.status}\n{dict(answer.headers)}\n"
            + answer.data.decode("utf-8", "replace")
        )
        return answer

    def csrf(self, path: str) -> str:
        page = self.request("GET", path).data.decode()
        marker = 'name="csrf_token" value="'
        assert marker in page, path
        return page.split(marker, 1)[1].split('"', 1)[0]


def test_secrets_never_appear_in_logs_pages_or_reports(
    watchtower: Watchtower,
    image_api: str,
    serve_wsgi: Callable[[Any], str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    for name in ("watchtower", "image_core", "werkzeug", "flask.app", "image_core.api"):
        caplog.set_level(logging.DEBUG, logger=name)
    app = create_app(watchtower)
    service = app.extensions[EXTENSION]
    service.store.add_window(window())
    for sample in samples(window()):
        service.store.add_sample(sample)
    base = serve_wsgi(app)
    people = Browser(base)
    machine = Browser(base)
    images = Browser(image_api)

    # The image API: an upload dual-writes to a PostgreSQL that is down, a listing reads a Redis
    # that is down; both failures are logged.
    upload = images.request(
        "POST",
        "/images",
        headers={"X-User-Id": "alice"},
        fields={"file": ("a.png", image_bytes("PNG", (32, 32)), "image/png")},
    )
    assert upload.status == 201, upload.data
    assert images.request("GET", "/images", headers={"X-User-Id": "alice"}).status == 200

    # Watchtower's own work: probes walk the image API, checks read AWS (moto) and the legacy
    # database (down), so the pages have results and reasons to show.
    watchtower.record(watchtower.run_probes())
    watchtower.record(watchtower.run_checks())

    # Logging in, wrongly first: a password of someone else's, a token as a password.
    token = people.csrf("/login")
    for name, password in (("olive", ADMIN_PASSWORD), ("ada", VIEWER_TOKEN), ("nobody", "x")):
        failed = people.request(
            "POST",
            "/login",
            fields={"name": name, "password": password, "csrf_token": token},
            encode_multipart=False,
        )
        assert failed.status == 401
    logged_in = people.request(
        "POST",
        "/login",
        fields={"name": "ada", "password": ADMIN_PASSWORD, "csrf_token": token, "next": "/"},
        encode_multipart=False,
    )
    assert logged_in.status == 302

    # Pages a person reads: status, runbooks, executions, the cutover and its reports.
    for path in (
        "/",
        "/runbooks",
        "/runbooks/dynamodb-throttling",
        "/runbooks/rollback-dual-write",
        "/executions",
        "/cutover",
        "/cutover/windows/w1",
        "/cutover/windows/w1/report",
        "/cutover/windows/w1/report?format=json",
        "/cutover/windows/w1/report?format=md",
        "/cutover/preflight",
        "/cutover/preflight?format=json",
        "/nope",
    ):
        people.request("GET", path)
    started = people.request(
        "POST",
        "/runbooks/dynamodb-throttling/executions",
        fields={"csrf_token": people.csrf("/runbooks/dynamodb-throttling"), "table": "images"},
        encode_multipart=False,
    )
    assert started.status in (302, 303), started.data
    people.request("GET", started.headers["Location"])
    logout = people.csrf("/")  # login began a new session, with a new token
    people.request("POST", "/logout", fields={"csrf_token": logout}, encode_multipart=False)

    # Machines: the APIs, /metrics, health, and every way to get the credentials wrong.
    olive = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
    for path, headers in (
        ("/api/v1/status", {}),
        ("/api/v1/results", {}),
        ("/api/v1/cutover", {}),
        ("/api/v1/executions", olive),
        ("/metrics", {}),
        ("/readyz", {}),
        ("/healthz", {}),
        ("/api/v1/executions", {"Authorization": f"Bearer {OPERATOR_TOKEN}x"}),
        ("/api/v1/executions", {"Authorization": _basic("olive", ADMIN_PASSWORD)}),
        ("/api/v1/executions", {"Authorization": _basic(OPERATOR_TOKEN, "x")}),
        ("/cutover/preflight", {"Authorization": f"Bearer {VIEWER_TOKEN}"}),  # 403
    ):
        machine.request("GET", path, headers=headers)
    notification = json.dumps(
        {"version": "4", "status": "firing", "receiver": "w", "groupKey": "g", "alerts": []}
    ).encode()
    for authorization in (
        None,
        f"Bearer {WEBHOOK_TOKEN[:-1]}",
        f"Bearer {OPERATOR_TOKEN}",
        _basic("alertmanager", WEBHOOK_TOKEN),
        f"Bearer {WEBHOOK_TOKEN}",
    ):
        headers = {"Content-Type": "application/json"}
        if authorization:
            headers["Authorization"] = authorization
        machine.request("POST", "/api/v1/alerts", body=notification, headers=headers)
        machine.request("POST", "/api/v1/alerts", body=b"{not json", headers=headers)
    machine.request(
        "POST",
        "/runbooks/dynamodb-throttling/executions",
        headers={**olive, "Content-Type": "application/x-www-form-urlencoded"},
        body=b"table=no such table!",
    )

    assert "dual-write to PostgreSQL failed" in caplog.text  # the failures were logged
    assert any(r.name == "werkzeug" for r in caplog.records)  # and the requests
    logged = "\n".join(
        [caplog.text] + [f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records]
    )
    answered = "\n".join(people.answers + machine.answers + images.answers)
    leaks = [
        f"{what} in {where}"
        for what, secret in SECRETS.items()
        for where, text in (("the logs", logged), ("an answer", answered))
        if secret in text
    ]
    assert leaks == []


def test_settings_reprs_hide_passwords_in_urls(make_settings: Callable[..., Any]) -> None:
    """A repr ends up in tracebacks and test reports; the URLs in it keep their host."""
    settings = Settings(
        database_url=f"postgresql://watchtower:{LEGACY_PASSWORD}@db:5432/w",
        legacy_database_url=LEGACY_URL,
        redis_url=REDIS_URL,
        image_redis_url=REDIS_URL,
        users=(("olive", "operator", OPERATOR_TOKEN),),
        webhook_token=WEBHOOK_TOKEN,
        secret_key=SECRET_KEY,
    )
    image = make_settings(legacy_database_url=LEGACY_URL, redis_url=REDIS_URL)
    for text in (repr(settings), repr(image), str(settings)):
        assert not [what for what, secret in SECRETS.items() if secret in text], text
    assert "postgresql://watchtower:***@db:5432/w" in repr(settings)
    assert "redis://:***@127.0.0.1:9/0" in repr(image)


def test_a_file_upload_body_is_not_logged(
    make_components: Callable[..., Components], caplog: pytest.LogCaptureFixture
) -> None:
    """An upload that fails deep inside is logged by what failed, never by what was sent."""
    caplog.set_level(logging.DEBUG, logger="image_core")
    secret_bytes = b"\x89PNG\r\n\x1a\n" + ADMIN_PASSWORD.encode()
    client = create_image_api(components=make_components()).test_client()
    client.post(
        "/images",
        headers={"X-User-Id": "alice"},
        data={"file": (io.BytesIO(secret_bytes), "x.png")},
        content_type="multipart/form-data",
    )
    assert ADMIN_PASSWORD not in caplog.text
