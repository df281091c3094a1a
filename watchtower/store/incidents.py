"""What the incident pages read beside the results: the latest state of every alert Alertmanager
sent, and operators' notes on a component's day. Part of the history store, on its engine."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, not_, or_, select

from watchtower.model import Alert
from watchtower.store.schema import STORE, alerts, aware, incident_notes, insert_for, utc
from watchtower.tables import translated


class IncidentLog:
    """The alerts and incident_notes tables, over a ready engine (the caller owns it)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record_alert(self, alert: Alert, *, received_at: datetime) -> bool:
        """Keep the alert's latest state; False (nothing written) when it is older than that.

        Alertmanager retries and its replicas deliver notifications late and twice. Order is
        (starts_at, then resolved after firing): an older episode, or a firing notification of
        an episode already resolved, leaves the stored state as it is.
        """
        (kept,) = self.record_alerts([(alert, received_at)])
        return kept

    @translated(STORE)
    def record_alerts(self, received: Sequence[tuple[Alert, datetime]]) -> list[bool]:
        """`record_alert` for many (alert, received_at), in order, in one transaction: one
        multi-row upsert, or one more for each further delivery of a fingerprint in the batch
        (a row may change once per statement). For each, whether it was kept."""
        rounds: list[list[int]] = []
        seen: dict[str, int] = {}
        for n, (alert, _) in enumerate(received):
            later = seen.get(alert.fingerprint, 0)
            seen[alert.fingerprint] = later + 1
            if later == len(rounds):
                rounds.append([])
            rounds[later].append(n)
        kept = [False] * len(received)
        upsert = _upsert(self.engine)
        with self.engine.begin() as conn:
            for chosen in rounds:
                rows = [_alert_row(*received[n]) for n in chosen]
                # RETURNING, not rowcount: against PostgreSQL, a skipped update still counted 1.
                written = {r.fingerprint for r in conn.execute(upsert, rows)}
                for n in chosen:
                    kept[n] = received[n][0].fingerprint in written
        return kept

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
                alerts.c.starts_at < utc(end),
                or_(alerts.c.ends_at.is_(None), alerts.c.ends_at >= utc(start)),
            )
            .order_by(alerts.c.starts_at)
        )
        with self.engine.connect() as conn:
            return [_alert(row) for row in conn.execute(query)]

    def prune(self, conn: Connection, *, before: datetime) -> int:
        """Delete alerts resolved and received before `before`, in the caller's transaction."""
        query = delete(alerts).where(alerts.c.status == "resolved", alerts.c.received_at < before)
        return int(conn.execute(query).rowcount)

    @translated(STORE)
    def add_note(self, component: str, day: date, text: str, *, author: str, at: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                incident_notes.insert().values(
                    component=component, day=day.isoformat(), text=text, author=author, at=utc(at)
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
            return [(r.text, r.author, aware(r.at)) for r in conn.execute(query)]


_COLUMNS = (
    "fingerprint",
    "status",
    "labels",
    "annotations",
    "starts_at",
    "ends_at",
    "generator_url",
    "received_at",
)
_UPSERTS: dict[str, Any] = {}


def _upsert(engine: Engine) -> Any:
    """INSERT … ON CONFLICT (fingerprint) DO UPDATE unless older, RETURNING the fingerprints
    written; built once per dialect, rows passed as parameters (compiled once)."""
    found = _UPSERTS.get(engine.dialect.name)
    if found is not None:
        return found
    insert = insert_for(engine, alerts)
    new = insert.excluded
    older = or_(
        new.starts_at < alerts.c.starts_at,
        and_(
            new.starts_at == alerts.c.starts_at,
            alerts.c.status == "resolved",
            new.status == "firing",
        ),
    )
    found = insert.on_conflict_do_update(
        index_elements=[alerts.c.fingerprint],
        set_={k: new[k] for k in _COLUMNS if k != "fingerprint"},
        where=not_(older),
    ).returning(alerts.c.fingerprint)
    _UPSERTS[engine.dialect.name] = found
    return found


def _alert_row(alert: Alert, received_at: datetime) -> dict[str, Any]:
    return {
        "fingerprint": alert.fingerprint,
        "status": alert.status,
        "labels": alert.labels,
        "annotations": alert.annotations,
        "starts_at": utc(alert.starts_at),
        "ends_at": utc(alert.ends_at) if alert.ends_at is not None else None,
        "generator_url": alert.generator_url,
        "received_at": utc(received_at),
    }


def _alert(row: Any) -> Alert:
    return Alert(
        fingerprint=row.fingerprint,
        status=row.status,
        labels=dict(row.labels),
        annotations=dict(row.annotations),
        starts_at=aware(row.starts_at),
        ends_at=aware(row.ends_at) if row.ends_at is not None else None,
        generator_url=row.generator_url,
    )
