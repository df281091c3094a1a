"""The daily rollups of the history store: added to in the results' own transaction, read for the
status page's days and uptime, and kept ROLLUP_DAYS whatever the raw retention."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, case, delete, func, select

from watchtower.status import RANK, DayRollup, DayTotals
from watchtower.store.schema import ROLLUP_DAYS, STATUS, STORE, insert_for, rollups
from watchtower.tables import translated

SHORT_SPAN = 7  # days: a range this short is read day by day (`totals`)


class DailyRollups:
    """One row per component, UTC day and source, over a ready engine (the caller owns it)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, conn: Connection, deltas: Iterable[DayRollup]) -> None:
        """Add each delta to its day's row, in the caller's transaction."""
        for delta in deltas:
            conn.execute(self._add_to_rollup(delta))

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
        insert = insert_for(self.engine, rollups, values)
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

    def prune(self, conn: Connection, *, before: datetime) -> None:
        """Delete the days more than ROLLUP_DAYS before `before`'s, in the caller's transaction."""
        oldest = (before.date() - timedelta(days=ROLLUP_DAYS)).isoformat()
        conn.execute(delete(rollups).where(rollups.c.day < oldest))

    @translated(STORE)
    def read(self, *, since: date, until: date | None = None) -> list[DayRollup]:
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
                    worst=STATUS[row.worst],
                    worst_reason=row.worst_reason,
                )
                for row in conn.execute(query)
            ]

    @translated(STORE)
    def totals(self, *, since: date, until: date | None = None) -> list[DayTotals]:
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
        )
        span = (until - since).days if until is not None else None
        if span is not None and 0 < span <= SHORT_SPAN:
            # Named day by day: SQLite then reads them through the day index. Given the range,
            # it scans the whole table in its primary key's order to group without sorting
            # (90 days of every source to sum today's: 3.4 ms instead of 0.7 at 500 sources).
            days = [(since + timedelta(days=n)).isoformat() for n in range(span)]
            query = query.where(r.day.in_(days))
        else:
            query = query.where(r.day >= since.isoformat())
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
