"""The cutover's tables, beside the history store's (same `metadata`, same engine).

    cutover_windows   one row per window: the flip, its baseline, how it closed
    cutover_samples   one row per window and slot: every source's raw reading (JSON)
    cutover_audit     append-only and hash-chained: openings, sign-offs, overrides, rollbacks
    cutover_reports   the frozen report of a signed window: canonical JSON and its sha256

Only inserts touch the audit log; its `prev_hash` is unique, so two replicas appending at once
cannot both extend the same entry (the loser retries on the new head). Methods raise
StoreUnavailable when the database fails, never SQLAlchemy's errors.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    DateTime,
    Engine,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError

from watchtower.cutover.canonical import GENESIS, entry_hash
from watchtower.cutover.errors import NoWindow, Refused
from watchtower.cutover.model import (
    AuditEntry,
    Baseline,
    CloseReason,
    Reading,
    Sample,
    StoredReport,
    Window,
)
from watchtower.store import metadata
from watchtower.tables import create_tables, translated

log = logging.getLogger(__name__)

windows = Table(
    "cutover_windows",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("opened_by", String(200), nullable=False),
    Column("via", String(32), nullable=False),
    Column("confirmed_by", String(200), nullable=True),
    Column("comment", Text, nullable=False),
    Column("duration_seconds", Integer, nullable=False),
    Column("interval_seconds", Integer, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("baseline", JSON, nullable=True),
    Column("closed_at", DateTime(timezone=True), nullable=True),
    Column("close_reason", String(16), nullable=True),
    Column("closed_by", String(200), nullable=True),
    Column("close_comment", Text, nullable=False, default=""),
)
Index("cutover_windows_opened", windows.c.opened_at)

samples = Table(
    "cutover_samples",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("window_id", String(32), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("taken_at", DateTime(timezone=True), nullable=False),
    Column("metrics_start", DateTime(timezone=True), nullable=False),
    Column("metrics_end", DateTime(timezone=True), nullable=False),
    Column("readings", JSON, nullable=False),
    UniqueConstraint("window_id", "at", name="cutover_samples_slot"),
)

audit = Table(
    "cutover_audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(32), nullable=False),
    Column("window_id", String(32), nullable=True),
    Column("detail", JSON, nullable=False),
    Column("prev_hash", String(64), nullable=False, unique=True),
    Column("hash", String(64), nullable=False),
)
Index("cutover_audit_window", audit.c.window_id)

reports = Table(
    "cutover_reports",
    metadata,
    Column("window_id", String(32), primary_key=True),
    Column("frozen_at", DateTime(timezone=True), nullable=False),
    Column("document", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
)

TABLES = (windows, samples, audit, reports)
STORE = "cutover"


class CutoverStore:
    """Adapter over a ready SQLAlchemy engine (the caller owns it)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create_schema(self) -> None:
        create_tables(self.engine, metadata, TABLES, store=STORE)

    # -- windows --------------------------------------------------------------------------------

    @translated(STORE)
    def add_window(self, window: Window) -> None:
        """Store a new window; refused while another one is open, or opening on a replica."""
        with self.engine.begin() as conn:
            _lock(conn, windows)
            existing = conn.execute(
                select(windows.c.id, windows.c.opened_at).where(windows.c.closed_at.is_(None))
            ).first()
            if existing is not None:
                opened = _aware(existing.opened_at).strftime("%Y-%m-%d %H:%M")
                raise Refused(
                    f"cutover window {existing.id} (opened {opened} UTC) is still open: close it "
                    "(signed or rolled back) first"
                )
            try:
                conn.execute(windows.insert().values(_window_row(window)))
            except IntegrityError as exc:
                raise Refused(f"a cutover window {window.id!r} exists already") from exc

    @translated(STORE)
    def windows(self) -> list[Window]:
        """Every window, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(windows).order_by(windows.c.opened_at.desc()))
            return [_window(row) for row in rows]

    @translated(STORE)
    def window(self, window_id: str) -> Window:
        with self.engine.connect() as conn:
            row = conn.execute(select(windows).where(windows.c.id == window_id)).first()
        if row is None:
            raise NoWindow(f"no cutover window {window_id!r}")
        return _window(row)

    @translated(STORE)
    def open_window(self) -> Window | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(windows).where(windows.c.closed_at.is_(None))).first()
        return _window(row) if row is not None else None

    @translated(STORE)
    def set_baseline(self, window_id: str, baseline: Baseline) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(windows).where(windows.c.id == window_id).values(baseline=baseline.as_json())
            )

    @translated(STORE)
    def close(
        self, window_id: str, *, reason: CloseReason, by: str, at: datetime, comment: str
    ) -> None:
        with self.engine.begin() as conn:
            done = conn.execute(
                update(windows)
                .where(windows.c.id == window_id, windows.c.closed_at.is_(None))
                .values(
                    closed_at=_utc(at),
                    close_reason=reason.value,
                    closed_by=by,
                    close_comment=comment,
                )
            ).rowcount
        if not done:
            raise Refused(f"cutover window {window_id!r} is already closed")

    # -- samples --------------------------------------------------------------------------------

    @translated(STORE)
    def add_sample(self, sample: Sample) -> bool:
        """False when the slot already has its sample (another replica took it)."""
        row = {
            "window_id": sample.window_id,
            "at": _utc(sample.at),
            "taken_at": _utc(sample.taken_at),
            "metrics_start": _utc(sample.metrics_start),
            "metrics_end": _utc(sample.metrics_end),
            "readings": {k: v.as_json() for k, v in sample.readings.items()},
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(samples.insert().values(row))
        except IntegrityError:
            return False
        return True

    @translated(STORE)
    def has_sample(self, window_id: str, at: datetime) -> bool:
        with self.engine.connect() as conn:
            return (
                conn.execute(
                    select(samples.c.id).where(
                        samples.c.window_id == window_id, samples.c.at == _utc(at)
                    )
                ).first()
                is not None
            )

    @translated(STORE)
    def samples(self, window_id: str) -> list[Sample]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(samples).where(samples.c.window_id == window_id).order_by(samples.c.at)
            )
            return [
                Sample(
                    window_id=row.window_id,
                    at=_aware(row.at),
                    taken_at=_aware(row.taken_at),
                    metrics_start=_aware(row.metrics_start),
                    metrics_end=_aware(row.metrics_end),
                    readings={k: Reading.from_json(v) for k, v in row.readings.items()},
                )
                for row in rows
            ]

    # -- the audit log --------------------------------------------------------------------------

    @translated(STORE)
    def append(
        self,
        *,
        at: datetime,
        actor: str,
        action: str,
        window_id: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> AuditEntry:
        detail = dict(detail or {})
        for _attempt in range(5):
            try:
                with self.engine.begin() as conn:
                    _lock(conn, audit)  # replicas append in turn, not 5 tries and out
                    head = conn.execute(
                        select(audit.c.hash).order_by(audit.c.id.desc()).limit(1)
                    ).scalar()
                    prev = head or GENESIS
                    digest = entry_hash(
                        prev_hash=prev,
                        at=at,
                        actor=actor,
                        action=action,
                        window_id=window_id,
                        detail=detail,
                    )
                    new_id = conn.execute(
                        audit.insert()
                        .values(
                            at=_utc(at),
                            actor=actor,
                            action=action,
                            window_id=window_id,
                            detail=detail,
                            prev_hash=prev,
                            hash=digest,
                        )
                        .returning(audit.c.id)
                    ).scalar_one()
            except IntegrityError:
                continue  # another writer extended the chain first: retry on its head
            return AuditEntry(
                id=new_id,
                at=_utc(at),
                actor=actor,
                action=action,
                window_id=window_id,
                detail=detail,
                prev_hash=prev,
                hash=digest,
            )
        raise RuntimeError("could not append to the cutover audit log after 5 attempts")

    @translated(STORE)
    def audit(self, window_id: str | None = None) -> list[AuditEntry]:
        """The audit log, oldest first: all of it, or one window's entries."""
        query = select(audit).order_by(audit.c.id)
        if window_id is not None:
            query = query.where(audit.c.window_id == window_id)
        with self.engine.connect() as conn:
            return [
                AuditEntry(
                    id=row.id,
                    at=_aware(row.at),
                    actor=row.actor,
                    action=row.action,
                    window_id=row.window_id,
                    detail=dict(row.detail),
                    prev_hash=row.prev_hash,
                    hash=row.hash,
                )
                for row in conn.execute(query)
            ]

    # -- frozen reports -------------------------------------------------------------------------

    @translated(STORE)
    def freeze(self, report: StoredReport) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    reports.insert().values(
                        window_id=report.window_id,
                        frozen_at=_utc(report.frozen_at),
                        document=report.document,
                        sha256=report.sha256,
                    )
                )
        except IntegrityError:
            raise Refused(f"the report of window {report.window_id!r} is frozen already") from None

    @translated(STORE)
    def report(self, window_id: str) -> StoredReport | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(reports).where(reports.c.window_id == window_id)).first()
        if row is None:
            return None
        return StoredReport(
            window_id=row.window_id,
            frozen_at=_aware(row.frozen_at),
            document=row.document,
            sha256=row.sha256,
        )


def _lock(conn: Connection, table: Table) -> None:
    """Hold `table`'s write lock to the end of the transaction: a replica writing to it at the
    same moment waits, then sees what this transaction wrote."""
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"LOCK TABLE {table.name} IN SHARE ROW EXCLUSIVE MODE"))
    else:  # SQLite locks the whole database for any write, even one that changes no row
        conn.execute(update(table).where(false()).values(id=table.c.id))


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _aware(moment: datetime) -> datetime:
    # SQLite keeps no zone; only UTC is ever written.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _window_row(w: Window) -> dict[str, Any]:
    return {
        "id": w.id,
        "opened_at": _utc(w.opened_at),
        "opened_by": w.opened_by,
        "via": w.via,
        "confirmed_by": w.confirmed_by,
        "comment": w.comment,
        "duration_seconds": w.duration_seconds,
        "interval_seconds": w.interval_seconds,
        "recorded_at": _utc(w.recorded_at),
        "baseline": w.baseline.as_json() if w.baseline else None,
        "closed_at": _utc(w.closed_at) if w.closed_at else None,
        "close_reason": w.close_reason.value if w.close_reason else None,
        "closed_by": w.closed_by,
        "close_comment": w.close_comment,
    }


def _window(row: Any) -> Window:
    return Window(
        id=row.id,
        opened_at=_aware(row.opened_at),
        opened_by=row.opened_by,
        via=row.via,
        confirmed_by=row.confirmed_by,
        comment=row.comment,
        duration_seconds=row.duration_seconds,
        interval_seconds=row.interval_seconds,
        recorded_at=_aware(row.recorded_at),
        baseline=Baseline.from_json(row.baseline) if row.baseline else None,
        closed_at=_aware(row.closed_at) if row.closed_at else None,
        close_reason=CloseReason(row.close_reason) if row.close_reason else None,
        closed_by=row.closed_by,
        close_comment=row.close_comment or "",
    )
