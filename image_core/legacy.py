"""The legacy PostgreSQL dual-write (Story 6.1). The one module that knows PostgreSQL.

Delete this module, and its two call sites in `app.py`, when the migration is over (Story 6.2).
It is imported only when ENABLE_DYNAMODB_DUAL_WRITE is on, so the image core runs without psycopg.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import psycopg
from psycopg import sql

from image_core.config import Settings, sql_table
from image_core.errors import LegacyWriteError
from image_core.model import ImageRecord

# `{table}` and `{index}` are composed as identifiers (psycopg.sql.Identifier), never as text.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS {table} (
    id             text PRIMARY KEY,
    user_id        text NOT NULL,
    original_key   text NOT NULL,
    thumbnail_key  text NOT NULL,
    content_type   text NOT NULL,
    width          integer NOT NULL,
    height         integer NOT NULL,
    size_bytes     bigint NOT NULL,
    created_at     timestamptz NOT NULL,
    inserted_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS {index} ON {table} (user_id, created_at);
"""

_INSERT = """
INSERT INTO {table}
    (id, user_id, original_key, thumbnail_key, content_type, width, height, size_bytes, created_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (id) DO NOTHING
"""
_DELETE = "DELETE FROM {table} WHERE id = %s"


def _identifier(table: str) -> sql.Identifier:
    return sql.Identifier(*sql_table("IMAGE_LEGACY_TABLE", table).split("."))


def schema(table: str) -> sql.Composed:
    """The table and its index, created if missing; `table` is `schema.table` or `table`."""
    # An index lives in its table's schema: its own name is never qualified.
    index = sql.Identifier(f"{table.rpartition('.')[2]}_user_created")
    return sql.SQL(_SCHEMA).format(table=_identifier(table), index=index)


SCHEMA = schema(Settings.legacy_table)  # the default table's, for tools and tests


class PostgresGalleryWriter:
    """Mirrors image writes into the legacy table (IMAGE_LEGACY_TABLE, `schema.table` or
    `table`); connects lazily, reconnects after a failure."""

    def __init__(
        self, url: str, *, table: str = Settings.legacy_table, connect_timeout: int = 2
    ) -> None:
        self._url = url
        self.table = table
        name = _identifier(table)
        self._schema = schema(table)
        self._insert = sql.SQL(_INSERT).format(table=name)
        self._delete = sql.SQL(_DELETE).format(table=name)
        self._connect_timeout = connect_timeout
        self._conn: psycopg.Connection | None = None
        self._lock = threading.Lock()

    def bootstrap(self) -> None:
        self._run(lambda conn: conn.execute(self._schema), what=f"create table {self.table}")

    def insert(self, record: ImageRecord) -> None:
        row = (
            record.image_id,
            record.user_id,
            record.original_key,
            record.thumbnail_key,
            record.content_type,
            record.width,
            record.height,
            record.size_bytes,
            record.created_at,
        )
        self._run(
            lambda conn: conn.execute(self._insert, row), what=f"insert image {record.image_id!r}"
        )

    def delete(self, image_id: str) -> None:
        self._run(
            lambda conn: conn.execute(self._delete, (image_id,)),
            what=f"delete image {image_id!r}",
        )

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _run(self, statement: Callable[[psycopg.Connection], object], *, what: str) -> None:
        with self._lock:
            # A connection that was open may have died since (server restart, idle kill): the
            # statements are safe to repeat, so one retry on a fresh connection costs nothing.
            attempts = 2 if self._conn is not None else 1
            for attempt in range(1, attempts + 1):
                try:
                    if self._conn is None or self._conn.closed:
                        self._conn = psycopg.connect(
                            self._url,
                            autocommit=True,
                            connect_timeout=self._connect_timeout,
                            options="-c statement_timeout=2000",
                        )
                    statement(self._conn)
                    return
                except psycopg.Error as exc:
                    if self._conn is not None:
                        self._conn.close()
                        self._conn = None
                    if attempt == attempts or not isinstance(exc, psycopg.OperationalError):
                        message = " ".join(str(exc).split())
                        raise LegacyWriteError(
                            f"cannot {what} in PostgreSQL {self.table}: {message}"
                        ) from exc
