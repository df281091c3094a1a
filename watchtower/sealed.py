"""Sealed periods: the status page's per-component figures of closed hours and closed UTC days,
kept in the history store's database once one replica has computed them (its tables are on the
history store's metadata, created with the rest).

A closed hour or day no longer changes, so what the page sums for it (the 24 h uptime's hours
from raw results, the 90-day bars' days from the daily rollups) is computed once for the whole
fleet, not once per process: a new replica's first render reads a few hundred sealed rows
instead of summing a day of raw results and 90 days of rollups. Each sealed period has a marker
row (component "") so a period with no data for some component is still known as sealed.

Results written late (the backlog stored after a store outage) unseal what they touch:
`forget` runs in the same transaction as the results (`HistoryStore.on_add`), and the next
render computes those periods again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Float,
    Integer,
    String,
    Table,
    delete,
    select,
)

from watchtower.model import Result
from watchtower.status import DayTotals, Feed, Hour, Hours, floor_hour
from watchtower.store.schema import ROLLUP_DAYS, insert_for, metadata
from watchtower.tables import create_tables, translated

STORE = "history"
MARKER = ""  # the component of a period's marker row
KEEP_HOURS = timedelta(hours=48)  # sealed hours older than this before the newest go
KEEP_DAYS = timedelta(days=ROLLUP_DAYS)  # as long as the daily rollups


def _figures() -> list[Column[Any]]:
    return [
        Column("observed", Float, nullable=False),
        Column("down", Float, nullable=False),
        Column("degraded", Float, nullable=False),
        Column("ok", Integer, nullable=False),
        Column("warning", Integer, nullable=False),
        Column("critical", Integer, nullable=False),
        Column("unknown", Integer, nullable=False),
        Column("maintenance", Float, nullable=False),
    ]


sealed_hours = Table(
    "sealed_hours",
    metadata,
    Column("hour", String(13), primary_key=True),  # YYYY-MM-DDTHH (UTC)
    Column("component", String(64), primary_key=True),
    *_figures(),
)
sealed_days = Table(
    "sealed_days",
    metadata,
    Column("day", String(10), primary_key=True),  # YYYY-MM-DD (UTC)
    Column("component", String(64), primary_key=True),
    *_figures(),
)


def _hour_key(hour: datetime) -> str:
    return hour.astimezone(UTC).strftime("%Y-%m-%dT%H")


def _hour_of(key: str) -> datetime:
    return datetime.strptime(key, "%Y-%m-%dT%H").replace(tzinfo=UTC)


class SealedPeriods:
    """Adapter over a ready engine (the caller owns it): read, seal and unseal periods."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create_schema(self) -> None:
        create_tables(self.engine, metadata, [sealed_hours, sealed_days], store=STORE)

    @translated(STORE)
    def hours(self, *, since: datetime, until: datetime) -> tuple[set[datetime], Hours]:
        """The sealed hours in [since, until) and their figures by component."""
        t = sealed_hours.c
        query = select(sealed_hours).where(t.hour >= _hour_key(since), t.hour < _hour_key(until))
        sealed: set[datetime] = set()
        out: Hours = {}
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                hour = _hour_of(row.hour)
                sealed.add(hour)
                if row.component != MARKER:
                    out.setdefault(row.component, {})[hour] = Hour(
                        observed=row.observed,
                        down=row.down,
                        degraded=row.degraded,
                        ok=row.ok,
                        warning=row.warning,
                        critical=row.critical,
                        unknown=row.unknown,
                    )
        return sealed, out

    @translated(STORE)
    def seal_hours(self, hours: Iterable[datetime], figures: Hours) -> None:
        chosen = {_hour_key(h) for h in hours}
        rows = [_row(hour=key, component=MARKER) for key in chosen]
        for component, by_hour in figures.items():
            for hour, h in by_hour.items():
                if _hour_key(hour) in chosen:
                    rows.append(_row(hour=_hour_key(hour), component=component, figures=h))
        # Only the last 24 h are ever read: older hours go as new ones are sealed.
        oldest = _hour_key(min(hours, default=datetime.now(UTC)) - KEEP_HOURS)
        self._insert(sealed_hours, rows, stale=sealed_hours.c.hour < oldest)

    @translated(STORE)
    def days(self, *, since: date, until: date) -> tuple[set[date], list[DayTotals]]:
        """The sealed days in [since, until) and their totals by component."""
        t = sealed_days.c
        query = select(sealed_days).where(t.day >= since.isoformat(), t.day < until.isoformat())
        sealed: set[date] = set()
        out: list[DayTotals] = []
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                day = date.fromisoformat(row.day)
                sealed.add(day)
                if row.component != MARKER:
                    out.append(
                        DayTotals(
                            component=row.component,
                            day=day,
                            down=row.down,
                            observed=row.observed,
                            degraded=row.degraded,
                            ok=row.ok,
                            warning=row.warning,
                            critical=row.critical,
                            unknown=row.unknown,
                            maintenance=row.maintenance,
                        )
                    )
        return sealed, out

    @translated(STORE)
    def seal_days(self, days: Iterable[date], totals: Sequence[DayTotals]) -> None:
        chosen = {d.isoformat() for d in days}
        rows = [_row(day=key, component=MARKER) for key in chosen]
        rows += [
            _row(day=t.day.isoformat(), component=t.component, figures=t)
            for t in totals
            if t.day.isoformat() in chosen
        ]
        oldest = (min(days, default=date.today()) - KEEP_DAYS).isoformat()
        self._insert(sealed_days, rows, stale=sealed_days.c.day < oldest)

    def _insert(self, table: Table, rows: list[dict[str, Any]], *, stale: Any) -> None:
        if not rows:
            return
        with self.engine.begin() as conn:
            conn.execute(delete(table).where(stale))
            # Another replica sealing the same period at once computed the same figures.
            conn.execute(insert_for(self.engine, table).on_conflict_do_nothing(), rows)

    def forget(self, conn: Connection, items: Sequence[Result], feeds: Mapping[str, Feed]) -> None:
        """Unseal the hours and days a batch of results falls in (none, unless it is late)."""
        del feeds  # every result counts: which rows it feeds does not matter here
        hours = {_hour_key(floor_hour(r.observed_at)) for r in items}
        days = {r.observed_at.astimezone(UTC).date().isoformat() for r in items}
        conn.execute(delete(sealed_hours).where(sealed_hours.c.hour.in_(sorted(hours))))
        conn.execute(delete(sealed_days).where(sealed_days.c.day.in_(sorted(days))))


def _row(*, component: str, figures: Hour | DayTotals | None = None, **key: str) -> dict[str, Any]:
    f = figures
    return {
        **key,
        "component": component,
        "observed": f.observed if f else 0.0,
        "down": f.down if f else 0.0,
        "degraded": f.degraded if f else 0.0,
        "ok": f.ok if f else 0,
        "warning": f.warning if f else 0,
        "critical": f.critical if f else 0,
        "unknown": f.unknown if f else 0,
        "maintenance": f.maintenance if isinstance(f, DayTotals) else 0.0,
    }
