"""The status page with a real PostgreSQL history store stopped and started again: 200 throughout,
the frozen banner while it is down, and current data again by itself once it is back."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.watchtower.production.processes import end, start_again, wait_for
from watchtower.model import Result, Status
from watchtower.runtime import Watchtower
from watchtower.sandbox import servers
from watchtower.web import create_app


@pytest.fixture
def postgres() -> Iterator[servers.PostgresServer]:
    """A PostgreSQL of this test's own: stopping the session's would disturb other tests."""
    try:
        server = servers.start_postgres()
    except servers.ServerUnavailable as exc:
        pytest.skip(str(exc))
    yield server
    server.stop()


def test_the_page_answers_200_frozen_while_postgresql_is_down_and_recovers(
    make_watchtower: Callable[..., Watchtower], postgres: servers.PostgresServer
) -> None:
    wt = make_watchtower(clock=time.time, database_url=postgres.url)
    now = datetime.now(UTC)
    wt.store.add(
        [
            Result(
                name="dynamodb_throttling",
                kind="check",
                status=Status.OK,
                reason="no throttling",
                observed_at=now - timedelta(seconds=10),
            )
        ]
    )
    client = create_app(wt).test_client()
    assert client.get("/api/v1/status").json["frozen"] is None

    command = end(postgres)
    try:
        started = time.monotonic()
        for path in ("/", "/api/v1/status"):
            answer = client.get(path)
            assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
        assert time.monotonic() - started < 15  # the connect timeout, not a hang
        assert "Watchtower itself is <strong>degraded</strong>" in client.get("/").get_data(
            as_text=True
        )
        body = client.get("/api/v1/status").json
        assert body["watchtower"]["state"] == "degraded"
        assert body["frozen"]["data_at"] is not None
        dynamodb = next(c for c in body["components"] if c["id"] == "dynamodb")
        throttling = next(s for s in dynamodb["sources"] if s["name"] == "dynamodb_throttling")
        assert throttling["state"] == "ok"  # what it said then, under the frozen flag
    finally:
        start_again(postgres, command)

    def current() -> bool:
        answer = client.get("/api/v1/status")
        assert answer.status_code == 200
        return answer.json["frozen"] is None

    wait_for("the status page to read the store again", current, timeout=30, every=1)
    assert "Frozen since" not in client.get("/").get_data(as_text=True)
