"""What every SQL store shares: creating its tables safely when replicas start together, and
translating SQLAlchemy's errors into StoreUnavailable at the store's boundary.

    create_tables(engine, metadata, tables, store="cutover")
    @translated("history")   on each public method of a store

On PostgreSQL the creators take one transaction-level advisory lock, so one replica creates the
tables while the others wait and then find them; on SQLite (one file, one machine) a creator
that lost a race looks again. Nothing above a store sees SQLAlchemy's exceptions.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable, Iterable
from typing import ParamSpec, TypeVar

from sqlalchemy import Engine, MetaData, Table, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from watchtower.errors import StoreUnavailable

P = ParamSpec("P")
T = TypeVar("T")

# One advisory lock key for every store's DDL: creating tables is rare and quick.
LOCK_KEY = zlib.crc32(b"watchtower.tables") & 0x7FFFFFFF


def create_tables(
    engine: Engine, metadata: MetaData, tables: Iterable[Table] | None = None, *, store: str
) -> None:
    """Create the tables (all of `metadata`'s when None) that do not exist yet."""
    chosen = list(tables) if tables is not None else None
    # A conflict means another creator made one more of these tables: one retry per table ends it.
    attempts = len(chosen if chosen is not None else metadata.sorted_tables) + 1
    for attempt in range(1, attempts + 1):
        try:
            with engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    # Released at commit; the DDL commits with it.
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
                metadata.create_all(conn, tables=chosen)
            return
        except DBAPIError as exc:
            # Another creator made a table between this one's look and its CREATE: look again.
            if attempt == attempts:
                raise StoreUnavailable(
                    f"the {store} store's tables could not be created: {reason(exc)}"
                ) from exc
        except SQLAlchemyError as exc:
            raise StoreUnavailable(
                f"the {store} store's tables could not be created: {reason(exc)}"
            ) from exc


def translated(store: str) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """A store method's SQLAlchemy errors, raised as StoreUnavailable naming the store."""

    def decorate(method: Callable[P, T]) -> Callable[P, T]:
        @functools.wraps(method)
        def call(*args: P.args, **kwargs: P.kwargs) -> T:
            try:
                return method(*args, **kwargs)
            except SQLAlchemyError as exc:
                raise StoreUnavailable(f"the {store} store failed: {reason(exc)}") from exc

        return call

    return decorate


def reason(exc: SQLAlchemyError) -> str:
    """The driver's first line, without the statement or its parameters (they may hold data)."""
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    first = lines[0] if lines else ""
    return f"{type(cause).__name__}: {first[:200]}" if first else type(cause).__name__
