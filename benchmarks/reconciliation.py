"""Reconciliation by identity (issue 13): image ids a second, DynamoDB (moto) and PostgreSQL.

A fresh moto server holds N image records (`pk` IMAGE#<id>, `created_at` in the range) and a
fresh PostgreSQL `gallery_images` holds the same ids but every 1,000th. Figures:
* ours: `cutover.reconcile.reconcile` reading every id of both sides in pages of 10,000 (a Scan
  projecting `pk` with `Limit`, keyset pages over `id`), unpaced, then the set difference: ids a
  second over the whole run, and per side; the DynamoDB side also in pages of 1,000 (the
  setting's default) for its first 20 pages, against pages of 10,000;
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


PAGE = 10_000  # ids a page: moto walks and sorts the whole table for every page it answers
SMALL_PAGE = 1_000  # the setting's default, measured on the first SMALL_PAGES pages only
SMALL_PAGES = 20


def run(
    *, quick: bool, n: int | None = None, small_pages: int | None = SMALL_PAGES
) -> list[Figure]:
    """`small_pages`: pages of SMALL_PAGE timed (None: every one, minutes at 100,000)."""
    n = n or (20_000 if quick else 100_000)
    moto, postgres = servers.start_moto(), servers.start_postgres()
    try:
        client = boto3.client("dynamodb", endpoint_url=moto.url, region_name="us-east-1")
        now = datetime.now(UTC)
        began = time.monotonic()
        _load(client, postgres.url, n, now - timedelta(days=1))
        note(
            f"{n:,} images in moto's DynamoDB, {n - n // 1000:,} rows in PostgreSQL "
            f"(loaded in {time.monotonic() - began:.0f} s)"
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

        # Both sides, as the gate runs it, in pages of PAGE.
        began = time.monotonic()
        both = reconcile(
            Progress(since=since, until=until),
            images=DynamoDbImageIds(client, TABLE, page_size=PAGE),
            sql=sql,
            pacer=Pacer(0),
            page_size=PAGE,
        )
        both_seconds = time.monotonic() - began
        diff = differences(both)
        assert (
            diff.missing_from_postgres_count == n // 1000 and diff.missing_from_dynamodb_count == 0
        )
        # Each side alone: PostgreSQL whole; DynamoDB in pages of PAGE, then of SMALL_PAGE for its
        # first SMALL_PAGES pages (a full run at 1,000 a page takes minutes at 100,000 in moto).
        began = time.monotonic()
        pg_only = reconcile(
            Progress(since=since, until=until, dynamodb_done=True),
            images=DynamoDbImageIds(client, TABLE, page_size=PAGE),
            sql=sql,
            pacer=Pacer(0),
            page_size=PAGE,
        )
        pg_seconds = time.monotonic() - began
        began = time.monotonic()
        dynamo_only = reconcile(
            Progress(since=since, until=until, postgres_done=True),
            images=DynamoDbImageIds(client, TABLE, page_size=PAGE),
            sql=sql,
            pacer=Pacer(0),
            page_size=PAGE,
        )
        dynamo_seconds = time.monotonic() - began
        began = time.monotonic()
        small = reconcile(
            Progress(since=since, until=until, postgres_done=True),
            images=DynamoDbImageIds(client, TABLE, page_size=SMALL_PAGE),
            sql=sql,
            pacer=Pacer(0),
            page_size=SMALL_PAGE,
            max_pages=small_pages,
        )
        small_seconds = time.monotonic() - began
        assert len(dynamo_only.dynamodb_ids) == n and len(pg_only.postgres_ids) == n - n // 1000
        note(
            f"by identity, pages of {PAGE:,}: {both_seconds:.1f} s for both sides "
            f"({dynamo_seconds:.1f} s DynamoDB, {pg_seconds:.2f} s PostgreSQL); by count: "
            f"{count_seconds:.1f} s; DynamoDB in pages of {SMALL_PAGE:,}: "
            f"{len(small.dynamodb_ids):,} ids in {small_seconds:.1f} s ({small.pages} pages)"
        )
        return [
            Figure(
                benchmark=NAME,
                name=f"reconcile by identity, both sides, pages of {PAGE:,}",
                value=(2 * n) / both_seconds,
                baseline_name="count both sides",
                baseline=(2 * n) / count_seconds,
                unit="ids/s",
            ),
            Figure(
                benchmark=NAME,
                name=f"DynamoDB (moto) id pages of {PAGE:,}",
                value=n / dynamo_seconds,
                baseline_name="DynamoDB COUNT Scan",
                baseline=n / count_seconds,
                unit="ids/s",
            ),
            Figure(
                benchmark=NAME,
                name=f"DynamoDB (moto) id pages of {PAGE:,}",
                value=n / dynamo_seconds,
                baseline_name=f"pages of {SMALL_PAGE:,}"
                + (f" (first {small_pages})" if small_pages else " (all)"),
                baseline=len(small.dynamodb_ids) / small_seconds,
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


if __name__ == "__main__":
    import argparse
    import os

    from benchmarks.common import FIGURE_HEADER, figure_rows, table, use_dummy_aws_credentials

    parser = argparse.ArgumentParser(prog="python -m benchmarks.reconciliation")
    parser.add_argument("--quick", action="store_true", help="20,000 images instead of 100,000")
    parser.add_argument(
        "--all-small-pages",
        action="store_true",
        help=f"time every page of {SMALL_PAGE:,}, not the first {SMALL_PAGES} (minutes in moto)",
    )
    args = parser.parse_args()
    use_dummy_aws_credentials()
    print("load average before:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    found = run(quick=args.quick, small_pages=None if args.all_small_pages else SMALL_PAGES)
    print(table(figure_rows(found, with_benchmark=False), FIGURE_HEADER))
    print("load average after:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
