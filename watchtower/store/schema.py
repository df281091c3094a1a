"""The history store's tables, on the one `metadata` the runbook and cutover tables join, and how
its moments are written and read (UTC)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
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
)
from sqlalchemy.dialects import postgresql, sqlite

from watchtower.model import Status

STORE = "history"
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

# One row per alert (Alertmanager's fingerprint of its labels): its latest state.
alerts = Table(
    "alerts",
    metadata,
    Column("fingerprint", String(64), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("labels", JSON, nullable=False),
    Column("annotations", JSON, nullable=False),
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("ends_at", DateTime(timezone=True), nullable=True),
    Column("generator_url", Text, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
)
Index("alerts_status", alerts.c.status)


# One row per component, UTC day and source: what the page's days and uptime read. Written in the
# same transaction as the results it sums; kept ROLLUP_DAYS, whatever the raw retention.
rollups = Table(
    "rollups",
    metadata,
    Column("component", String(64), primary_key=True),
    Column("day", String(10), primary_key=True),  # YYYY-MM-DD (UTC)
    Column("source", String(64), primary_key=True),
    Column("interval_seconds", Float, nullable=False),
    Column("ok", Integer, nullable=False),
    Column("warning", Integer, nullable=False),
    Column("critical", Integer, nullable=False),
    Column("unknown", Integer, nullable=False),
    Column("worst_rank", Integer, nullable=False),
    Column("worst", String(16), nullable=False),
    Column("worst_reason", Text, nullable=False),
)
Index("rollups_day", rollups.c.day)

# Operators' public notes on an incident (a component's day), append-only: every note is kept
# with who wrote it and when, so the table is its own audit log; the page shows the newest.
incident_notes = Table(
    "incident_notes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("component", String(64), nullable=False),
    Column("day", String(10), nullable=False),
    Column("text", Text, nullable=False),
    Column("author", String(128), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)
Index("incident_notes_day", incident_notes.c.component, incident_notes.c.day)

# A number per kind of data, changed in the same transaction as every write to it: a reader that
# keeps what it read (the status page) tells from one small read whether anything changed since.
# Row "results": the results and their rollups (`HistoryStore.add`, `prune`).
data_versions = Table(
    "data_versions",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("version", BigInteger, nullable=False),
)
ROLLUP_DAYS = 400

STATUS = {s.value: s for s in Status}  # a dict lookup: Status(value) is slow in bulk


def utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def aware(moment: datetime) -> datetime:
    # SQLite keeps no zone; we only ever write UTC. PostgreSQL answers in its session's zone.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def insert_for(engine: Engine, table: Table, values: Mapping[str, Any] | None = None) -> Any:
    """The engine's dialect's INSERT (the one with ON CONFLICT: SQLite, PostgreSQL), of `values`
    when given; without, rows are passed as parameters when it runs (compiled once)."""
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    insert = dialect.insert(table)
    return insert if values is None else insert.values(values)
