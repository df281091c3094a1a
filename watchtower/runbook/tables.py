"""The runbook store's tables, on `watchtower.store.metadata` (so `HistoryStore.create_schema()`
creates them with the rest, in SQLite or PostgreSQL), and what its modules share: the error
guard and the UTC reading of a stored time.

Executions, their steps, the audit log and the claims are `RunbookStore`'s (runbook/store.py,
runbook/audit.py); alert episodes and the notifications kept verbatim are its `AlertRecords`
(runbook/alert_records.py). Column dicts and SQLAlchemy's errors never leave those modules.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from watchtower.errors import StoreUnavailable
from watchtower.store import metadata


def _text(name: str, length: int | None = None, **options: Any) -> Column[Any]:
    """A required string column (`Text` without a length), unless `nullable=True` is given."""
    options.setdefault("nullable", False)
    return Column(name, String(length) if length else Text, **options)


def _time(name: str, *, required: bool = False) -> Column[Any]:
    """A time with its zone; optional unless `required`."""
    return Column(name, DateTime(timezone=True), nullable=not required)


def _count(name: str, default: int = 0) -> Column[Any]:
    return Column(name, Integer, nullable=False, default=default)


executions = Table(
    "runbook_executions",
    metadata,
    Column("id", String(32), primary_key=True),
    _text("runbook_id", 64),
    _text("title", 200),
    _text("status", 32),
    _text("mode", 16),
    Column("dry_run", Boolean, nullable=False),
    Column("params", JSON, nullable=False),
    _text("started_by", 128),
    _text("alert_fingerprint", 64, nullable=True),
    _text("alert_name", 200, nullable=True),
    _text("source"),  # the runbook as it was when the run started
    _text("path", 400),
    _text("lock_key", 400, nullable=True),
    _text("reason", default=""),
    _count("cursor"),  # the next step's position
    _text("owner", 128, nullable=True),  # the worker advancing it now
    _time("heartbeat_at"),
    _text("stop_reason", nullable=True),  # cancel or resolution asked while a step ran
    _time("created_at", required=True),
    _time("started_at"),
    _time("finished_at"),
    _time("resolved_at"),
)
Index("runbook_executions_status", executions.c.status)
Index("runbook_executions_created", executions.c.created_at)
Index("runbook_executions_fingerprint", executions.c.alert_fingerprint)

step_runs = Table(
    "runbook_step_runs",
    metadata,
    Column("execution_id", String(32), ForeignKey("runbook_executions.id"), primary_key=True),
    Column("step_id", String(64), primary_key=True),
    Column("position", Integer, nullable=False),
    _text("kind", 16),
    _text("title", 200),
    _text("status", 16),
    Column("inputs", JSON, nullable=False),
    Column("outputs", JSON, nullable=False),
    Column("plan", JSON, nullable=False),
    _text("error", default=""),
    _count("attempts"),
    _time("started_at"),
    _time("finished_at"),
    _time("requested_at"),
    _time("expires_at"),
    _text("decision", 16, nullable=True),
    _text("decided_by", 128, nullable=True),
    _time("decided_at"),
    _text("comment", default=""),
)

# The status page's maintenance windows: the executions with a step started lately (`list`).
Index("runbook_step_runs_started", step_runs.c.started_at)

audit_log = Table(
    "runbook_audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _time("at", required=True),
    _text("execution_id", 32),
    _text("runbook_id", 64),
    _text("actor", 128),
    _text("action", 32),
    _text("step_id", 64, nullable=True),
    _text("comment", default=""),
)
Index("runbook_audit_execution", audit_log.c.execution_id)

# A claim is a unique key an open execution holds: `lock:<runbook>:<target>` while it runs, and
# `alert:<runbook>:<fingerprint>` while it is open. The primary key makes taking one atomic across
# replicas; a run's claims go in the same transaction that makes it final.
claims = Table(
    "runbook_claims",
    metadata,
    Column("key", String(400), primary_key=True),
    _text("execution_id", 32),
    _time("created_at", required=True),
)
Index("runbook_claims_execution", claims.c.execution_id)

# An alert episode (one runbook, one fingerprint, one `startsAt`) and the run it started: the
# primary key makes "one run per episode" hold across replicas, retries, HA pairs and
# repeat_interval. A row outlives its run (that is the point); `execution_id` moves only when a
# route's cool-down lets a re-run start, by a conditional UPDATE two replicas cannot both win.
episodes = Table(
    "runbook_episodes",
    metadata,
    Column("key", String(400), primary_key=True),
    _text("runbook_id", 64),
    _text("fingerprint", 64),
    _time("starts_at", required=True),
    _text("execution_id", 32),  # the latest run it started
    _count("runs", default=1),
    _count("repeats"),  # firing deliveries after it finished
    _time("still_firing_at"),  # the latest of those
    _time("created_at", required=True),
)
Index("runbook_episodes_execution", episodes.c.execution_id)
Index("runbook_episodes_fingerprint", episodes.c.fingerprint)

# Every notification the webhook accepted, verbatim (the bytes Alertmanager sent), for replay:
# the newest KEEP_NOTIFICATIONS are kept (alert_records), older ones pruned as new ones arrive.
notifications = Table(
    "alert_notifications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _time("received_at", required=True),
    _text("receiver", 200),
    _text("status", 16),
    Column("alerts", Integer, nullable=False),
    _text("body"),
    _time("claimed_at"),  # an intake dispatching it
    _time("processed_at"),  # dispatched
)
Index("alert_notifications_pending", notifications.c.processed_at)


@contextlib.contextmanager
def guard(operation: str) -> Iterator[None]:
    """SQLAlchemy's errors become StoreUnavailable, naming the store and the operation (never the
    database URL: it may carry a password). An IntegrityError is the caller's to read."""
    try:
        yield
    except IntegrityError:
        raise
    except SQLAlchemyError as exc:
        cause = type(getattr(exc, "orig", None) or exc).__name__
        raise StoreUnavailable(f"runbook store: could not {operation} ({cause})") from exc


def utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


MIN_TIME = datetime.min.replace(tzinfo=UTC)
