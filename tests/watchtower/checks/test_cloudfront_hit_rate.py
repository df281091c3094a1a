from __future__ import annotations

from datetime import datetime

import pytest

from tests.watchtower.checks.conftest import World, run, settings_for
from watchtower.checks.cloudfront_hit_rate import CloudFrontHitRate, judge
from watchtower.config import Settings
from watchtower.model import Status
from watchtower.sandbox.servers import MotoServer

PARAMS = dict(CloudFrontHitRate.defaults)


@pytest.mark.parametrize(
    ("hit", "status"),
    [
        (0.89, Status.OK),
        (0.80, Status.OK),
        (0.79, Status.WARNING),
        (0.50, Status.WARNING),
        (0.49, Status.CRITICAL),
        (0.0, Status.CRITICAL),
    ],
)
def test_judge_hit_ratio(hit: float, status: Status) -> None:
    assert judge({"hit_ratio": hit, "requests": 5000}, PARAMS)[0] is status


def test_judge_no_hit_rate_datapoints_is_unknown_and_says_it_is_opt_in() -> None:
    status, reason = judge({"hit_ratio": None, "requests": 1200}, PARAMS)
    assert status is Status.UNKNOWN
    assert reason == (
        "CacheHitRate has no datapoints although 1200 requests were served in 5 "
        "min: CacheHitRate is an opt-in metric (CloudFront additional metrics); "
        "enable it"
    )


def test_judge_no_datapoints_at_all_is_unknown() -> None:
    status, reason = judge({"hit_ratio": None, "requests": None}, PARAMS)
    assert status is Status.UNKNOWN
    assert "opt-in metric" in reason


def test_judge_too_few_requests_is_ok_and_says_so() -> None:
    status, reason = judge({"hit_ratio": 0.10, "requests": 12}, PARAMS)
    assert status is Status.OK
    assert reason == (
        "cache hit rate 10.0% over 12 requests in 5 min: too few requests to judge (at least 100)"
    )


@pytest.mark.parametrize(
    ("rates", "status", "ratio"),
    [
        ((89.0, 91.0), Status.OK, 0.90),
        ((70.0, 74.0), Status.WARNING, 0.72),
        ((30.0, 40.0), Status.CRITICAL, 0.35),
    ],
)
def test_hit_rate_read_from_cloudwatch(
    world: World,
    settings: Settings,
    now: datetime,
    rates: tuple[float, float],
    status: Status,
    ratio: float,
) -> None:
    for seconds, rate in zip((240, 60), rates, strict=True):
        world.cloudfront(hit_rate=rate, requests=600, at=world.ago(seconds))
    world.cloudfront(hit_rate=0.0, requests=10_000, at=world.ago(900))  # before the window

    result = run(settings, "cloudfront_hit_rate", now=now)["cloudfront_hit_rate"]

    assert result.status is status, result.reason
    assert result.figures == {"hit_ratio": pytest.approx(ratio), "requests": 1200}


def test_requests_without_hit_rate_are_unknown(
    world: World, settings: Settings, now: datetime
) -> None:
    world.cloudfront(hit_rate=None, requests=800)

    result = run(settings, "cloudfront_hit_rate", now=now)["cloudfront_hit_rate"]

    assert result.status is Status.UNKNOWN
    assert "CacheHitRate is an opt-in metric" in result.reason
    assert result.figures == {"hit_ratio": None, "requests": 800}


def test_reads_us_east_1_whatever_the_region(world: World, moto: MotoServer, now: datetime) -> None:
    world.cloudfront(hit_rate=95.0, requests=1000)  # World writes to us-east-1

    settings = settings_for(moto.url, region="eu-west-1")
    result = run(settings, "cloudfront_hit_rate", now=now)["cloudfront_hit_rate"]

    assert result.status is Status.OK, result.reason
    assert result.figures["hit_ratio"] == pytest.approx(0.95)


def test_distribution_not_configured_is_unknown(moto: MotoServer, now: datetime) -> None:
    settings = settings_for(moto.url, cloudfront_distribution_id=None)

    result = run(settings, "cloudfront_hit_rate", now=now)["cloudfront_hit_rate"]

    assert result.status is Status.UNKNOWN
    assert result.reason == (
        "no CloudFront distribution is configured (WATCHTOWER_CLOUDFRONT_DISTRIBUTION_ID)"
    )
