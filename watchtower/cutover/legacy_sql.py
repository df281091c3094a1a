"""What PostgreSQL says about the legacy table's writes, for the evidence, backfill and the
runbook that finds a stray writer: the cumulative write counters of `pg_stat_user_tables` (and
the last statistics reset) and the writing statements of `pg_stat_statements`, when installed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from watchtower.checks.base import TableSql
from watchtower.checks.postgres_inserts import TABLE_WRITES
from watchtower.cutover.model import iso
from watchtower.cutover.ports import EvidencePorts
from watchtower.errors import SourceError

HAS_STATEMENTS = "SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'"
# The statements that write to the table, as pg_stat_statements normalises them (most calls first).
# The table's name is a bound value in the pattern: its parts are letters, digits and _ only
# (WATCHTOWER_LEGACY_TABLE is validated), so it holds no regular-expression syntax.
WRITING_STATEMENTS = TableSql(
    "SELECT coalesce(json_agg(s ORDER BY s.calls DESC), '[]'::json) FROM ("
    "SELECT left(query, 300) AS query, calls, rows, userid::regrole::text AS role "
    "FROM pg_stat_statements WHERE query ~* ("
    "'^\\s*(insert\\s+into|update|delete\\s+from)\\s+(\\w+\\.)?\"?' || %(table_name)s || '\\y') "
    "ORDER BY calls DESC LIMIT 10) s"
)


def table_writes(sql: Any) -> dict[str, Any] | None:
    """The table's cumulative inserts, updates and deletes since the last statistics reset, and
    that reset's time: None when the table does not exist."""
    raw = sql.scalar(TABLE_WRITES, {})
    if raw is None:
        return None
    reset = raw.get("reset")
    return {
        "ins": int(raw.get("ins") or 0),
        "upd": int(raw.get("upd") or 0),
        "del": int(raw.get("del") or 0),
        "reset": reset if isinstance(reset, str) or reset is None else _iso(reset),
    }


def writing_statements(sql: Any) -> dict[str, Any]:
    """The statements that wrote to the table, from pg_stat_statements when it is installed."""
    try:
        if not sql.scalar(HAS_STATEMENTS, {}):
            return {"statements": None, "statements_note": "pg_stat_statements is not installed"}
        rows = sql.scalar(WRITING_STATEMENTS, {}) or []
    except SourceError as exc:
        return {"statements": None, "statements_note": f"pg_stat_statements: {exc}"}
    return {"statements": [dict(r) for r in rows], "statements_note": None}


def legacy_writes_at_open(ports: EvidencePorts, *, at: datetime) -> dict[str, Any] | None:
    """The table's write counters when the window opens: what the first sample's deltas start
    from (None when they cannot be read; the first sample then only starts the count)."""
    if ports.legacy_sql is None:
        return None
    try:
        writes = table_writes(ports.legacy_sql)
    except SourceError:
        return None
    return None if writes is None else {**writes, "read_at": iso(at)}


def _iso(value: Any) -> str | None:
    return iso(value) if isinstance(value, datetime) else None
