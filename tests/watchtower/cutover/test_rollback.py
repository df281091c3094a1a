"""Issue 13, item 6: a rollback leaves no hole. The images created while dual-write was off are
written into gallery_images from their DynamoDB records (idempotent, batched, a dry run that
says how many), then the window reconciles to zero differences; and the alert for a stray legacy
writer routes to the runbook that finds it, not to rollback."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import psycopg
import pytest

from tests.watchtower.cutover.conftest import TABLE, Images, Legacy
from watchtower.alerting import DEFAULT_ROUTES, select
from watchtower.config import Settings
from watchtower.runbook.actions import registry
from watchtower.runbook.actions.base import ActionContext
from watchtower.runbook.errors import ActionError


def context(settings: Settings, now: datetime, records: list) -> ActionContext:
    def aws(service: str) -> Any:
        return boto3.client(
            service, endpoint_url=settings.aws_endpoint_url, region_name="us-east-1"
        )

    return ActionContext(
        settings=settings,
        aws=aws,
        redis=None,
        now=now,
        execution_id="run-1",
        step_id="backfill",
        record=lambda kind, detail: records.append((kind, dict(detail))),
    )


def put_image(images: Images, created: datetime) -> str:
    """A record as the image core writes it (metadata._item)."""
    image_id = uuid.uuid4().hex
    images.client.put_item(
        TableName=TABLE,
        Item={
            "pk": {"S": f"IMAGE#{image_id}"},
            "sk": {"S": "META"},
            "image_id": {"S": image_id},
            "user_id": {"S": "ada"},
            "created_at": {"S": created.isoformat(timespec="microseconds")},
            "content_type": {"S": "image/png"},
            "size_bytes": {"N": "1234"},
            "width": {"N": "64"},
            "height": {"N": "48"},
            "original_key": {"S": f"originals/{image_id}"},
            "thumbnail_key": {"S": f"thumbnails/{image_id}"},
        },
    )
    return image_id


def test_a_rollback_backfills_the_hole_and_reconciles_to_zero(
    settings: Settings, images: Images, legacy: Legacy, legacy_url: str
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    flip = now - timedelta(hours=6)
    before = [put_image(images, flip - timedelta(hours=1)) for _ in range(3)]
    for image_id in before:  # dual-written while the flag was on
        legacy.insert(at=flip - timedelta(hours=1), image_id=image_id)
    hole = [put_image(images, flip + timedelta(minutes=10 * k)) for k in range(1, 8)]
    # Deleted while dual-write was off: gone from DynamoDB, still in gallery_images.
    gone = uuid.uuid4().hex
    legacy.insert(at=flip - timedelta(minutes=30), image_id=gone)
    records: list = []
    ctx = context(settings, now, records)
    actions = registry()

    # Before: the window does not reconcile, and says which ids are missing.
    with pytest.raises(ActionError, match="8 differences: 7 missing from gallery_images, 1 only"):
        actions["cutover.reconcile"].run(actions["cutover.reconcile"].validate({}), ctx)

    backfill = actions["cutover.backfill_legacy"]
    values = backfill.validate({"batch_size": 3})
    read, call, removal = backfill.plan(values, ctx)  # the dry run
    assert (read.service, read.operation) == ("dynamodb", "Scan")  # the read it plans with
    assert removal.parameters["rows"] == 1 and removal.parameters["first_ids"] == [gone]
    assert call.parameters["rows"] == 7 and sorted(call.parameters["first_ids"]) == sorted(hole)
    assert call.note.startswith("would write 7 rows")
    done = backfill.run(values, ctx)
    assert done["rows_written"] == 7 and done["rows_missing"] == 7 and done["rows_deleted"] == 1
    assert records[-1][0] == "cutover.legacy_backfilled"
    with psycopg.connect(legacy_url) as conn:
        row = conn.execute(
            "SELECT user_id, width, height, size_bytes, content_type, created_at FROM "
            "gallery_images WHERE id = %s",
            (hole[0],),
        ).fetchone()
    assert row == ("ada", 64, 48, 1234, "image/png", flip + timedelta(minutes=10))

    again = backfill.run(values, ctx)  # idempotent
    assert again["rows_written"] == 0 and again["rows_deleted"] == 0
    assert backfill.plan(values, ctx)[1].parameters["rows"] == 0

    after = actions["cutover.reconcile"].run(actions["cutover.reconcile"].validate({}), ctx)
    assert after["differences"] == 0 and after["dynamodb_images"] == 10


def test_a_stray_legacy_writer_routes_to_finding_it_not_to_rollback(
    settings: Settings, legacy: Legacy, legacy_url: str
) -> None:
    (route,) = select(DEFAULT_ROUTES, {"alertname": "LegacyInsertsAfterCutover"})
    assert route.runbook == "find-legacy-writer" and route.mode == "suggest"
    legacy.insert(at=datetime.now(UTC))
    with psycopg.connect(legacy_url, autocommit=True) as conn:
        conn.execute("SET application_name = 'nightly-report'")
        conn.execute("UPDATE gallery_images SET thumbnail_key = 'x'")
        conn.execute("SELECT pg_stat_force_next_flush()")
        writers = registry()["cutover.legacy_writers"]
        out = writers.run({}, context(settings, datetime.now(UTC), []))
    assert out["writes_since_stats_reset"]["upd"] == 1
    assert out["statements_note"] == "pg_stat_statements is not installed"
    assert any(s["application"] == "nightly-report" for s in out["sessions"])
