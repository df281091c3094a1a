"""Read back what the image core left in the real stores (moto S3 and DynamoDB, CloudWatch)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from image_core import aws
from image_core.app import Components
from image_core.config import Settings


def objects(components: Components, prefix: str = "") -> list[str]:
    """Every object key in the image bucket (under `prefix`)."""
    s3 = components.storage._client
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=components.settings.bucket, Prefix=prefix
    ):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return sorted(keys)


def image_items(components: Components) -> list[dict[str, Any]]:
    """Every IMAGE# item in the table, as DynamoDB returns it."""
    db = components.metadata._client
    items: list[dict[str, Any]] = []
    for page in db.get_paginator("scan").paginate(TableName=components.settings.table):
        items += [i for i in page["Items"] if i["pk"]["S"].startswith("IMAGE#")]
    return items


def idempotency_items(components: Components) -> list[dict[str, Any]]:
    db = components.metadata._client
    items = db.scan(TableName=components.settings.table)["Items"]
    return [i for i in items if i["pk"]["S"].startswith("IDEMPOTENCY#")]


def metric(
    settings: Settings, name: str, dimensions: dict[str, str], statistic: str = "Sum"
) -> float | None:
    """One statistic of one metric over the last hour, read back from CloudWatch (moto)."""
    cloudwatch = aws.client("cloudwatch", settings)
    try:
        now = datetime.now(UTC)
        answer = cloudwatch.get_metric_statistics(
            Namespace=settings.metrics_namespace,
            MetricName=name,
            Dimensions=[{"Name": k, "Value": v} for k, v in dimensions.items()],
            StartTime=now - timedelta(hours=1),
            EndTime=now + timedelta(minutes=5),
            Period=3600 * 2,
            Statistics=[statistic],
        )
    finally:
        cloudwatch.close()
    points = answer["Datapoints"]
    if not points:
        return None
    return float(sum(p[statistic] for p in points))


def half_written(components: Components) -> list[str]:
    """What breaks "nothing half-written" once every request has answered: an image record
    missing an object, an object no record owns, an Idempotency-Key claim still in progress."""
    keys = set(objects(components))
    db = components.metadata._client
    items: list[dict[str, Any]] = []
    for page in db.get_paginator("scan").paginate(TableName=components.settings.table):
        items += page["Items"]
    owned: set[str] = set()
    problems = []
    for item in items:
        pk = item["pk"]["S"]
        if pk.startswith("IDEMPOTENCY#") and item["status"]["S"] != "completed":
            problems.append(f"{pk}: the claim is still in progress")
        if not pk.startswith("IMAGE#"):
            continue
        for name in ("original_key", "thumbnail_key"):
            key = item[name]["S"]
            owned.add(key)
            if key not in keys:
                problems.append(f"{pk}: its {name} {key!r} is not in the bucket")
    problems += [f"object {key!r} belongs to no record" for key in sorted(keys - owned)]
    return problems
