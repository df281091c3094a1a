"""gallery_cache: judged from the image core's CacheEvents, as CloudWatch holds them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from watchtower.checks import registry
from watchtower.checks.gallery_cache import judge
from watchtower.checks.runner import run_checks
from watchtower.config import Settings
from watchtower.model import Status
from watchtower.runtime import build_sources

PARAMS = {"window_seconds": 300, "warning_bypass_ratio": 0.01, "critical_bypass_ratio": 0.9}


@pytest.mark.parametrize(
    "hits, misses, bypasses, expected",
    [
        (90, 10, 0, Status.OK),
        (90, 8, 2, Status.WARNING),
        (0, 5, 95, Status.CRITICAL),
    ],
)
def test_judge(hits: int, misses: int, bypasses: int, expected: Status) -> None:
    lookups = hits + misses + bypasses
    figures = {"hit_ratio": hits / (hits + misses), "bypass_ratio": bypasses / lookups}
    status, reason = judge(figures, PARAMS)
    assert status is expected
    assert f"{bypasses / lookups:.1%}" in reason


def _run(moto: Any) -> Any:
    settings = Settings(aws_endpoint_url=moto.url)
    check = registry()["gallery_cache"]
    (result,) = run_checks(
        [check], settings=settings, sources=build_sources(settings), now=datetime.now(UTC)
    )
    return result


def test_no_events_is_unknown_never_ok(moto: Any) -> None:
    result = _run(moto)
    assert result.status is Status.UNKNOWN and "no cache lookups" in result.reason


def test_bypasses_in_cloudwatch_turn_it_critical(moto: Any) -> None:
    cloudwatch = boto3.client("cloudwatch", endpoint_url=moto.url, region_name="us-east-1")
    at = datetime.now(UTC) - timedelta(seconds=60)
    cloudwatch.put_metric_data(
        Namespace="ImageService",
        MetricData=[
            {
                "MetricName": "CacheEvents",
                "Dimensions": [{"Name": "Event", "Value": event}],
                "Value": value,
                "Unit": "Count",
                "Timestamp": at,
            }
            for event, value in (("hit", 1), ("miss", 1), ("bypass", 98))
        ],
    )
    result = _run(moto)
    assert result.status is Status.CRITICAL
    assert result.figures["bypasses"] == 98 and result.figures["hit_ratio"] == 0.5
