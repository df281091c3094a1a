"""The gateway in front of the image API: forwards requests as sent, records each one a process
answered as an invocation, and answers for a process that is not there."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3
from werkzeug.serving import make_server
from werkzeug.test import Client, create_environ, run_wsgi_app
from werkzeug.wrappers import Request, Response

from watchtower.sandbox.gateway import (
    MAX_PAYLOAD_BYTES,
    REQUEST_ID_HEADER,
    Gateway,
    Invocation,
)
from watchtower.sandbox.servers import free_port


@Request.application
def echo(request: Request) -> Response:
    body = {
        "method": request.method,
        "target": request.environ.get("RAW_URI"),
        "user": request.headers.get("X-User-Id"),
        "body": request.get_data(as_text=True),
    }
    return Response(
        json.dumps(body), status=201, content_type="application/json", headers={"Location": "/x/1"}
    )


@pytest.fixture
def backend() -> Iterator[str]:
    server = make_server("127.0.0.1", 0, echo, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def http() -> Iterator[urllib3.PoolManager]:
    pool = urllib3.PoolManager()
    yield pool
    pool.clear()


def test_forwards_the_request_as_sent_and_records_an_invocation(
    backend: str, http: urllib3.PoolManager
) -> None:
    seen: list[Invocation] = []
    gateway = Gateway(http, record=seen.append, clock=lambda: 1_700_000_000.0)
    gateway.route_to(backend, generation=3)
    answer: Any = Client(gateway).post(
        "/images/a%2Fb?limit=5&cursor=x%3D", data="hello", headers={"X-User-Id": "ada"}
    )
    assert answer.status_code == 201
    assert answer.json == {
        "method": "POST",
        "target": "/images/a%2Fb?limit=5&cursor=x%3D",
        "user": "ada",
        "body": "hello",
    }
    assert answer.headers["Location"] == "/x/1"
    [invocation] = seen
    assert answer.headers[REQUEST_ID_HEADER] == invocation.request_id
    assert (invocation.generation, invocation.method, invocation.status) == (3, "POST", 201)
    assert invocation.path == "/images/a/b"
    assert invocation.ended_at == 1_700_000_000.0
    assert invocation.duration_ms > 0


def test_no_process_is_a_502_and_no_invocation(http: urllib3.PoolManager) -> None:
    seen: list[Invocation] = []
    gateway = Gateway(http, record=seen.append)
    client = Client(gateway)
    assert client.get("/images").status_code == 502
    gateway.route_to(f"http://127.0.0.1:{free_port()}", generation=1)  # nothing listens
    answer: Any = client.get("/images")
    assert answer.status_code == 502
    assert answer.json["error"]["code"] == "bad_gateway"
    assert seen == []


def test_an_oversized_payload_is_refused_before_it_is_read(
    backend: str, http: urllib3.PoolManager
) -> None:
    gateway = Gateway(http, record=lambda _i: None)
    gateway.route_to(backend, generation=1)
    environ = create_environ("/images", method="POST", data=b"")
    environ["CONTENT_LENGTH"] = str(MAX_PAYLOAD_BYTES + 1)  # as declared; nothing is read
    _, status, _ = run_wsgi_app(gateway, environ, buffered=True)
    assert status.startswith("413")
