"""The history store: every result, its daily rollups, and the latest state of every alert
received, through SQLAlchemy Core (SQLite file or PostgreSQL). Its methods raise StoreUnavailable,
never SQLAlchemy's errors.

`HistoryStore` keeps the results and hands the rest to its parts, on the same engine:
`rollups.DailyRollups` (the days the status page reads) and `incidents.IncidentLog` (alerts and
operators' notes). `schema` holds the tables, on the one `metadata` the runbook and cutover
tables join.
"""

from __future__ import annotations

import functools
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, delete, event, func, select
from sqlalchemy.exc import DisconnectionError

from watchtower.errors import StoreUnavailable
from watchtower.model import Alert, Result, Status, StatusCount, StepResult
from watchtower.status import DayRollup, DayTotals, Feed, rollup_deltas
from watchtower.store.incidents import IncidentLog
from watchtower.store.rollups import DailyRollups
from watchtower.store.schema import (
    ROLLUP_DAYS,
    STATUS,
    STORE,
    alerts,
    aware,
    data_versions,
    incident_notes,
    insert_for,
    metadata,
    results,
    rollups,
    utc,
)
from watchtower.tables import create_tables, translated

__all__ = [
    "ROLLUP_DAYS",
    "HistoryStore",
    "alerts",
    "data_versions",
    "engine_for",
    "incident_notes",
    "metadata",
    "results",
    "rollups",
]

T = TypeVar("T")
RESULTS = "results"  # the results' row in `data_versions`


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
    engine = create_engine(url, connect_args=connect_args, **_pool_args(url))
    if engine.dialect.name != "sqlite":
        _ping_when_idle(engine)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=5000")
            cursor.close()

    return engine


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
    if not url.startswith("postgresql"):
        return {}
    return {"pool_timeout": POOL_TIMEOUT, "pool_recycle": POOL_RECYCLE}


POOL_RECYCLE = 1800  # seconds: a connection this old is replaced (server and proxy idle limits)
PING_IDLE = 1.0  # seconds: a pooled connection idle longer than this is pinged before reuse


def _ping_when_idle(engine: Engine) -> None:
    """Ping a pooled connection before reuse only when it sat idle for PING_IDLE seconds.

    `pool_pre_ping` pings at every checkout: a round trip per transaction, 14% of the webhook
    intake's time (docs/performance.md). A connection reused within a second was working a
    second ago; one that idled is pinged, and a dead one is replaced before anyone uses it (the
    pool retries the checkout on DisconnectionError). A database restarted within that second
    fails one statement; SQLAlchemy then sees the disconnect and replaces every connection the
    pool held, so the caller's next try (a 503 retried, the next pass or cycle) reconnects."""

    @event.listens_for(engine, "checkin")
    def _idle_since(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < PING_IDLE:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # the pool replaces it and checks out again
            raise DisconnectionError("a pooled connection did not answer its ping") from exc


class HistoryStore:
    """Adapter over a ready SQLAlchemy engine (the caller owns it)."""

    def __init__(self, engine: Engine, feeds: Mapping[str, Feed] | None = None) -> None:
        self.engine = engine
        # The probes and checks by name: which rows a result adds to, and its interval. Results
        # of a name not here are stored, but roll up into no day.
        self.feeds: Mapping[str, Feed] = dict(feeds or {})
        self.daily = DailyRollups(engine)
        self.incidents = IncidentLog(engine)
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
            self.daily.add(conn, deltas)
            for write in self.on_add:
                write(conn, items, self.feeds)
            self._bump(conn)

    def _bump(self, conn: Connection) -> None:
        """Change the results' version in the caller's transaction (`version`).

        Last before the commit: on PostgreSQL the row stays locked until then, so writers from
        every replica take their turns only for their commits, and a later commit always has a
        higher number. A new row starts at a random number, so a database made again under a
        running replica never repeats a version that replica kept reads under.
        """
        upsert = insert_for(
            self.engine, data_versions, {"name": RESULTS, "version": secrets.randbits(62)}
        )
        conn.execute(
            upsert.on_conflict_do_update(
                index_elements=[data_versions.c.name],
                set_={"version": data_versions.c.version + 1},
            )
        )

    @translated(STORE)
    def version(self) -> tuple[int | None, int | None]:
        """What the results and their rollups are at, in one small read: equal for two calls
        only when no write committed between them, on any replica.

        The number `add` and `prune` change in their transactions, and the newest result id: the
        id also moves for a writer that does not change the number (a replica of an older
        release, during an upgrade). A reader that keeps what it read under a version reads the
        version first, so what it kept is never older than the version it is kept under.
        """
        number = select(data_versions.c.version).where(data_versions.c.name == RESULTS)
        newest = select(func.max(results.c.id))
        with self.engine.connect() as conn:
            row = conn.execute(select(number.scalar_subquery(), newest.scalar_subquery())).one()
        return row[0], row[1]

    def rollups(self, *, since: date, until: date | None = None) -> list[DayRollup]:
        """Daily rollups of the UTC days in [since, until)."""
        return self.daily.read(since=since, until=until)

    def rollup_totals(self, *, since: date, until: date | None = None) -> list[DayTotals]:
        """Daily rollups of [since, until), summed per component and day (`DailyRollups.totals`)."""
        return self.daily.totals(since=since, until=until)

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
        query = select(results).where(results.c.observed_at >= utc(since))
        if until is not None:
            query = query.where(results.c.observed_at < utc(until))
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
            results.c.observed_at >= utc(since), results.c.attempt == 1
        )
        if until is not None:
            query = query.where(results.c.observed_at < utc(until))
        query = query.group_by(results.c.name, hour, results.c.status)
        with self.engine.connect() as conn:
            return [
                StatusCount(name=name, hour=_parsed_hour(hour), status=STATUS[status], count=n)
                for name, hour, status, n in conn.execute(query)
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
            .where(results.c.observed_at >= utc(since))
            .order_by(results.c.observed_at.desc(), results.c.id.desc())
        )
        out: dict[str, list[Result]] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                kept = out.setdefault(row[2], [])  # by position: `name`, as `_result` reads it
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
            results.c.observed_at >= utc(since),
            results.c.attempt == 1,
            results.c.status != Status.OK.value,
        )
        if until is not None:
            query = query.where(results.c.observed_at < utc(until))
        with self.engine.connect() as conn:
            return [_result(row) for row in conn.execute(query.order_by(results.c.observed_at))]

    # -- alerts and notes: the incident log's ---------------------------------------------------

    def record_alert(self, alert: Alert, *, received_at: datetime) -> bool:
        """Keep the alert's latest state; False when it is older (`IncidentLog.record_alert`)."""
        return self.incidents.record_alert(alert, received_at=received_at)

    def record_alerts(self, received: Sequence[tuple[Alert, datetime]]) -> list[bool]:
        """`record_alert` for many, in order, in one transaction (`IncidentLog.record_alerts`)."""
        return self.incidents.record_alerts(received)

    def alert(self, fingerprint: str) -> Alert | None:
        return self.incidents.alert(fingerprint)

    def firing_alerts(self) -> list[Alert]:
        """Every alert whose latest notification said firing, oldest first."""
        return self.incidents.firing_alerts()

    def alerts_between(self, start: datetime, end: datetime) -> list[Alert]:
        """Alerts whose episode overlaps [start, end) (still firing ones included), by start."""
        return self.incidents.alerts_between(start, end)

    def add_note(self, component: str, day: date, text: str, *, author: str, at: datetime) -> None:
        self.incidents.add_note(component, day, text, author=author, at=at)

    def notes(self, component: str, day: date) -> list[tuple[str, str, datetime]]:
        """Every note on a component's day, oldest first: (text, author, at)."""
        return self.incidents.notes(component, day)

    @translated(STORE)
    def prune(self, *, before: datetime) -> int:
        """Delete results and resolved alerts older than `before` (retention); returns how many.

        Daily rollups have their own retention, ROLLUP_DAYS before `before`'s day at the
        earliest, so the 90-day bars outlive a short raw retention.
        """
        before = utc(before)
        with self.engine.begin() as conn:
            gone = conn.execute(delete(results).where(results.c.observed_at < before)).rowcount
            self.daily.prune(conn, before=before)
            self._bump(conn)
            return gone + self.incidents.prune(conn, before=before)

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


def _row(r: Result) -> dict[str, Any]:
    return {
        "kind": r.kind,
        "name": r.name,
        "status": r.status.value,
        "reason": r.reason,
        "observed_at": utc(r.observed_at),
        "figures": r.figures,
        "thresholds": r.thresholds,
        "steps": [
            {"name": s.name, "ok": s.ok, "seconds": s.seconds, "reason": s.reason} for s in r.steps
        ],
        "duration_seconds": r.duration_seconds,
        "attempt": r.attempt,
    }


@functools.lru_cache(maxsize=4096)
def _parsed_hour(text: str) -> datetime:
    """'2026-12-07 13' as an aware UTC hour (a few dozen distinct hours per read)."""
    return datetime.strptime(text, "%Y-%m-%d %H").replace(tzinfo=UTC)


def _result(row: Any) -> Result:
    """A row of `select(results)`: unpacked by position, which costs a fraction of reading each
    column by name (the status page reads a few hundred rows a render)."""
    _, kind, name, status, reason, observed_at, figures, thresholds, steps, took, attempt = row
    return Result(
        name=name,
        kind=kind,
        status=STATUS[status],
        reason=reason,
        observed_at=aware(observed_at),
        figures=dict(figures),
        thresholds=dict(thresholds),
        steps=tuple(StepResult(**s) for s in steps),
        duration_seconds=took,
        attempt=attempt,
    )
