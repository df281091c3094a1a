"""The history store: every result, through SQLAlchemy Core (SQLite file or PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    func,
    select,
)

from watchtower.model import Result, Status, StepResult

metadata = MetaData()

results = Table(
    "results",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("name", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("observed_at", DateTime(timezone=True), nullable=False),
    Column("figures", JSON, nullable=False),
    Column("thresholds", JSON, nullable=False),
    Column("steps", JSON, nullable=False),
    Column("duration_seconds", Float, nullable=False),
    Column("attempt", Integer, nullable=False),
)
Index("results_name_observed", results.c.name, results.c.observed_at)
Index("results_observed", results.c.observed_at)


def engine_for(url: str) -> Engine:
    """An engine for a settings URL; `postgresql://` means psycopg 3."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    engine = create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=5000")
            cursor.close()

    return engine


class HistoryStore:
    """Adapter over a ready SQLAlchemy engine (the caller owns it)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create_schema(self) -> None:
        metadata.create_all(self.engine)

    def add(self, items: Iterable[Result]) -> None:
        rows = [_row(r) for r in items]
        if rows:
            with self.engine.begin() as conn:
                conn.execute(results.insert(), rows)

    def latest(self) -> dict[str, Result]:
        """The newest result of every probe and check."""
        newest = (
            select(results.c.name, func.max(results.c.id).label("id"))
            .group_by(results.c.name)
            .subquery()
        )
        query = select(results).join(newest, results.c.id == newest.c.id)
        with self.engine.connect() as conn:
            return {row.name: _result(row) for row in conn.execute(query)}

    def history(
        self, name: str | None = None, *, since: datetime, until: datetime | None = None
    ) -> list[Result]:
        """Results observed in [since, until), oldest first; one name or all."""
        query = select(results).where(results.c.observed_at >= since)
        if until is not None:
            query = query.where(results.c.observed_at < until)
        if name is not None:
            query = query.where(results.c.name == name)
        with self.engine.connect() as conn:
            return [_result(row) for row in conn.execute(query.order_by(results.c.observed_at))]

    def prune(self, *, before: datetime) -> int:
        """Delete results older than `before` (retention); returns how many."""
        with self.engine.begin() as conn:
            return conn.execute(delete(results).where(results.c.observed_at < before)).rowcount

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(select(1))


def _row(r: Result) -> dict[str, Any]:
    return {
        "kind": r.kind,
        "name": r.name,
        "status": r.status.value,
        "reason": r.reason,
        "observed_at": r.observed_at,
        "figures": r.figures,
        "thresholds": r.thresholds,
        "steps": [
            {"name": s.name, "ok": s.ok, "seconds": s.seconds, "reason": s.reason} for s in r.steps
        ],
        "duration_seconds": r.duration_seconds,
        "attempt": r.attempt,
    }


def _result(row: Any) -> Result:
    observed = row.observed_at
    if observed.tzinfo is None:  # SQLite keeps no zone; we only ever write UTC
        observed = observed.replace(tzinfo=UTC)
    return Result(
        name=row.name,
        kind=row.kind,
        status=Status(row.status),
        reason=row.reason,
        observed_at=observed,
        figures=dict(row.figures),
        thresholds=dict(row.thresholds),
        steps=tuple(StepResult(**s) for s in row.steps),
        duration_seconds=row.duration_seconds,
        attempt=row.attempt,
    )
