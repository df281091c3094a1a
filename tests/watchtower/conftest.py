"""The one Watchtower fixture: `make_watchtower(**settings)` builds a Watchtower through the
composition root (`watchtower.runtime.build`) over a fresh SQLite history store in tmp_path, its
clock fixed at T0 unless a `clock` is given; every one built is closed after the test. And
`database_url`: an empty SQLite or PostgreSQL database, for suites run over both."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from watchtower.config import Settings
from watchtower.runtime import Watchtower, build

T0 = datetime(2026, 11, 27, 12, 30, tzinfo=UTC)


@pytest.fixture
def make_watchtower(tmp_path: Path) -> Iterator[Callable[..., Watchtower]]:
    built: list[Watchtower] = []

    def make(*, clock: Callable[[], float] | None = None, **settings: Any) -> Watchtower:
        settings.setdefault("database_url", f"sqlite:///{tmp_path / f'h{len(built)}.sqlite'}")
        wt = build(Settings(**settings))
        # The web edge reads the clock through the Watchtower.
        wt.clock = clock or T0.timestamp
        built.append(wt)
        return wt

    yield make
    for wt in built:
        wt.close()


SERVER_ZONE = "Asia/Kolkata"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: Any, tmp_path: Path) -> Iterator[str]:
    """An empty database, one per test: a SQLite file, or a fresh PostgreSQL schema on the
    session's server (its search_path), with a session time zone that is not UTC (+05:30): a
    store must not depend on the server's zone, and a half-hour offset shows up in every hour
    bucket it could get wrong. Replicas in a test share it."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'watchtower.sqlite'}"
        return
    import psycopg

    server = request.getfixturevalue("postgres_server")
    schema = f"wt_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    options = quote(f"-c search_path={schema} -c TimeZone={SERVER_ZONE}")
    yield f"{server.url}?options={options}"
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")
