"""`postgres_inserts`: writes to the legacy table (WATCHTOWER_LEGACY_TABLE), read from PostgreSQL.

The number that must be 0 once dual-write is off (Story 6.1: "PostgreSQL writes stopped"). Two
sources, both seeing every writer, not only the image core's metrics:

* PostgreSQL's statistics (`pg_stat_user_tables` n_tup_ins, n_tup_upd, n_tup_del): inserts,
  updates and deletes since this process's previous cycle (a delta; the first cycle only starts
  the count). A counter that went down means the statistics were reset: the writes since the
  reset are counted, and the reason says so.
* The table's own `inserted_at` column, when it has one: rows inserted in the check's window.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from watchtower.checks.base import Check, CheckContext, TableSql, register
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
    reads = ("sql:legacy_table",)
    defaults = {"window_seconds": 300}

    def evaluate(self, ctx: CheckContext) -> Result:
        sql = ctx.sources.legacy_sql
        if sql is None:
            return self.result(
                ctx,
                Status.UNKNOWN,
                "the legacy database is not configured (WATCHTOWER_LEGACY_DATABASE_URL)",
            )
        table = sql.table
        has_inserted_at = bool(sql.scalar(HAS_INSERTED_AT, {}))
        inserted = (
            int(sql.scalar(INSERTED_IN_WINDOW, {"since": ctx.now - ctx.window, "until": ctx.now}))
            if has_inserted_at
            else 0
        )
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
        figures = {
            "inserted_rows": float(inserted),
            "inserted_rows_since_stats_reset": float(current["ins"]),
            "inserts": None if delta is None else float(delta["ins"]),
            "updates": None if delta is None else float(delta["upd"]),
            "deletes": None if delta is None else float(delta["del"]),
            "stats_reset": 1.0 if reset else 0.0,
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
        return self.result(ctx, status, reason, figures)


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
