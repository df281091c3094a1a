"""Reconciliation by identity (issue 13): image ids a second, DynamoDB (moto) and PostgreSQL.

A fresh moto server holds N image records (`pk` IMAGE#<id>, `created_at` in the range) and a
fresh PostgreSQL `gallery_images` holds the same ids but every 1,000th. Figures:
* ours: `cutover.reconcile.reconcile` reading every id of both sides in pages of 1,000 (a Scan
  projecting `pk` with `Limit`, keyset pages over `id`), unpaced, then the set difference: ids a
  second over the whole run, and per side;
* baseline, the old way (`cutover.evidence.reconcile` before issue 13): one COUNT Scan of the
  table and one COUNT(*) in PostgreSQL, which cannot say which ids differ.
The ratio says what naming every missing id costs beside counting them.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import boto3
import psycopg

from benchmarks.common import Figure, note
from watchtower.cutover.ports import DynamoDbImages
from watchtower.cutover.reconcile import DynamoDbImageIds, Pacer, Progress, differences, reconcile
from watchtower.sandbox import servers
from watchtower.sources import PostgresSql

NAME = "reconciliation"
TABLE = "images"
SCHEMA = (
    "CREATE TABLE gallery_images (id text PRIMARY KEY, user_id text NOT NULL, "
    "created_at timestamptz NOT NULL)"
)


def _load(client: object, url: str, n: int, created: datetime) -> None:
    client.create_table(  # type: ignore[attr-defined]
        TableName=TABLE,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    stamp = created.isoformat(timespec="microseconds")
    for start in range(0, n, 25):
        client.batch_write_item(  # type: ignore[attr-defined]
            RequestItems={
                TABLE: [
                    {
                        "PutRequest": {
                            "Item": {
                                "pk": {"S": f"IMAGE#img-{k:07d}"},
                                "sk": {"S": "META"},
                                "created_at": {"S": stamp},
                            }
                        }
                    }
                    for k in range(start, min(n, start + 25))
                ]
            }
        )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SCHEMA)
        conn.execute(
            "INSERT INTO gallery_images SELECT 'img-' || lpad(k::text, 7, '0'), 'u', %s "
            "FROM generate_series(0, %s) k WHERE k %% 1000 <> 0",
            (created, n - 1),
        )
        conn.execute("ANALYZE gallery_images")


def run(*, quick: bool, n: int | None = None) -> list[Figure]:
    n = n or (20_000 if quick else 100_000)
    moto, postgres = servers.start_moto(), servers.start_postgres()
    try:
        client = boto3.client("dynamodb", endpoint_url=moto.url, region_name="us-east-1")
        now = datetime.now(UTC)
        began = time.monotonic()
        _load(client, postgres.url, n, now - timedelta(days=1))
        note(
            f"{n:,} images in moto's DynamoDB, {n - n // 1000:,} rows in PostgreSQL "
            f"(loaded in {time.monotonic() - began:.0f} s); pages of 1,000 ids"
        )
        sql = PostgresSql(postgres.url, table="gallery_images")
        since, until = now - timedelta(days=7), now

        began = time.monotonic()
        counted = DynamoDbImages(client, TABLE).images_created(since, until)
        rows = sql.scalar(
            "SELECT count(*) FROM gallery_images WHERE created_at > %(s)s AND created_at <= %(u)s",
            {"s": since, "u": until},
        )
        count_seconds = time.monotonic() - began
        assert (counted, rows) == (n, n - n // 1000), (counted, rows)

        ids = DynamoDbImageIds(client, TABLE, page_size=1000)
        start = Progress(since=since, until=until)
        began = time.monotonic()
        dynamo_only = reconcile(
            Progress(since=since, until=until, postgres_done=True),
            images=ids,
            sql=sql,
            pacer=Pacer(0),
        )
        dynamo_seconds = time.monotonic() - began
        began = time.monotonic()
        pg_only = reconcile(
            Progress(since=since, until=until, dynamodb_done=True),
            images=ids,
            sql=sql,
            pacer=Pacer(0),
        )
        pg_seconds = time.monotonic() - began
        began = time.monotonic()
        both = reconcile(start, images=ids, sql=sql, pacer=Pacer(0))
        diff = differences(both)
        both_seconds = time.monotonic() - began
        assert (
            diff.missing_from_postgres_count == n // 1000 and diff.missing_from_dynamodb_count == 0
        )
        assert len(dynamo_only.dynamodb_ids) == n and len(pg_only.postgres_ids) == n - n // 1000
        note(
            f"by identity: {both_seconds:.1f} s for both sides ({dynamo_seconds:.1f} s DynamoDB, "
            f"{pg_seconds:.2f} s PostgreSQL); by count: {count_seconds:.1f} s"
        )
        per_second = (2 * n) / both_seconds
        return [
            Figure(
                benchmark=NAME,
                name="reconcile by identity, both sides",
                value=per_second,
                baseline_name="count both sides",
                baseline=(2 * n) / count_seconds,
                unit="ids/s",
            ),
            Figure(
                benchmark=NAME,
                name="DynamoDB (moto) id pages",
                value=n / dynamo_seconds,
                baseline_name="DynamoDB COUNT Scan",
                baseline=n / count_seconds,
                unit="ids/s",
            ),
            Figure(
                benchmark=NAME,
                name="PostgreSQL id pages",
                value=(n - n // 1000) / pg_seconds,
                baseline_name="count both sides",
                baseline=(2 * n) / count_seconds,
                unit="ids/s",
            ),
        ]
    finally:
        moto.stop()
        postgres.stop()
