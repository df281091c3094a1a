"""The runbook store's alert records: each alert episode and the run it started, and every
notification the webhook accepted, verbatim (replay, and the deferred intake's queue).

A mixin of `RunbookStore` (watchtower.runbook.store), on the same engine and metadata; split out
to keep each module small. SQLAlchemy's errors leave it only as `StoreUnavailable`.
"""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    String,
    Table,
    Text,
    delete,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from watchtower.errors import StoreUnavailable
from watchtower.runbook.errors import NotificationNotFound
from watchtower.runbook.model import Episode, StoredNotification
from watchtower.store import metadata

# An alert episode (one runbook, one fingerprint, one `startsAt`) and the run it started: the
# primary key makes "one run per episode" hold across replicas, retries, HA pairs and
# repeat_interval. A row outlives its run (that is the point); `execution_id` moves only when a
# route's cool-down lets a re-run start, by a conditional UPDATE two replicas cannot both win.
episodes = Table(
    "runbook_episodes",
    metadata,
    Column("key", String(400), primary_key=True),
    Column("runbook_id", String(64), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("execution_id", String(32), nullable=False),  # the latest run it started
    Column("runs", Integer, nullable=False, default=1),
    Column("repeats", Integer, nullable=False, default=0),  # firing deliveries after it finished
    Column("still_firing_at", DateTime(timezone=True), nullable=True),  # the latest of those
    Column("created_at", DateTime(timezone=True), nullable=False),
)
Index("runbook_episodes_execution", episodes.c.execution_id)

# Every notification the webhook accepted, verbatim (the bytes Alertmanager sent), for replay:
# the newest KEEP_NOTIFICATIONS are kept, older ones pruned as new ones arrive.
notifications = Table(
    "alert_notifications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("receiver", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("alerts", Integer, nullable=False),
    Column("body", Text, nullable=False),
    Column("claimed_at", DateTime(timezone=True), nullable=True),  # an intake dispatching it
    Column("processed_at", DateTime(timezone=True), nullable=True),  # dispatched
)
Index("alert_notifications_pending", notifications.c.processed_at)
KEEP_NOTIFICATIONS = 10_000
_PRUNE_EVERY = 100
Index("runbook_episodes_fingerprint", episodes.c.fingerprint)


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
        with _guard("store a notification"), self.engine.begin() as conn:
            found = conn.execute(
                insert(notifications).values(
                    received_at=received_at,
                    receiver=receiver[:200],
                    status=status,
                    alerts=alerts,
                    body=body,
                    processed_at=received_at if dispatched else None,
                )
            )
            key = found.inserted_primary_key
            assert key is not None
            number = int(key[0])
            if number % _PRUNE_EVERY == 0 or keep < _PRUNE_EVERY:
                # Never one the intake has not dispatched yet: retention is for replay.
                conn.execute(
                    delete(notifications).where(
                        notifications.c.id <= number - keep,
                        notifications.c.processed_at.is_not(None),
                    )
                )
        return number

    def claim_notifications(
        self, *, now: datetime, stale_before: datetime, limit: int
    ) -> builtins.list[StoredNotification]:
        """Take up to `limit` notifications nobody dispatched yet (or whose intake went silent),
        oldest first; each is then the caller's to dispatch and mark done."""
        query = (
            select(notifications.c.id)
            .where(
                notifications.c.processed_at.is_(None),
                or_(
                    notifications.c.claimed_at.is_(None),
                    notifications.c.claimed_at < stale_before,
                ),
            )
            .order_by(notifications.c.id)
            .limit(limit)
        )
        taken = []
        with _guard("claim notifications"), self.engine.begin() as conn:
            for number in [r.id for r in conn.execute(query)]:
                won = conn.execute(
                    update(notifications)
                    .where(
                        notifications.c.id == number,
                        notifications.c.processed_at.is_(None),
                        or_(
                            notifications.c.claimed_at.is_(None),
                            notifications.c.claimed_at < stale_before,
                        ),
                    )
                    .values(claimed_at=now)
                )
                if won.rowcount == 1:
                    taken.append(number)
        return [self.notification(n) for n in taken]

    def notifications_done(self, numbers: Iterable[int], *, at: datetime) -> None:
        chosen = builtins.list(numbers)
        if not chosen:
            return
        with _guard("mark notifications dispatched"), self.engine.begin() as conn:
            conn.execute(
                update(notifications).where(notifications.c.id.in_(chosen)).values(processed_at=at)
            )

    def release_notification(self, number: int) -> None:
        """Dispatching it failed: another pass (here or on another replica) takes it again."""
        with _guard("release a notification"), self.engine.begin() as conn:
            conn.execute(
                update(notifications).where(notifications.c.id == number).values(claimed_at=None)
            )

    def notification(self, number: int) -> StoredNotification:
        with _guard("read a notification"), self.engine.connect() as conn:
            row = conn.execute(select(notifications).where(notifications.c.id == number)).first()
        if row is None:
            raise NotificationNotFound(number)
        return StoredNotification(
            id=row.id,
            received_at=_utc(row.received_at) or datetime.min.replace(tzinfo=UTC),
            receiver=row.receiver,
            status=row.status,
            alerts=row.alerts,
            body=row.body,
        )

    def episode(self, key: str) -> Episode | None:
        with _guard("read an alert episode"), self.engine.connect() as conn:
            row = conn.execute(select(episodes).where(episodes.c.key == key)).first()
        return _episode(row) if row is not None else None

    def still_firing(self, key: str, *, at: datetime) -> None:
        """A firing delivery of an episode whose run has ended: counted on the episode."""
        with _guard("record an alert still firing"), self.engine.begin() as conn:
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
        with _guard("list an alert episode's runs"), self.engine.connect() as conn:
            return [r.execution_id for r in conn.execute(query)]


def _episode(row: Any) -> Episode:
    return Episode(
        key=row.key,
        runbook_id=row.runbook_id,
        fingerprint=row.fingerprint,
        starts_at=_utc(row.starts_at) or datetime.min.replace(tzinfo=UTC),
        execution_id=row.execution_id,
        runs=row.runs,
        repeats=row.repeats,
        still_firing_at=_utc(row.still_firing_at),
    )


@contextlib.contextmanager
def _guard(operation: str) -> Iterator[None]:
    try:
        yield
    except IntegrityError:
        raise
    except SQLAlchemyError as exc:
        cause = type(getattr(exc, "orig", None) or exc).__name__
        raise StoreUnavailable(f"runbook store: could not {operation} ({cause})") from exc


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
