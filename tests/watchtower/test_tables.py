"""The one way stores create their tables (replicas starting together), and stores' errors
translated at their boundary: StoreUnavailable naming the store, never SQLAlchemy's errors."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect

from watchtower.cutover.store import CutoverStore
from watchtower.errors import StoreUnavailable
from watchtower.store import HistoryStore, engine_for, metadata
from watchtower.tables import create_tables

REPLICAS = 4


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: Any, tmp_path: Path) -> Iterator[str]:
    """An empty database of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tables.sqlite'}"
        return
    import psycopg

    server = request.getfixturevalue("postgres_server")
    name = f"tables_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield server.url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def test_replicas_starting_together_each_find_or_create_every_table(database_url: str) -> None:
    engines = [engine_for(database_url) for _ in range(REPLICAS)]
    start = threading.Barrier(REPLICAS)
    failures: list[BaseException] = []

    def replica(engine: Any) -> None:
        start.wait()
        try:
            HistoryStore(engine).create_schema()
            CutoverStore(engine).create_schema()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=replica, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert failures == []
        created = set(inspect(engines[0]).get_table_names())
        assert {"results", "alerts", "cutover_windows", "cutover_audit"} <= created
        create_tables(engines[0], metadata, store="history")  # again: nothing to do
    finally:
        for engine in engines:
            engine.dispose()


def test_an_unreachable_database_is_store_unavailable_naming_the_store(tmp_path: Path) -> None:
    engine = engine_for(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'wt.sqlite'}")
    try:
        with pytest.raises(StoreUnavailable, match="the history store's tables"):
            HistoryStore(engine).create_schema()
        with pytest.raises(StoreUnavailable, match="the history store failed: OperationalError"):
            HistoryStore(engine).latest()
        with pytest.raises(StoreUnavailable, match="the history store failed"):
            HistoryStore(engine).ping()
        with pytest.raises(StoreUnavailable, match="the cutover store failed"):
            CutoverStore(engine).windows()
    finally:
        engine.dispose()
