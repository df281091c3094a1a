"""Fixtures for the checks: a `World` that puts datapoints, log lines, a Lambda function and
legacy rows into the real local servers, and `run` to judge them through `run_checks`."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from tests.helpers import create_function
from watchtower.checks import registry
from watchtower.checks.base import Sources
from watchtower.checks.runner import run_checks
from watchtower.config import Settings
from watchtower.model import Result
from watchtower.runtime import build_sources
from watchtower.sandbox.servers import MotoServer

# The legacy table as the image core's dual-write creates it (image_core/legacy.py SCHEMA), kept
# here so Watchtower's tests do not import the module that is deleted after the cutover.
LEGACY_SCHEMA = """
CREATE TABLE IF NOT EXISTS gallery_images (
    id text PRIMARY KEY, user_id text NOT NULL, original_key text NOT NULL,
    thumbnail_key text NOT NULL, content_type text NOT NULL, width integer NOT NULL,
    height integer NOT NULL, size_bytes bigint NOT NULL, created_at timestamptz NOT NULL,
    inserted_at timestamptz NOT NULL DEFAULT now()
);
"""
FUNCTION = "image-api"
DISTRIBUTION = "E2CHECKS0001"
NAMESPACE = "ImageService"


def settings_for(moto_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "aws_endpoint_url": moto_url,
        "region": "us-east-1",
        "lambda_function": FUNCTION,
        "cloudfront_distribution_id": DISTRIBUTION,
    }
    values.update(overrides)
    return Settings(**values)


def run(
    settings: Settings, *names: str, now: datetime, sources: Sources | None = None
) -> dict[str, Result]:
    """One cycle of the named checks (all when none are named), by name."""
    checks = registry()
    chosen = [checks[n] for n in names] if names else list(checks.values())
    results = run_checks(
        chosen, settings=settings, sources=sources or build_sources(settings), now=now
    )
    return {r.name: r for r in results}


class World:
    """Puts what the platform would report into the moto server (and PostgreSQL)."""

    def __init__(self, moto_url: str, now: datetime) -> None:
        self.now = now
        self._client: Callable[[str], Any] = functools.cache(
            lambda service: boto3.client(service, endpoint_url=moto_url, region_name="us-east-1")
        )

    def ago(self, seconds: float) -> datetime:
        return self.now - timedelta(seconds=seconds)

    def metric(
        self,
        name: str,
        value: float | None = None,
        *,
        namespace: str = NAMESPACE,
        at: datetime | None = None,
        unit: str = "Count",
        stats: Mapping[str, float] | None = None,
        **dimensions: str,
    ) -> None:
        datum: dict[str, Any] = {
            "MetricName": name,
            "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
            "Timestamp": at or self.ago(60),
            "Unit": unit,
        }
        if stats is not None:
            datum["StatisticValues"] = dict(stats)
        else:
            datum["Value"] = value
        self._client("cloudwatch").put_metric_data(Namespace=namespace, MetricData=[datum])

    def requests(
        self,
        outcome: str,
        count: float,
        *,
        traffic: str = "user",
        operation: str = "upload",
        at: datetime | None = None,
    ) -> None:
        self.metric("Requests", count, at=at, Operation=operation, Traffic=traffic, Outcome=outcome)

    def latency(
        self,
        samples: int,
        over: Mapping[int, int],
        *,
        traffic: str = "user",
        at: datetime | None = None,
        thresholds: tuple[int, ...] = (250, 500, 800, 1000),
    ) -> None:
        """`samples` uploads, of which over[t] took longer than t ms (as the image core counts,
        publishing LatencyOver<t>ms for each of `thresholds`: IMAGE_LATENCY_THRESHOLDS_MS)."""
        dims = {"Operation": "upload", "Traffic": traffic}
        self.metric(
            "Latency",
            at=at,
            unit="Milliseconds",
            stats={
                "SampleCount": samples,
                "Sum": samples * 300.0,
                "Minimum": 50.0,
                "Maximum": 1500.0,
            },
            **dims,
        )
        for threshold in thresholds:
            n = over.get(threshold, 0)
            self.metric(
                f"LatencyOver{threshold}ms",
                at=at,
                stats={
                    "SampleCount": samples,
                    "Sum": n,
                    "Minimum": 0.0,
                    "Maximum": 1.0 if n else 0.0,
                },
                **dims,
            )

    def dual_writes(
        self, success: float, failure: float = 0, *, at: datetime | None = None
    ) -> None:
        if success:
            self.metric("DualWrites", success, at=at, Outcome="success")
        if failure:
            self.metric("DualWrites", failure, at=at, Outcome="failure")

    def cloudfront(
        self, *, hit_rate: float | None, requests: float | None, at: datetime | None = None
    ) -> None:
        dims = {"DistributionId": DISTRIBUTION, "Region": "Global"}
        if hit_rate is not None:
            self.metric(
                "CacheHitRate", hit_rate, namespace="AWS/CloudFront", at=at, unit="Percent", **dims
            )
        if requests is not None:
            self.metric(
                "Requests", requests, namespace="AWS/CloudFront", at=at, unit="None", **dims
            )

    def table_writes(
        self, units: float, *, table: str = "images", at: datetime | None = None
    ) -> None:
        self.metric(
            "ConsumedWriteCapacityUnits", units, namespace="AWS/DynamoDB", at=at, TableName=table
        )

    def logs(
        self,
        messages: Iterable[tuple[datetime, str]],
        *,
        group: str = f"/aws/lambda/{FUNCTION}",
        version: str = "$LATEST",
    ) -> None:
        """Lines in a new log stream of `version`, named as Lambda names it."""
        logs = self._client("logs")
        if not logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]:
            logs.create_log_group(logGroupName=group)
        stream = f"2024/01/01/[{version}]{uuid.uuid4().hex}"
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
        events = sorted(
            ({"timestamp": int(at.timestamp() * 1000), "message": m} for at, m in messages),
            key=lambda e: e["timestamp"],
        )
        logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)

    def function(self, environment: Mapping[str, str]) -> None:
        """The image API's Lambda function, with these environment variables."""
        create_function(
            self._client("iam"),
            self._client("lambda"),
            FUNCTION,
            {"IMAGE_TABLE": "images", **environment},
        )

    def set_environment(self, environment: Mapping[str, str]) -> None:
        self._client("lambda").update_function_configuration(
            FunctionName=FUNCTION, Environment={"Variables": dict(environment)}
        )


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def world(moto: MotoServer, now: datetime) -> World:
    return World(moto.url, now)


@pytest.fixture
def settings(moto: MotoServer) -> Settings:
    return settings_for(moto.url)
