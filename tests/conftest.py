"""Fixtures: real local servers on free loopback ports, started once per session.

Outside CI a missing server binary skips the tests that need it; in CI (CI=true) it fails them,
so a missing install step can never pass as green.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from werkzeug.serving import make_server

from image_core.api import create_app
from image_core.app import Components, bootstrap, build
from image_core.config import Settings
from watchtower.sandbox import servers
from watchtower.sandbox.servers import ServerUnavailable

IN_CI = os.environ.get("CI", "").lower() == "true"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with slow tests first, in their order otherwise: `make test` hands whole files to
    pytest-xdist's workers in this order (--no-loadscope-reorder), and a long file handed out
    last would finish last."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)


def _start(starter: Callable[[], servers.Server]) -> Any:
    try:
        return starter()
    except ServerUnavailable as exc:
        if IN_CI:
            pytest.fail(f"CI must provide this server: {exc}")
        pytest.skip(str(exc))


@pytest.fixture(scope="session", autouse=True)
def _aws_environment() -> Iterator[None]:
    """Dummy credentials for boto3; the endpoint is passed through Settings, never patched."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
            mp.delenv(name, raising=False)
        yield


@pytest.fixture(scope="session")
def moto_server() -> Iterator[servers.MotoServer]:
    server = _start(servers.start_moto)
    yield server
    server.stop()


@pytest.fixture
def moto(moto_server: servers.MotoServer) -> servers.MotoServer:
    """The moto server, emptied for this test."""
    moto_server.reset()
    return moto_server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[servers.RedisServer]:
    server = _start(servers.start_redis)
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: servers.RedisServer) -> str:
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.config_resetstat()
    client.close()
    return redis_server.url


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[servers.PostgresServer]:
    server = _start(servers.start_postgres)
    yield server
    server.stop()


@pytest.fixture
def legacy_url(postgres_server: servers.PostgresServer) -> str:
    import psycopg

    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS gallery_images")
    return postgres_server.url


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: Any, tmp_path: Any) -> Iterator[Any]:
    """A fresh history store: one contract, run over SQLite and the real PostgreSQL."""
    from watchtower.store import HistoryStore, engine_for

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'history.sqlite'}"
    else:
        import psycopg

        server = request.getfixturevalue("postgres_server")
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS results, alerts")
        url = server.url
    engine = engine_for(url)
    history = HistoryStore(engine)
    history.create_schema()
    yield history
    engine.dispose()


@pytest.fixture
def make_settings(moto: servers.MotoServer) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "aws_endpoint_url": moto.url,
            "trust_user_header": True,
            "metrics_sink": "cloudwatch",
            "metrics_flush_seconds": 3600,  # tests flush by hand
            "idempotency_in_progress_seconds": 30,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def make_components(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., Components]]:
    built: list[Components] = []

    def make(**overrides: Any) -> Components:
        settings = make_settings(**overrides)
        bootstrap(settings)
        components = build(settings)
        built.append(components)
        return components

    yield make
    for components in built:
        components.close()


@pytest.fixture
def components(make_components: Callable[..., Components]) -> Components:
    return make_components()


@pytest.fixture
def client(components: Components) -> Any:
    return create_app(components=components).test_client()


@pytest.fixture
def serve_wsgi() -> Iterator[Callable[[Any], str]]:
    """Serve any WSGI app over real HTTP on a free loopback port; returns its base URL."""
    running: list[Any] = []

    def serve(app: Any) -> str:
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        running.append((server, thread))
        return f"http://127.0.0.1:{server.server_port}"

    yield serve
    for server, thread in running:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()


@pytest.fixture
def serve_api(serve_wsgi: Callable[[Any], str]) -> Callable[[Components], str]:
    """Serve the image API over real HTTP on a free loopback port; returns its base URL."""
    return lambda components: serve_wsgi(create_app(components=components))
