"""`cutover.legacy_writers`: who still writes to the legacy table after the cutover?

Read-only. PostgreSQL's view of it: the table's write counters (`pg_stat_user_tables`), the
statements that wrote to it with their calls and role (`pg_stat_statements`, when installed),
and the sessions connected to the legacy database now (`pg_stat_activity`: user, application,
client address, last query) — the writer is usually one of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from watchtower.cutover.legacy_sql import table_writes, writing_statements
from watchtower.errors import SourceError
from watchtower.runbook.actions.base import Action, ActionContext, register
from watchtower.runbook.errors import ActionError
from watchtower.runbook.model import ApiCall
from watchtower.sources import PostgresSql

SESSIONS = (
    "SELECT coalesce(json_agg(json_build_object('pid', pid, 'user', usename, 'application', "
    "application_name, 'client', host(client_addr), 'state', state, 'since', backend_start, "
    "'query', left(query, 200)) ORDER BY backend_start), '[]'::json) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
    "AND backend_type = 'client backend'"
)


@register
class LegacyWriters(Action):
    name = "cutover.legacy_writers"
    title = "Find what still writes to the legacy table"
    mutating = False
    gated = False

    def plan(self, values: Mapping[str, Any], ctx: ActionContext) -> list[ApiCall]:
        return [
            ApiCall(
                service="postgresql",
                operation="SELECT FROM pg_stat_user_tables, pg_stat_statements, pg_stat_activity",
                parameters={"table": ctx.settings.legacy_table},
                note="read-only",
            )
        ]

    def run(self, values: Mapping[str, Any], ctx: ActionContext) -> dict[str, Any]:
        url = ctx.settings.legacy_database_url
        if not url:
            raise ActionError(
                "the legacy database is not configured (WATCHTOWER_LEGACY_DATABASE_URL)"
            )
        sql = PostgresSql(url, table=ctx.settings.legacy_table)
        try:
            writes = table_writes(sql)
            statements = writing_statements(sql)
            sessions = sql.scalar(SESSIONS, {}) or []
        except SourceError as exc:
            raise ActionError(str(exc)) from exc
        found = statements.get("statements") or []
        table = ctx.settings.legacy_table.rpartition(".")[2]
        writers = [s for s in sessions if _writes(s.get("query") or "", table)]
        reason = (
            f"{len(found)} writing statements recorded"
            if statements.get("statements") is not None
            else str(statements.get("statements_note"))
        ) + f"; {len(sessions)} sessions on the legacy database, {len(writers)} last wrote to it"
        return {
            "reason": reason,
            "writes_since_stats_reset": writes,
            "statements": found,
            "statements_note": statements.get("statements_note"),
            "sessions_writing": writers,
            "sessions": sessions,
        }


def _writes(query: str, table: str) -> bool:
    words = query.lower().split()
    return table.lower() in query.lower() and bool(
        words and words[0] in ("insert", "update", "delete", "merge", "copy")
    )
