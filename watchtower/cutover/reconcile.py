"""Reconciliation by identity: which image ids DynamoDB has and the legacy table lacks, and the
reverse, for a time range. Paged, rate-limited, resumable.

Counting both sides (the pre-flight report's old method) lets 100 missing rows in 100,000 pass
as "0.1%"; comparing identities lists them. Both sides are read in pages: DynamoDB by a Scan
with `Limit` and `ExclusiveStartKey`, projecting only the key and `created_at`, and paced so that
it consumes at most `read_units_per_second` (the capacity the image service can spare, a
setting); PostgreSQL by keyset pages over `id` (`created_at` is the image's own time, copied by
the dual-write, so the table needs no `inserted_at`). A run stops after `max_pages` and returns
a `Progress` to resume from: the cursors and the ids read so far.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from watchtower.checks.base import SqlSource, TableSql
from watchtower.cutover.config import CutoverSettings
from watchtower.cutover.model import Reconciliation
from watchtower.errors import SourceError

SHOWN = 100  # differences listed in the report; all are counted
IDS_PAGE = TableSql(
    "SELECT coalesce(json_agg(id ORDER BY id), '[]'::json) FROM ("
    "SELECT id FROM {table} WHERE created_at > %(since)s AND created_at <= %(until)s "
    "AND id > %(after)s ORDER BY id LIMIT %(limit)s) page"
)


@dataclass(frozen=True, kw_only=True)
class Progress:
    """Where a reconciliation stands: resumable from here."""

    since: datetime
    until: datetime
    dynamodb_ids: frozenset[str] = frozenset()
    postgres_ids: frozenset[str] = frozenset()
    dynamodb_cursor: str | None = None  # LastEvaluatedKey as JSON; None before the first page
    postgres_after: str = ""  # the last id read
    dynamodb_done: bool = False
    postgres_done: bool = False
    pages: int = 0
    read_units: float = 0.0

    @property
    def done(self) -> bool:
        return self.dynamodb_done and self.postgres_done

    def as_json(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "dynamodb_ids": sorted(self.dynamodb_ids),
            "postgres_ids": sorted(self.postgres_ids),
            "dynamodb_cursor": self.dynamodb_cursor,
            "postgres_after": self.postgres_after,
            "dynamodb_done": self.dynamodb_done,
            "postgres_done": self.postgres_done,
            "pages": self.pages,
            "read_units": self.read_units,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Progress:
        return cls(
            since=datetime.fromisoformat(data["since"]),
            until=datetime.fromisoformat(data["until"]),
            dynamodb_ids=frozenset(data["dynamodb_ids"]),
            postgres_ids=frozenset(data["postgres_ids"]),
            dynamodb_cursor=data["dynamodb_cursor"],
            postgres_after=data["postgres_after"],
            dynamodb_done=data["dynamodb_done"],
            postgres_done=data["postgres_done"],
            pages=data["pages"],
            read_units=data["read_units"],
        )


@dataclass(frozen=True, kw_only=True)
class Differences:
    """The outcome, once both sides were read."""

    dynamodb_images: int
    postgres_rows: int
    missing_from_postgres: tuple[str, ...]  # the first SHOWN, sorted
    missing_from_postgres_count: int
    missing_from_dynamodb: tuple[str, ...]
    missing_from_dynamodb_count: int

    @property
    def count(self) -> int:
        return self.missing_from_postgres_count + self.missing_from_dynamodb_count


def differences(progress: Progress) -> Differences:
    missing = sorted(progress.dynamodb_ids - progress.postgres_ids)
    extra = sorted(progress.postgres_ids - progress.dynamodb_ids)
    return Differences(
        dynamodb_images=len(progress.dynamodb_ids),
        postgres_rows=len(progress.postgres_ids),
        missing_from_postgres=tuple(missing[:SHOWN]),
        missing_from_postgres_count=len(missing),
        missing_from_dynamodb=tuple(extra[:SHOWN]),
        missing_from_dynamodb_count=len(extra),
    )


@dataclass
class Pacer:
    """Keeps consumed read units under `units_per_second` (0: unpaced), sleeping as needed."""

    units_per_second: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _started: float | None = None
    _units: float = 0.0
    slept: float = field(default=0.0)

    def consumed(self, units: float) -> None:
        if self._started is None:
            self._started = self.clock()
        self._units += units
        if self.units_per_second <= 0:
            return
        ahead = self._units / self.units_per_second - (self.clock() - self._started)
        if ahead > 0:
            self.slept += ahead
            self.sleep(ahead)


class DynamoDbImageIds:
    """One page at a time of image ids (`pk` IMAGE#<id>) created in a range, by a Scan."""

    def __init__(self, client: Any, table: str, *, page_size: int = 1000) -> None:
        self._client = client
        self._table = table
        self._page_size = page_size

    def page(
        self, since: datetime, until: datetime, cursor: str | None
    ) -> tuple[list[str], str | None, float]:
        """(ids, the next cursor or None at the end, read units consumed)."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "Limit": self._page_size,
            "ProjectionExpression": "pk",
            "FilterExpression": "begins_with(pk, :image) AND created_at > :since "
            "AND created_at <= :until",
            "ExpressionAttributeValues": {
                ":image": {"S": "IMAGE#"},
                ":since": {"S": since.isoformat(timespec="microseconds")},
                ":until": {"S": until.isoformat(timespec="microseconds")},
            },
            "ReturnConsumedCapacity": "TOTAL",
        }
        if cursor:
            request["ExclusiveStartKey"] = json.loads(cursor)
        try:
            answer = self._client.scan(**request)
        except (ClientError, BotoCoreError) as exc:
            raise SourceError(
                f"DynamoDB table {self._table!r} could not be scanned: {exc}"
            ) from exc
        ids = [item["pk"]["S"].removeprefix("IMAGE#") for item in answer.get("Items", [])]
        key = answer.get("LastEvaluatedKey")
        units = float((answer.get("ConsumedCapacity") or {}).get("CapacityUnits") or 0.0)
        return ids, json.dumps(key, sort_keys=True) if key else None, units


def reconcile(
    progress: Progress,
    *,
    images: DynamoDbImageIds,
    sql: SqlSource,
    pacer: Pacer,
    page_size: int = 1000,
    max_pages: int | None = None,
) -> Progress:
    """Read pages of both sides until done or `max_pages`; returns where it stands."""
    pages = 0
    while not progress.done and (max_pages is None or pages < max_pages):
        if not progress.dynamodb_done:
            ids, cursor, units = images.page(
                progress.since, progress.until, progress.dynamodb_cursor
            )
            pacer.consumed(units)
            progress = replace(
                progress,
                dynamodb_ids=progress.dynamodb_ids | frozenset(ids),
                dynamodb_cursor=cursor,
                dynamodb_done=cursor is None,
                read_units=progress.read_units + units,
            )
        if not progress.postgres_done:
            rows = (
                sql.scalar(
                    IDS_PAGE,
                    {
                        "since": progress.since,
                        "until": progress.until,
                        "after": progress.postgres_after,
                        "limit": page_size,
                    },
                )
                or []
            )
            progress = replace(
                progress,
                postgres_ids=progress.postgres_ids | frozenset(rows),
                postgres_after=rows[-1] if rows else progress.postgres_after,
                postgres_done=len(rows) < page_size,
            )
        pages += 1
        progress = replace(progress, pages=progress.pages + 1)
    return progress


def by_identity(
    images: Any,
    sql: Any,
    *,
    start: datetime,
    end: datetime,
    upload_requests: float | None,
    cutover: CutoverSettings,
    pacer: Pacer | None = None,
) -> Reconciliation:
    """Every image id created in (start, end] on each side, compared (`cutover.reconcile`)."""
    try:
        progress = reconcile(
            Progress(since=start, until=end),
            images=images,
            sql=sql,
            pacer=pacer or Pacer(cutover.reconcile_read_units_per_second),
            page_size=cutover.reconcile_page_size,
        )
    except SourceError as exc:
        failed = str(exc)
        dynamo_side = "DynamoDB" in failed
        return Reconciliation(
            dynamodb_images=None,
            postgres_rows=None,
            upload_requests=upload_requests,
            dynamodb_error=failed if dynamo_side else None,
            postgres_error=None if dynamo_side else failed,
            by_identity=True,
            legacy_table=sql.table,
        )
    diff = differences(progress)
    return Reconciliation(
        dynamodb_images=diff.dynamodb_images,
        postgres_rows=diff.postgres_rows,
        upload_requests=upload_requests,
        by_identity=True,
        missing_from_postgres=diff.missing_from_postgres,
        missing_from_postgres_count=diff.missing_from_postgres_count,
        missing_from_dynamodb=diff.missing_from_dynamodb,
        missing_from_dynamodb_count=diff.missing_from_dynamodb_count,
        legacy_table=sql.table,
    )
