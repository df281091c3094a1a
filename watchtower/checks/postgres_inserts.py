"""`postgres_inserts`: writes to the legacy table (WATCHTOWER_LEGACY_TABLE), read from PostgreSQL.

The number that must be 0 once dual-write is off (Story 6.1: "PostgreSQL writes stopped"). Two
sources, both seeing every writer, not only the image core's metrics:

* PostgreSQL's statistics (`pg_stat_user_tables` n_tup_ins, n_tup_upd, n_tup_del): inserts,
  updates and deletes since this process's previous cycle (a delta; the first cycle only starts
  the count). A counter that went down means the statistics were reset: the writes since the
  reset are counted, and the reason says so.
* The table's own `inserted_at` column, when it has one: rows inserted in the check's window.

Requests in flight at the flip still write for a moment after it (the old containers finish what
they started), as the cutover's evidence allows for (WATCHTOWER_CUTOVER_GRACE). When this process
saw the flag on and then off, writes until `flip_grace_seconds` after the first reading with it off
are counted apart, shown and not failing: the rows by their `inserted_at`, the statistics' deltas
when read within that time (a delta read after it is judged whole). A process that never saw the
flag on (started after the flip) counts every write.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from watchtower.checks.base import Check, CheckContext, SqlSource, TableSql, register
from watchtower.checks.dual_write import flag_figure, read_flag
from watchtower.config import Settings
from watchtower.model import Result, Status

# The legacy table is `{table}` in these (TableSql): the SQL adapter composes it as an identifier.
INSERTED_IN_WINDOW = TableSql(
    "SELECT count(*) FROM {table} WHERE inserted_at > %(since)s AND inserted_at <= %(until)s"
)
INSERTED_SINCE_STATS_RESET = TableSql(
    "SELECT n_tup_ins FROM pg_stat_user_tables WHERE relid = to_regclass(%(table_regclass)s)"
)
# Every write to the table, whatever its schema, and when the statistics were last reset.
TABLE_WRITES = TableSql(
    "SELECT json_build_object('ins', n_tup_ins, 'upd', n_tup_upd, 'del', n_tup_del, "
    "'relid', relid::bigint, 'reset', "
    "(SELECT stats_reset FROM pg_stat_database WHERE datname = current_database())) "
    "FROM pg_stat_user_tables WHERE relid = to_regclass(%(table_regclass)s)"
)
HAS_INSERTED_AT = TableSql(
    "SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass(%(table_regclass)s) "
    "AND attname = 'inserted_at' AND NOT attisdropped"
)
KEYS = ("ins", "upd", "del")
# The counters this process read last, by legacy database: the next cycle's deltas start there.
_PREVIOUS: dict[tuple[str, int], tuple[datetime, dict[str, int]]] = {}


def write_delta(
    previous: Mapping[str, int] | None, current: Mapping[str, int]
) -> tuple[dict[str, int] | None, bool]:
    """Writes between two readings of the counters, and whether the statistics were reset in
    between (a counter went down: the writes since the reset are the counters themselves)."""
    if previous is None:
        return None, False
    reset = any(current[k] < previous[k] for k in KEYS)
    return {k: current[k] if reset else current[k] - previous[k] for k in KEYS}, reset


def _counters(raw: Any) -> dict[str, int] | None:
    if not isinstance(raw, Mapping):
        return None
    return {k: int(raw.get(k) or 0) for k in KEYS}


@register
class PostgresInserts(Check):
    name = "postgres_inserts"
    title = "Legacy PostgreSQL inserts"
    component = "legacy"
    reads = ("sql:legacy_table", "lambda:configuration")  # the flag the rows are judged by
    defaults = {"window_seconds": 300, "flip_grace_seconds": 120}

    def evaluate(self, ctx: CheckContext) -> Result:
        sql = ctx.sources.legacy_sql
        if sql is None:
            return self.result(
                ctx,
                Status.UNKNOWN,
                "the legacy database is not configured (WATCHTOWER_LEGACY_DATABASE_URL)",
            )
        table = sql.table
        raw = sql.scalar(TABLE_WRITES, {})
        current = _counters(raw)
        if current is None:
            return self.result(ctx, Status.UNKNOWN, f"the legacy table {table} does not exist")
        # By database and table: a table dropped and created again starts a new count.
        key = (ctx.settings.legacy_database_url or "", int(raw.get("relid") or 0))
        previous = _PREVIOUS.get(key)
        delta, reset = write_delta(previous[1] if previous else None, current)
        _PREVIOUS[key] = (ctx.now, current)
        flag, flag_note = read_flag(ctx)
        grace_until = _grace_until(key, flag, ctx.now, ctx.params)
        since = ctx.now - ctx.window
        counted_from = since if grace_until is None else max(since, grace_until)
        has_inserted_at = bool(sql.scalar(HAS_INSERTED_AT, {}))
        inserted = apart = 0
        if has_inserted_at:
            inserted = _rows(sql, counted_from, ctx.now)
            if counted_from > since:
                apart = _rows(sql, since, counted_from)
        if delta and grace_until and ctx.now <= grace_until:  # a delta within the grace
            if not has_inserted_at:
                apart = delta["ins"]
            delta = dict.fromkeys(KEYS, 0)
        figures = {
            "inserted_rows": float(inserted),
            "inserted_rows_since_stats_reset": float(current["ins"]),
            "inserts": None if delta is None else float(delta["ins"]),
            "updates": None if delta is None else float(delta["upd"]),
            "deletes": None if delta is None else float(delta["del"]),
            "stats_reset": 1.0 if reset else 0.0,
            "rows_at_the_flip": float(apart),
            "flag": flag_figure(flag),
        }
        # Inserts: the rows' own count when the table has inserted_at, else the statistics'.
        rows = inserted if has_inserted_at or delta is None else delta["ins"]
        status, reason = judge(
            rows,
            flag,
            ctx.params,
            flag_note=flag_note,
            updated=delta["upd"] if delta else 0,
            deleted=delta["del"] if delta else 0,
            table=table,
        )
        if reset:
            reason += "; PostgreSQL's statistics were reset since the previous cycle"
        if delta is None:
            reason += "; the statistics' first reading (updates and deletes from the next cycle)"
        if grace_until is not None and grace_until > since:
            grace = ctx.params["flip_grace_seconds"]
            reason += (
                f"; {apart} rows written before the flip or up to {grace:.0f} s after it was seen"
                f" (until {grace_until:%H:%M:%S} UTC) counted apart"
            )
        return self.result(ctx, status, reason, figures)


# By legacy database and table (as _PREVIOUS): there once this process read the flag on; then
# when it first read it off after that (the flip happened in between), else None.
_OFF_SINCE: dict[tuple[str, int], datetime | None] = {}


def _rows(sql: SqlSource, since: datetime, until: datetime) -> int:
    return int(sql.scalar(INSERTED_IN_WINDOW, {"since": since, "until": until}))


def _grace_until(
    key: tuple[str, int], flag: bool | None, now: datetime, params: Mapping[str, float]
) -> datetime | None:
    """Until when writes are requests in flight at the flip, when this process saw the flip
    (the flag on, then off); None otherwise. An unreadable flag changes nothing."""
    if flag is True:
        _OFF_SINCE[key] = None
    elif flag is False and key in _OFF_SINCE and _OFF_SINCE[key] is None:
        _OFF_SINCE[key] = now
    off_at = _OFF_SINCE.get(key)
    if flag is not False or off_at is None:
        return None
    return off_at + timedelta(seconds=params["flip_grace_seconds"])


def judge(
    inserted: int,
    flag: bool | None,
    params: Mapping[str, float],
    *,
    flag_note: str = "",
    updated: int = 0,
    deleted: int = 0,
    table: str = Settings.legacy_table,
) -> tuple[Status, str]:
    """Rows are expected while dual-write is on, and none once it is off.

    No rows is good news whatever the flag says, so an unreadable flag only matters when rows
    were inserted: then whether they should have been cannot be told.
    """
    minutes = params["window_seconds"] / 60
    rows = (
        f"{inserted} row{'' if inserted == 1 else 's'} inserted into {table} in {minutes:.0f} min"
    )
    if flag is None:
        if inserted > 0:
            return Status.UNKNOWN, (
                f"{rows}, and the dual-write flag could not be read "
                f"({flag_note}): cannot tell whether they should have been"
            )
        return Status.OK, (
            f"no rows inserted into {table} in {minutes:.0f} min (the dual-write "
            f"flag could not be read: {flag_note})"
        )
    if flag:
        return Status.OK, f"{rows}; dual-write is on"
    if updated or deleted:
        return Status.CRITICAL, (
            f"{inserted} inserted, {updated} updated and {deleted} deleted rows of {table} in "
            f"{minutes:.0f} min after dual-write was turned off ({flag_note})"
        )
    if inserted > 0:
        return Status.CRITICAL, f"{rows} after dual-write was turned off ({flag_note})"
    return Status.OK, f"no rows inserted into {table} in {minutes:.0f} min; dual-write is off"
