"""The history store: every result, and the latest state of every alert received, through
SQLAlchemy Core (SQLite file or PostgreSQL). Its methods raise StoreUnavailable, never
SQLAlchemy's errors."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

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
    and_,
    case,
    create_engine,
    delete,
    event,
    func,
    not_,
    or_,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite

from watchtower.errors import StoreUnavailable
from watchtower.model import Alert, Result, Status, StatusCount, StepResult
from watchtower.status import RANK, DayRollup, DayTotals, Feed, rollup_deltas
from watchtower.tables import create_tables, translated

T = TypeVar("T")
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
ROLLUP_DAYS = 400


def engine_for(url: str) -> Engine:
    """An engine for a settings URL; `postgresql://` means psycopg 3.

    A database that does not answer (stopped, frozen, unroutable) fails a connection within
    `CONNECT_TIMEOUT` seconds and a wait for a pooled one within `POOL_TIMEOUT`, so a page or a
    cycle says "unreachable" on time instead of hanging.
    """
    connect_args: dict[str, Any] = {}
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("postgresql"):
        connect_args["connect_timeout"] = CONNECT_TIMEOUT
    engine = create_engine(url, pool_pre_ping=True, connect_args=connect_args, **_pool_args(url))
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=5000")
            cursor.close()

    return engine


STORE = "history"
CONNECT_TIMEOUT = 5  # seconds
POOL_TIMEOUT = 5.0  # seconds
# A database that accepted the connection and then froze (SIGSTOP, a hung host) never answers:
# no client timeout ends the wait. Writes and pings are waited for this long, then reported
# unreachable; the abandoned call ends when the database answers or drops the connection.
WRITE_DEADLINE = 5.0  # seconds


def _bounded(call: Callable[[], T], what: str, seconds: float = WRITE_DEADLINE) -> T:
    box: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            box.append(call())
        except BaseException as exc:  # handed to the caller
            error.append(exc)

    worker = threading.Thread(target=run, name=f"history-{what}", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise StoreUnavailable(f"the {STORE} store did not answer within {seconds:g} s ({what})")
    if error:
        raise error[0]
    return box[0]


def _pool_args(url: str) -> dict[str, Any]:
    return {"pool_timeout": POOL_TIMEOUT} if url.startswith("postgresql") else {}


class HistoryStore:
    """Adapter over a ready SQLAlchemy engine (the caller owns it)."""

    def __init__(self, engine: Engine, feeds: Mapping[str, Feed] | None = None) -> None:
        self.engine = engine
        # The probes and checks by name: which rows a result adds to, and its interval. Results
        # of a name not here are stored, but roll up into no day.
        self.feeds: Mapping[str, Feed] = dict(feeds or {})
        # Writers run in the same transaction as each batch of results, after its rollups
        # (the root adds the status page's sealed periods' `forget`, watchtower/sealed.py).
        self.on_add: list[Callable[[Any, list[Result], Mapping[str, Feed]], None]] = []

    def create_schema(self) -> None:
        """Every table on `metadata` (the runbook and cutover tables too, once imported)."""
        create_tables(self.engine, metadata, store=STORE)

    def add(self, items: Iterable[Result]) -> None:
        """Store results and add them to their daily rollups, in one transaction, within
        WRITE_DEADLINE seconds (else StoreUnavailable)."""
        items = list(items)
        if items and self.local:
            self._add(items)
        elif items:
            _bounded(lambda: self._add(items), "write")

    @translated(STORE)
    def _add(self, items: list[Result]) -> None:
        rows = [_row(r) for r in items]
        deltas = rollup_deltas(self.feeds, items)
        with self.engine.begin() as conn:
            conn.execute(results.insert(), rows)
            for delta in deltas:
                conn.execute(self._add_to_rollup(delta))
            for write in self.on_add:
                write(conn, items, self.feeds)

    def _add_to_rollup(self, d: DayRollup) -> Any:
        values = {
            "component": d.component,
            "day": d.day.isoformat(),
            "source": d.source,
            "interval_seconds": d.interval,
            "ok": d.ok,
            "warning": d.warning,
            "critical": d.critical,
            "unknown": d.unknown,
            "worst_rank": RANK[d.worst],
            "worst": d.worst.value,
            "worst_reason": d.worst_reason,
        }
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        insert = dialect.insert(rollups).values(values)
        new = insert.excluded
        worse = new.worst_rank > rollups.c.worst_rank
        return insert.on_conflict_do_update(
            index_elements=[rollups.c.component, rollups.c.day, rollups.c.source],
            set_={
                "interval_seconds": new.interval_seconds,
                **{k: rollups.c[k] + new[k] for k in ("ok", "warning", "critical", "unknown")},
                "worst_rank": case((worse, new.worst_rank), else_=rollups.c.worst_rank),
                "worst": case((worse, new.worst), else_=rollups.c.worst),
                "worst_reason": case((worse, new.worst_reason), else_=rollups.c.worst_reason),
            },
        )

    @translated(STORE)
    def rollups(self, *, since: date, until: date | None = None) -> list[DayRollup]:
        """Daily rollups of the UTC days in [since, until)."""
        query = select(rollups).where(rollups.c.day >= since.isoformat())
        if until is not None:
            query = query.where(rollups.c.day < until.isoformat())
        with self.engine.connect() as conn:
            return [
                DayRollup(
                    component=row.component,
                    day=date.fromisoformat(row.day),
                    source=row.source,
                    interval=row.interval_seconds,
                    ok=row.ok,
                    warning=row.warning,
                    critical=row.critical,
                    unknown=row.unknown,
                    worst=_STATUS[row.worst],
                    worst_reason=row.worst_reason,
                )
                for row in conn.execute(query)
            ]

    @translated(STORE)
    def rollup_totals(self, *, since: date, until: date | None = None) -> list[DayTotals]:
        """Daily rollups of [since, until) summed per component and day in SQL: the 90-day bars
        read one row per component and day, not one per source (`status.totals_of`)."""
        r = rollups.c
        query = select(
            r.component,
            r.day,
            func.max(r.interval_seconds * r.critical).label("down"),
            func.max(r.interval_seconds * (r.ok + r.warning + r.critical)).label("observed"),
            func.max(r.interval_seconds * r.warning).label("degraded"),
            func.sum(r.ok).label("ok"),
            func.sum(r.warning).label("warning"),
            func.sum(r.critical).label("critical"),
            func.sum(r.unknown).label("unknown"),
        ).where(r.day >= since.isoformat())
        if until is not None:
            query = query.where(r.day < until.isoformat())
        query = query.group_by(r.component, r.day)
        with self.engine.connect() as conn:
            return [
                DayTotals(
                    component=row.component,
                    day=date.fromisoformat(row.day),
                    down=float(row.down or 0),
                    observed=float(row.observed or 0),
                    degraded=float(row.degraded or 0),
                    ok=int(row.ok or 0),
                    warning=int(row.warning or 0),
                    critical=int(row.critical or 0),
                    unknown=int(row.unknown or 0),
                )
                for row in conn.execute(query)
            ]

    @translated(STORE)
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

    @translated(STORE)
    def history(
        self, name: str | None = None, *, since: datetime, until: datetime | None = None
    ) -> list[Result]:
        """Results observed in [since, until), oldest first; one name or all."""
        query = select(results).where(results.c.observed_at >= _utc(since))
        if until is not None:
            query = query.where(results.c.observed_at < _utc(until))
        if name is not None:
            query = query.where(results.c.name == name)
        with self.engine.connect() as conn:
            return [_result(row) for row in conn.execute(query.order_by(results.c.observed_at))]

    @translated(STORE)
    def status_counts(self, *, since: datetime, until: datetime | None = None) -> list[StatusCount]:
        """First attempts per name, UTC hour and status in [since, until), counted in SQL.

        A probe's immediate retry (attempt 2) is left out: the first attempt already carries the
        run's status (critical only when the retry confirmed it). This is what the status page's
        uptime and daily bars read, so 90 days of results never cross the wire one by one.
        """
        hour = _hour(self.engine).label("hour")
        query = select(results.c.name, hour, results.c.status, func.count().label("n")).where(
            results.c.observed_at >= _utc(since), results.c.attempt == 1
        )
        if until is not None:
            query = query.where(results.c.observed_at < _utc(until))
        query = query.group_by(results.c.name, hour, results.c.status)
        with self.engine.connect() as conn:
            return [
                StatusCount(
                    name=row.name,
                    hour=_parsed_hour(row.hour),
                    status=_STATUS[row.status],
                    count=row.n,
                )
                for row in conn.execute(query)
            ]

    @translated(STORE)
    def newest(self, name: str, *, count: int = 1) -> list[Result]:
        """The `count` newest results of `name`, oldest first: one index seek, whatever the size."""
        query = (
            select(results)
            .where(results.c.name == name)
            .order_by(results.c.observed_at.desc(), results.c.id.desc())
            .limit(count)
        )
        with self.engine.connect() as conn:
            return [_result(row) for row in conn.execute(query)][::-1]

    @translated(STORE)
    def newest_since(self, since: datetime, *, count: int = 2) -> dict[str, list[Result]]:
        """The `count` newest results of every name with one at or after `since`, oldest first.

        One range read over the recent results instead of one seek per name: the status page
        asks with `since` a few intervals back, and seeks only the names this leaves out.
        """
        query = (
            select(results)
            .where(results.c.observed_at >= _utc(since))
            .order_by(results.c.observed_at.desc(), results.c.id.desc())
        )
        out: dict[str, list[Result]] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                kept = out.setdefault(row.name, [])
                if len(kept) < count:
                    kept.append(_result(row))
        return {name: kept[::-1] for name, kept in out.items()}

    @translated(STORE)
    def problems(
        self, name: str, *, since: datetime, until: datetime | None = None
    ) -> list[Result]:
        """First attempts of `name` in [since, until) that were not ok, oldest first."""
        query = select(results).where(
            results.c.name == name,
            results.c.observed_at >= _utc(since),
            results.c.attempt == 1,
            results.c.status != Status.OK.value,
        )
        if until is not None:
            query = query.where(results.c.observed_at < _utc(until))
        with self.engine.connect() as conn:
            return [_result(row) for row in conn.execute(query.order_by(results.c.observed_at))]

    # -- alerts ---------------------------------------------------------------------------------

    @translated(STORE)
    def record_alert(self, alert: Alert, *, received_at: datetime) -> bool:
        """Keep the alert's latest state; False (nothing written) when it is older than that.

        Alertmanager retries and its replicas deliver notifications late and twice. Order is
        (starts_at, then resolved after firing): an older episode, or a firing notification of
        an episode already resolved, leaves the stored state as it is.
        """
        values = {
            "fingerprint": alert.fingerprint,
            "status": alert.status,
            "labels": alert.labels,
            "annotations": alert.annotations,
            "starts_at": _utc(alert.starts_at),
            "ends_at": _utc(alert.ends_at) if alert.ends_at is not None else None,
            "generator_url": alert.generator_url,
            "received_at": _utc(received_at),
        }
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        insert = dialect.insert(alerts).values(values)
        new = insert.excluded
        older = or_(
            new.starts_at < alerts.c.starts_at,
            and_(
                new.starts_at == alerts.c.starts_at,
                alerts.c.status == "resolved",
                new.status == "firing",
            ),
        )
        upsert = insert.on_conflict_do_update(
            index_elements=[alerts.c.fingerprint],
            set_={k: new[k] for k in values if k != "fingerprint"},
            where=not_(older),
        )
        with self.engine.begin() as conn:
            # RETURNING, not rowcount: against PostgreSQL, a skipped update still counted 1 row.
            return conn.execute(upsert.returning(alerts.c.fingerprint)).first() is not None

    @translated(STORE)
    def alert(self, fingerprint: str) -> Alert | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(alerts).where(alerts.c.fingerprint == fingerprint)).first()
        return _alert(row) if row is not None else None

    @translated(STORE)
    def firing_alerts(self) -> list[Alert]:
        """Every alert whose latest notification said firing, oldest first."""
        query = select(alerts).where(alerts.c.status == "firing").order_by(alerts.c.starts_at)
        with self.engine.connect() as conn:
            return [_alert(row) for row in conn.execute(query)]

    @translated(STORE)
    def alerts_between(self, start: datetime, end: datetime) -> list[Alert]:
        """Alerts whose episode overlaps [start, end) (still firing ones included), by start."""
        query = (
            select(alerts)
            .where(
                alerts.c.starts_at < _utc(end),
                or_(alerts.c.ends_at.is_(None), alerts.c.ends_at >= _utc(start)),
            )
            .order_by(alerts.c.starts_at)
        )
        with self.engine.connect() as conn:
            return [_alert(row) for row in conn.execute(query)]

    @translated(STORE)
    def add_note(self, component: str, day: date, text: str, *, author: str, at: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                incident_notes.insert().values(
                    component=component, day=day.isoformat(), text=text, author=author, at=_utc(at)
                )
            )

    @translated(STORE)
    def notes(self, component: str, day: date) -> list[tuple[str, str, datetime]]:
        """Every note on a component's day, oldest first: (text, author, at)."""
        query = (
            select(incident_notes)
            .where(incident_notes.c.component == component, incident_notes.c.day == day.isoformat())
            .order_by(incident_notes.c.id)
        )
        with self.engine.connect() as conn:
            return [(r.text, r.author, _aware(r.at)) for r in conn.execute(query)]

    @translated(STORE)
    def prune(self, *, before: datetime) -> int:
        """Delete results and resolved alerts older than `before` (retention); returns how many.

        Daily rollups have their own retention, ROLLUP_DAYS before `before`'s day at the
        earliest, so the 90-day bars outlive a short raw retention.
        """
        before = _utc(before)
        with self.engine.begin() as conn:
            gone = conn.execute(delete(results).where(results.c.observed_at < before)).rowcount
            oldest = (before.date() - timedelta(days=ROLLUP_DAYS)).isoformat()
            conn.execute(delete(rollups).where(rollups.c.day < oldest))
            return gone + (
                conn.execute(
                    delete(alerts).where(
                        alerts.c.status == "resolved", alerts.c.received_at < before
                    )
                ).rowcount
            )

    def ping(self) -> None:
        if self.local:
            self._ping()
        else:
            _bounded(self._ping, "ping")

    @property
    def local(self) -> bool:
        """A SQLite file (or memory) cannot freeze like a server, and `sqlite://` in memory is
        one database per thread: its calls are made in the caller's thread, unbounded."""
        return self.engine.dialect.name == "sqlite"

    @translated(STORE)
    def _ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(select(1))


def _hour(engine: Engine) -> Any:
    """`YYYY-MM-DD HH` of a result's UTC hour, in the engine's SQL dialect."""
    if engine.dialect.name == "sqlite":
        # SQLite keeps the UTC timestamp as text, `YYYY-MM-DD HH:MM:SS.ffffff`.
        return func.substr(results.c.observed_at, 1, 13)
    return func.to_char(func.timezone("UTC", results.c.observed_at), "YYYY-MM-DD HH24")


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _aware(moment: datetime) -> datetime:
    # SQLite keeps no zone; we only ever write UTC. PostgreSQL answers in its session's zone.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _alert(row: Any) -> Alert:
    return Alert(
        fingerprint=row.fingerprint,
        status=row.status,
        labels=dict(row.labels),
        annotations=dict(row.annotations),
        starts_at=_aware(row.starts_at),
        ends_at=_aware(row.ends_at) if row.ends_at is not None else None,
        generator_url=row.generator_url,
    )


def _row(r: Result) -> dict[str, Any]:
    return {
        "kind": r.kind,
        "name": r.name,
        "status": r.status.value,
        "reason": r.reason,
        "observed_at": _utc(r.observed_at),
        "figures": r.figures,
        "thresholds": r.thresholds,
        "steps": [
            {"name": s.name, "ok": s.ok, "seconds": s.seconds, "reason": s.reason} for s in r.steps
        ],
        "duration_seconds": r.duration_seconds,
        "attempt": r.attempt,
    }


_STATUS = {s.value: s for s in Status}  # a dict lookup: Status(value) is slow in bulk


@functools.lru_cache(maxsize=4096)
def _parsed_hour(text: str) -> datetime:
    """'2026-12-07 13' as an aware UTC hour (a few dozen distinct hours per read)."""
    return datetime.strptime(text, "%Y-%m-%d %H").replace(tzinfo=UTC)


def _result(row: Any) -> Result:
    return Result(
        name=row.name,
        kind=row.kind,
        status=Status(row.status),
        reason=row.reason,
        observed_at=_aware(row.observed_at),
        figures=dict(row.figures),
        thresholds=dict(row.thresholds),
        steps=tuple(StepResult(**s) for s in row.steps),
        duration_seconds=row.duration_seconds,
        attempt=row.attempt,
    )
