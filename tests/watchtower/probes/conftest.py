"""Fixtures for the probes: the real image API over HTTP, a closed port, and a misbehaving proxy.

The proxy is a tiny Flask app on loopback in front of the real image API: it records every
request and lets a test answer some of them wrongly, which moto and the image core cannot be
made to do on cue.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import urllib3
from flask import Flask, Response, request

from image_core.app import Components
from tests.image_core.readback import image_items, objects
from watchtower.config import Settings
from watchtower.probes.base import ProbeContext
from watchtower.sandbox.servers import free_port

PROBE_USER = "watchtower-probe"
_HOP_BY_HOP = {"connection", "content-length", "transfer-encoding", "keep-alive", "host"}


@dataclass(frozen=True)
class Seen:
    method: str
    path: str  # with the query string
    headers: dict[str, str]
    body: bytes


Intercept = Callable[["Proxy", Seen], Response | None]


class Proxy:
    """Forwards to `upstream`, unless `intercept` answers first (it may call `forward` itself)."""

    def __init__(self, upstream: str, intercept: Intercept | None) -> None:
        self.upstream = upstream
        self.intercept = intercept
        self.seen: list[Seen] = []
        self._http = urllib3.PoolManager()
        self.app = Flask(__name__)
        self.app.add_url_rule(
            "/", view_func=self._handle, methods=["GET", "POST", "DELETE"], defaults={"path": ""}
        )
        self.app.add_url_rule(
            "/<path:path>", view_func=self._handle, methods=["GET", "POST", "DELETE"]
        )

    def _handle(self, path: str) -> Response:
        seen = Seen(
            method=request.method,
            path=request.full_path.rstrip("?"),
            headers=dict(request.headers),
            body=request.get_data(),
        )
        self.seen.append(seen)
        if self.intercept is not None:
            answer = self.intercept(self, seen)
            if answer is not None:
                return answer
        return self.forward(seen)

    def forward(self, seen: Seen, *, drop: tuple[str, ...] = ()) -> Response:
        dropped = {h.lower() for h in (*drop, *_HOP_BY_HOP)}
        headers = {k: v for k, v in seen.headers.items() if k.lower() not in dropped}
        answer = self._http.request(
            seen.method,
            self.upstream + seen.path,
            body=seen.body or None,
            headers=headers,
            retries=False,
            timeout=10,
        )
        out = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_BY_HOP}
        return Response(answer.data, status=answer.status, headers=out)

    def count(self, method: str, prefix: str = "/images") -> int:
        return sum(1 for s in self.seen if s.method == method and s.path.startswith(prefix))

    def close(self) -> None:
        self._http.clear()


@pytest.fixture
def http() -> Iterator[urllib3.PoolManager]:
    pool = urllib3.PoolManager()
    yield pool
    pool.clear()


@pytest.fixture
def components(make_components: Callable[..., Components]) -> Components:
    """The image core as the sandbox runs it: the probe's X-Synthetic-Traffic is believed."""
    return make_components(synthetic_user_ids=(PROBE_USER,))


@pytest.fixture
def image_api(components: Components, serve_api: Callable[[Components], str]) -> str:
    return serve_api(components)


@pytest.fixture
def make_proxy(serve_wsgi: Callable[[Any], str]) -> Iterator[Callable[..., tuple[Proxy, str]]]:
    proxies: list[Proxy] = []

    def make(upstream: str, intercept: Intercept | None = None) -> tuple[Proxy, str]:
        proxy = Proxy(upstream, intercept)
        proxies.append(proxy)
        return proxy, serve_wsgi(proxy.app)

    yield make
    for proxy in proxies:
        proxy.close()


@pytest.fixture
def closed_url() -> str:
    """A loopback URL where nothing listens: connection refused."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def probe_ctx(http: urllib3.PoolManager) -> Callable[..., ProbeContext]:
    def make(
        url: str,
        *,
        clock: Callable[[], float] | None = None,
        params: dict[str, float] | None = None,
        **settings: Any,
    ) -> ProbeContext:
        values: dict[str, Any] = {"image_api_url": url, "probe_timeout_seconds": 5, **settings}
        return ProbeContext(
            settings=Settings(**values),
            http=http,
            now=datetime(2025, 1, 1, tzinfo=UTC),
            clock=clock or time.perf_counter,  # the test is the edge that reads the clock
            params=params or {},
        )

    return make


def leftovers(components: Components, user: str = PROBE_USER) -> list[str]:
    """What the probe user still has in S3 and DynamoDB (image records and their objects)."""
    keys = objects(components, f"originals/{user}/") + objects(components, f"thumbnails/{user}/")
    records = [
        i["pk"]["S"]
        for i in image_items(components)
        if i.get("gsi1pk", {}).get("S") == f"USER#{user}"
    ]
    return keys + records
