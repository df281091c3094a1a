"""Contract fixtures: every store suite runs over SQLite and the real PostgreSQL, every job-lock
suite over its in-process and Redis forms.

`database_url` (tests/watchtower/conftest.py) gives each PostgreSQL test a schema of its own on
the session's server and a session time zone that is not UTC.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine

from watchtower.cutover.store import CutoverStore
from watchtower.store import HistoryStore, engine_for


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
