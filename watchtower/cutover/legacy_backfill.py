"""Rollback without a hole: write into the legacy table (WATCHTOWER_LEGACY_TABLE) the images
created while dual-write was off, from their DynamoDB records, and delete the rows of images
deleted meanwhile (deletes are dual-written too). Idempotent (`ON CONFLICT (id) DO NOTHING`),
batched.

The records are the image core's (`pk` IMAGE#<id>, `sk` META, one attribute per column); only
ids the table lacks are written, so a second run writes nothing. The writer opens its own
connection (the legacy source Watchtower reads through is read-only by design).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import BotoCoreError, ClientError

from watchtower.config import table_parts
from watchtower.cutover.reconcile import Pacer, Progress, reconcile
from watchtower.errors import SourceError

# `{table}` is composed as an identifier (psycopg.sql), never as text.
INSERT = (
    "INSERT INTO {table} (id, user_id, original_key, thumbnail_key, content_type, width, "
    "height, size_bytes, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (id) DO NOTHING"
)
DELETE = "DELETE FROM {table} WHERE id = ANY(%s)"


def _composed(template: str, table: str) -> Any:
    from psycopg import sql

    return sql.SQL(template).format(table=sql.Identifier(*table_parts(table)))


_de = TypeDeserializer()


@dataclass(frozen=True, kw_only=True)
class Plan:
    since: datetime
    until: datetime
    records: tuple[dict[str, Any], ...]  # the rows to write, oldest first
    stale: tuple[str, ...] = ()  # rows whose image DynamoDB no longer has (deleted while off)

    @property
    def ids(self) -> list[str]:
        return [r["id"] for r in self.records]


def _row(item: dict[str, Any]) -> dict[str, Any]:
    v = {k: _de.deserialize(x) for k, x in item.items()}
    return {
        "id": v["pk"].removeprefix("IMAGE#"),
        "user_id": v["user_id"],
        "original_key": v["original_key"],
        "thumbnail_key": v["thumbnail_key"],
        "content_type": v["content_type"],
        "width": int(v["width"]),
        "height": int(v["height"]),
        "size_bytes": int(v["size_bytes"]),
        "created_at": datetime.fromisoformat(v["created_at"]),
    }


def plan(
    client: Any, table: str, sql: Any, *, since: datetime, until: datetime, page_size: int = 1000
) -> Plan:
    """The records created in (since, until] that the legacy table (`sql.table`) lacks: what a
    run would write."""
    from watchtower.cutover.reconcile import DynamoDbImageIds

    progress = reconcile(
        Progress(since=since, until=until),
        images=DynamoDbImageIds(client, table, page_size=page_size),
        sql=sql,
        pacer=Pacer(0),
        page_size=page_size,
    )
    missing = sorted(progress.dynamodb_ids - progress.postgres_ids)
    stale = tuple(sorted(progress.postgres_ids - progress.dynamodb_ids))
    records = []
    for start in range(0, len(missing), 100):
        keys = [
            {"pk": {"S": f"IMAGE#{i}"}, "sk": {"S": "META"}} for i in missing[start : start + 100]
        ]
        request: dict[str, Any] = {table: {"Keys": keys}}
        try:
            while request:
                answer = client.batch_get_item(RequestItems=request)
                records += [_row(item) for item in answer["Responses"].get(table, [])]
                request = answer.get("UnprocessedKeys") or {}
        except (ClientError, BotoCoreError) as exc:
            raise SourceError(f"DynamoDB table {table!r} could not be read: {exc}") from exc
    return Plan(
        since=since,
        until=until,
        records=tuple(sorted(records, key=lambda r: r["created_at"])),
        stale=stale,
    )


def delete(url: str, ids: tuple[str, ...], *, table: str, batch_size: int = 500) -> int:
    """Delete the rows of images DynamoDB no longer has, in batches; returns how many."""
    import psycopg

    statement = _composed(DELETE, table)
    deleted = 0
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            for start in range(0, len(ids), batch_size):
                with conn.transaction():
                    cur = conn.execute(
                        statement,
                        (list(ids[start : start + batch_size]),),
                    )
                    deleted += cur.rowcount
    except psycopg.Error as exc:
        raise SourceError("PostgreSQL could not be written: " + " ".join(str(exc).split())) from exc
    return deleted


def write(
    url: str, records: tuple[dict[str, Any], ...], *, table: str, batch_size: int = 500
) -> int:
    """Insert the rows in batches, each its own transaction; returns how many were inserted
    (rows already there are left as they are)."""
    import psycopg

    statement = _composed(INSERT, table)
    written = 0
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            for start in range(0, len(records), batch_size):
                batch = records[start : start + batch_size]
                with conn.transaction(), conn.cursor() as cur:
                    for r in batch:
                        cur.execute(
                            statement,
                            (
                                r["id"],
                                r["user_id"],
                                r["original_key"],
                                r["thumbnail_key"],
                                r["content_type"],
                                r["width"],
                                r["height"],
                                r["size_bytes"],
                                r["created_at"],
                            ),
                        )
                        written += cur.rowcount
    except psycopg.Error as exc:
        raise SourceError("PostgreSQL could not be written: " + " ".join(str(exc).split())) from exc
    return written
