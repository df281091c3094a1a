"""Fixtures for the cutover against the real local servers: the moto server (CloudWatch,
Lambda, DynamoDB, Cost Explorer), PostgreSQL (gallery_images) and a SQLite history store.

`World` (tests/checks/conftest.py) puts datapoints and the function into moto; `Legacy` puts rows
into gallery_images with the `inserted_at` a test chooses; `Images` puts image records into the
DynamoDB table the way the image core writes them.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest

from tests.watchtower.checks.conftest import DISTRIBUTION, FUNCTION, World
from tests.watchtower.checks.conftest import LEGACY_SCHEMA as SCHEMA
from watchtower.config import Settings
from watchtower.cutover.config import CutoverSettings
from watchtower.cutover.service import CutoverService
from watchtower.runtime import build
from watchtower.sandbox.servers import MotoServer

TABLE = "images"


class Legacy:
    def __init__(self, url: str) -> None:
        self.url = url
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(SCHEMA)

    def insert(self, *, at: datetime, image_id: str | None = None, user: str = "ada") -> str:
        image_id = image_id or uuid.uuid4().hex
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO gallery_images (id, user_id, original_key, thumbnail_key, "
                "content_type, width, height, size_bytes, created_at, inserted_at) "
                "VALUES (%s, %s, 'o', 't', 'image/jpeg', 1, 1, 1, %s, %s)",
                (image_id, user, at, at),
            )
        return image_id


class Images:
    """The images table, with records as the image core writes them (`pk` IMAGE#<id>)."""

    def __init__(self, moto_url: str) -> None:
        self.client = boto3.client("dynamodb", endpoint_url=moto_url, region_name="us-east-1")
        self.client.create_table(
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

    def put(self, *, created: datetime, image_id: str | None = None) -> str:
        image_id = image_id or uuid.uuid4().hex
        self.client.put_item(
            TableName=TABLE,
            Item={
                "pk": {"S": f"IMAGE#{image_id}"},
                "sk": {"S": "META"},
                "created_at": {"S": created.astimezone(UTC).isoformat(timespec="microseconds")},
            },
        )
        return image_id

    def claim(self, key: str) -> None:
        """An idempotency claim: in the same table, never counted as an image."""
        self.client.put_item(
            TableName=TABLE, Item={"pk": {"S": f"IDEMPOTENCY#ada#{key}"}, "sk": {"S": "KEY"}}
        )


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def world(moto: MotoServer, now: datetime) -> World:
    return World(moto.url, now)


@pytest.fixture
def legacy(legacy_url: str) -> Legacy:
    return Legacy(legacy_url)


@pytest.fixture
def images(moto: MotoServer) -> Images:
    return Images(moto.url)


@pytest.fixture
def cutover_settings() -> CutoverSettings:
    # Datapoints put into moto are readable at once: no publication lag to wait out.
    return CutoverSettings(metrics_lag_seconds=0)


@pytest.fixture
def settings(moto: MotoServer, legacy_url: str, tmp_path: Path) -> Settings:
    return Settings(
        aws_endpoint_url=moto.url,
        region="us-east-1",
        lambda_function=FUNCTION,
        cloudfront_distribution_id=DISTRIBUTION,
        table=TABLE,
        database_url=f"sqlite:///{tmp_path / 'watchtower.sqlite'}",
        legacy_database_url=legacy_url,
    )


@contextlib.contextmanager
def running_cutover(
    settings: Settings,
    *,
    cutover: CutoverSettings | None = None,
    client: Callable[..., Any] | None = None,
) -> Iterator[CutoverService]:
    """The cutover service as the composition root builds it, closed on exit."""
    wt = build(settings, cutover=cutover or CutoverSettings(), client=client)
    try:
        yield wt.cutover
    finally:
        wt.close()


@pytest.fixture
def service(settings: Settings, cutover_settings: CutoverSettings) -> Iterator[CutoverService]:
    with running_cutover(settings, cutover=cutover_settings) as built:
        yield built


def post_json(url: str, body: Any) -> None:
    import json

    import urllib3

    answer = urllib3.request(
        "POST", url, body=json.dumps(body), headers={"Content-Type": "application/json"}
    )
    assert answer.status in (200, 201), answer.data
