"""Contract fixtures: every store suite runs over SQLite and the real PostgreSQL, every job-lock
suite over its in-process and Redis forms.

Each PostgreSQL test gets a schema of its own (its search_path) on the session's server, and a
session time zone that is not UTC (Asia/Kolkata, +05:30): a store must not depend on the server's
zone, and a half-hour offset shows up in every hour bucket it could get wrong.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import Engine

from watchtower.cutover.store import CutoverStore
from watchtower.store import HistoryStore, engine_for

SERVER_ZONE = "Asia/Kolkata"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: Any, tmp_path: Path) -> Iterator[str]:
    """An empty database, one per test: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'watchtower.sqlite'}"
        return
    import psycopg

    server = request.getfixturevalue("postgres_server")
    schema = f"contract_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    options = quote(f"-c search_path={schema} -c TimeZone={SERVER_ZONE}")
    yield f"{server.url}?options={options}"
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def make_engine(database_url: str) -> Iterator[Callable[[], Engine]]:
    """Engines on the test's database, one per replica; all disposed afterwards."""
    made: list[Engine] = []

    def make() -> Engine:
        made.append(engine_for(database_url))
        return made[-1]

    yield make
    for engine in made:
        engine.dispose()


@pytest.fixture
def engine(make_engine: Callable[[], Engine]) -> Engine:
    return make_engine()


@pytest.fixture
def history(engine: Engine) -> HistoryStore:
    store = HistoryStore(engine)
    store.create_schema()
    return store


@pytest.fixture
def cutover(engine: Engine) -> CutoverStore:
    store = CutoverStore(engine)
    store.create_schema()
    return store


@pytest.fixture
def replica(cutover: CutoverStore, make_engine: Callable[[], Engine]) -> CutoverStore:
    """A second replica's cutover store: the same database through an engine of its own."""
    return CutoverStore(make_engine())
