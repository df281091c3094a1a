"""The runbook store's alert records: each alert episode and the run it started, and every
notification the webhook accepted, verbatim (replay, and the deferred intake's queue).

A mixin of `RunbookStore` (watchtower.runbook.store), on the same engine; its tables are in
watchtower.runbook.tables. SQLAlchemy's errors leave it only as `StoreUnavailable`.
"""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, insert, or_, select, text, update

from watchtower.errors import StoreUnavailable
from watchtower.runbook.errors import NotificationNotFound
from watchtower.runbook.model import Episode, StoredNotification
from watchtower.runbook.tables import MIN_TIME, episodes, guard, notifications, utc

KEEP_NOTIFICATIONS = 10_000  # the newest notifications kept; older ones pruned as new ones come
_PRUNE_EVERY = 100


class AlertRecords:
    engine: Engine

    # -- notifications, verbatim ------------------------------------------------------------------

    def keep_notification(
        self,
        body: str,
        *,
        received_at: datetime,
        receiver: str,
        status: str,
        alerts: int,
        keep: int = KEEP_NOTIFICATIONS,
        dispatched: bool = True,
    ) -> int:
        """Store one accepted notification as it was sent; its id. Old ones beyond `keep` go.

        `dispatched=False`: the intake dispatches it from here (claim_notifications)."""
        arrived = Arrived(
            body=body, received_at=received_at, receiver=receiver, status=status, alerts=alerts
        )
        (number,) = self.keep_notifications([arrived], keep=keep, dispatched=dispatched)
        return number

    def keep_notifications(
        self,
        arrived: Sequence[Arrived],
        *,
        keep: int = KEEP_NOTIFICATIONS,
        dispatched: bool = True,
    ) -> builtins.list[int]:
        """Store notifications in one transaction (one INSERT of many rows); their ids, in the
        order given. Old ones beyond `keep` go (never one not dispatched yet)."""
        if not arrived:
            return []
        rows = [
            {
                "received_at": a.received_at,
                "receiver": a.receiver[:200],
                "status": a.status,
                "alerts": a.alerts,
                "body": a.body,
                "processed_at": a.received_at if dispatched else None,
            }
            for a in arrived
        ]
        with guard("store a notification"), self.engine.begin() as conn:
            found = conn.execute(_KEEP, rows)
            numbers = [int(r.id) for r in found]
            if not dispatched and conn.dialect.name == "postgresql":
                # Delivered to every LISTENing intake when this transaction commits.
                conn.execute(_NOTIFY)
            if keep < _PRUNE_EVERY or any(n % _PRUNE_EVERY == 0 for n in numbers):
                # Never one the intake has not dispatched yet: retention is for replay.
                conn.execute(
                    delete(notifications).where(
                        notifications.c.id <= max(numbers) - keep,
                        notifications.c.processed_at.is_not(None),
                    )
                )
        return numbers

    def listen_for_notifications(self) -> Listener | None:
        """A connection of its own that hears each commit of notifications kept to dispatch
        (PostgreSQL's LISTEN); None on SQLite, where only polling (or this process) wakes one."""
        if self.engine.dialect.name != "postgresql":
            return None
        import psycopg

        url = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        try:
            conn = psycopg.connect(url, autocommit=True, connect_timeout=5)
        except psycopg.Error as exc:
            raise _unheard("could not listen", exc) from None
        listener = Listener(conn)
        try:
            conn.execute(f"LISTEN {CHANNEL}")
        except psycopg.Error as exc:
            listener.close()
            raise _unheard("could not listen", exc) from None
        return listener

    def claim_notifications(
        self, *, now: datetime, stale_before: datetime, limit: int
    ) -> builtins.list[StoredNotification]:
        """Take up to `limit` notifications nobody dispatched yet (or whose intake went silent),
        oldest first; each is then the caller's to dispatch and mark done.

        One statement: `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING` the
        notifications taken (on PostgreSQL another replica's pass skips the rows this one
        locked; SQLite has one writer). The outer WHERE repeats the condition, so a row another
        pass took meanwhile is not taken twice."""
        free = (
            notifications.c.processed_at.is_(None),
            or_(notifications.c.claimed_at.is_(None), notifications.c.claimed_at < stale_before),
        )
        chosen = (
            select(notifications.c.id)
            .where(*free)
            .order_by(notifications.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        query = (
            update(notifications)
            .where(notifications.c.id.in_(chosen.scalar_subquery()), *free)
            .values(claimed_at=now)
            .returning(*_STORED)
        )
        with guard("claim notifications"), self.engine.begin() as conn:
            rows = conn.execute(query).all()
        return sorted((_stored(r) for r in rows), key=lambda n: n.id)

    def notifications_done(self, numbers: Iterable[int], *, at: datetime) -> None:
        chosen = builtins.list(numbers)
        if not chosen:
            return
        with guard("mark notifications dispatched"), self.engine.begin() as conn:
            conn.execute(
                update(notifications).where(notifications.c.id.in_(chosen)).values(processed_at=at)
            )

    def release_notification(self, number: int) -> None:
        """Dispatching it failed: another pass (here or on another replica) takes it again."""
        with guard("release a notification"), self.engine.begin() as conn:
            conn.execute(
                update(notifications).where(notifications.c.id == number).values(claimed_at=None)
            )

    def notification(self, number: int) -> StoredNotification:
        with guard("read a notification"), self.engine.connect() as conn:
            row = conn.execute(select(notifications).where(notifications.c.id == number)).first()
        if row is None:
            raise NotificationNotFound(number)
        return _stored(row)

    def episode(self, key: str) -> Episode | None:
        with guard("read an alert episode"), self.engine.connect() as conn:
            row = conn.execute(select(episodes).where(episodes.c.key == key)).first()
        return _episode(row) if row is not None else None

    def still_firing(self, key: str, *, at: datetime) -> None:
        """A firing delivery of an episode whose run has ended: counted on the episode."""
        with guard("record an alert still firing"), self.engine.begin() as conn:
            conn.execute(
                update(episodes)
                .where(episodes.c.key == key)
                .values(repeats=episodes.c.repeats + 1, still_firing_at=at)
            )

    def episode_runs(self, *, fingerprint: str, starts_at: datetime | None) -> builtins.list[str]:
        """The runs an alert's episode started (every episode of it when `starts_at` is None)."""
        query = select(episodes.c.execution_id).where(episodes.c.fingerprint == fingerprint)
        if starts_at is not None:
            query = query.where(episodes.c.starts_at == starts_at)
        with guard("list an alert episode's runs"), self.engine.connect() as conn:
            return [r.execution_id for r in conn.execute(query)]


class Listener:
    """LISTEN on one connection: `wait` returns True once notifications were kept (False after
    `timeout` seconds); StoreUnavailable when the connection is lost (make a new one)."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def wait(self, timeout: float) -> bool:
        import psycopg

        try:
            heard = any(True for _ in self._conn.notifies(timeout=timeout, stop_after=1))
            if heard:  # several commits while the intake was busy: one pass takes them all
                for _ in self._conn.notifies(timeout=0.0):
                    pass
        except psycopg.Error as exc:
            raise _unheard("listening failed", exc) from None
        return heard

    def close(self) -> None:
        import psycopg

        with contextlib.suppress(psycopg.Error):
            self._conn.close()


def _unheard(what: str, exc: Exception) -> StoreUnavailable:
    """Its type's name only: a connection error's message may carry the URL."""
    return StoreUnavailable(f"runbook store: {what} ({type(exc).__name__})")


@dataclass(frozen=True, kw_only=True)
class Arrived:
    """A notification to keep, as the webhook accepted it."""

    body: str  # verbatim
    received_at: datetime
    receiver: str
    status: str
    alerts: int


CHANNEL = "watchtower_intake"  # NOTIFY'd in the transaction that keeps notifications to dispatch
_NOTIFY = text(f"NOTIFY {CHANNEL}")

# Many rows in one statement (SQLAlchemy's "insertmanyvalues"), their ids in the rows' order.
_KEEP = insert(notifications).returning(notifications.c.id, sort_by_parameter_order=True)

_STORED = (
    notifications.c.id,
    notifications.c.received_at,
    notifications.c.receiver,
    notifications.c.status,
    notifications.c.alerts,
    notifications.c.body,
)


def _stored(row: Any) -> StoredNotification:
    return StoredNotification(
        id=row.id,
        received_at=utc(row.received_at) or MIN_TIME,
        receiver=row.receiver,
        status=row.status,
        alerts=row.alerts,
        body=row.body,
    )


def _episode(row: Any) -> Episode:
    return Episode(
        key=row.key,
        runbook_id=row.runbook_id,
        fingerprint=row.fingerprint,
        starts_at=utc(row.starts_at) or MIN_TIME,
        execution_id=row.execution_id,
        runs=row.runs,
        repeats=row.repeats,
        still_firing_at=utc(row.still_firing_at),
    )
