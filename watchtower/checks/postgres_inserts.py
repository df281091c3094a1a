"""`postgres_inserts`: rows inserted into the legacy `gallery_images` table, read from PostgreSQL.

The number that must be 0 once dual-write is off (Story 6.1: "PostgreSQL writes stopped"). It is
counted from the table's own `inserted_at` column (set by the database on insert), so it sees
every writer, not only the image core's metrics. The cumulative `n_tup_ins` of
`pg_stat_user_tables` is reported beside it: it counts since the last statistics reset, and is
flushed asynchronously, so it is a figure to read, not to judge.
"""

from __future__ import annotations

from collections.abc import Mapping

from watchtower.checks.base import Check, CheckContext, register
from watchtower.checks.dual_write import flag_figure, read_flag
from watchtower.model import Result, Status

TABLE = "gallery_images"
INSERTED_IN_WINDOW = (
    "SELECT count(*) FROM gallery_images WHERE inserted_at > %(since)s AND inserted_at <= %(until)s"
)
INSERTED_SINCE_STATS_RESET = (
    "SELECT n_tup_ins FROM pg_stat_user_tables WHERE relid = to_regclass(%(table)s)"
)


@register
class PostgresInserts(Check):
    name = "postgres_inserts"
    title = "Legacy PostgreSQL inserts"
    component = "legacy"
    reads = ("sql:gallery_images",)
    defaults = {"window_seconds": 300}

    def evaluate(self, ctx: CheckContext) -> Result:
        sql = ctx.sources.legacy_sql
        if sql is None:
            return self.result(
                ctx,
                Status.UNKNOWN,
                "the legacy database is not configured (WATCHTOWER_LEGACY_DATABASE_URL)",
            )
        inserted = int(
            sql.scalar(INSERTED_IN_WINDOW, {"since": ctx.now - ctx.window, "until": ctx.now})
        )
        cumulative = sql.scalar(INSERTED_SINCE_STATS_RESET, {"table": TABLE})
        flag, flag_note = read_flag(ctx)
        figures = {
            "inserted_rows": float(inserted),
            "inserted_rows_since_stats_reset": None if cumulative is None else float(cumulative),
            "flag": flag_figure(flag),
        }
        return self.result(ctx, *judge(inserted, flag, ctx.params, flag_note=flag_note), figures)


def judge(
    inserted: int, flag: bool | None, params: Mapping[str, float], *, flag_note: str = ""
) -> tuple[Status, str]:
    """Rows are expected while dual-write is on, and none once it is off.

    No rows is good news whatever the flag says, so an unreadable flag only matters when rows
    were inserted: then whether they should have been cannot be told.
    """
    minutes = params["window_seconds"] / 60
    rows = (
        f"{inserted} row{'' if inserted == 1 else 's'} inserted into {TABLE} in {minutes:.0f} min"
    )
    if flag is None:
        if inserted > 0:
            return Status.UNKNOWN, (
                f"{rows}, and the dual-write flag could not be read "
                f"({flag_note}): cannot tell whether they should have been"
            )
        return Status.OK, (
            f"no rows inserted into {TABLE} in {minutes:.0f} min (the dual-write "
            f"flag could not be read: {flag_note})"
        )
    if flag:
        return Status.OK, f"{rows}; dual-write is on"
    if inserted > 0:
        return Status.CRITICAL, f"{rows} after dual-write was turned off ({flag_note})"
    return Status.OK, f"no rows inserted into {TABLE} in {minutes:.0f} min; dual-write is off"
