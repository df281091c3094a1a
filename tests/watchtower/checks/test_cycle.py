"""One cycle of every check: its cost in API calls, and what happens when a source is down."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.watchtower.checks.conftest import World, run, settings_for
from tests.watchtower.checks.test_postgres_inserts import insert_rows
from watchtower import aws
from watchtower.checks import registry, tunables
from watchtower.checks.base import Sources
from watchtower.checks.runner import params_for
from watchtower.config import Settings
from watchtower.model import Status
from watchtower.runtime import api_calls, build_sources
from watchtower.sandbox.servers import MotoServer, free_port
from watchtower.sources import CloudWatchLogs, CloudWatchMetrics, LambdaConfig, PostgresSql

AWS_CHECKS = {
    "cloudfront_hit_rate",
    "dual_write",
    "dynamodb_throttling",
    "dynamodb_writes",
    "gallery_cache",
    "lambda_cold_starts",
    "upload_success",
}


def healthy(world: World, legacy_url: str | None = None) -> None:
    """What a healthy service with dual-write on reports in the window."""
    world.function({"ENABLE_DYNAMODB_DUAL_WRITE": "true"})
    world.requests("success", 1000)
    world.requests("success", 5, traffic="synthetic")
    world.latency(1000, {250: 200, 500: 30, 800: 5})
    world.dual_writes(success=1005)
    world.cloudfront(hit_rate=89.0, requests=20_000)
    world.metric("CacheEvents", 900, Event="hit")
    world.metric("CacheEvents", 100, Event="miss")
    for hour in range(1, 25):
        world.table_writes(12_000, at=world.ago(hour * 3600 - 30))
    world.table_writes(1100)
    world.logs(
        [
            (
                world.ago(200 - n),
                f"REPORT RequestId: r-{n}\tDuration: 9.5 ms\t"
                f"Billed Duration: 10 ms\tMemory Size: 512 MB\tMax Memory Used: 80 MB\t"
                + ("Init Duration: 420.3 ms\t" if n == 0 else ""),
            )
            for n in range(50)
        ]
    )
    if legacy_url is not None:
        insert_rows(legacy_url, world.ago(20), world.ago(40))


def counting_sources(settings: Settings) -> tuple[Sources, list[int]]:
    """The wired sources, with the queries of each GetMetricData call counted on the wire."""
    queries_per_call: list[int] = []

    def count(params: dict[str, Any], **_: Any) -> None:
        queries_per_call.append(len(params["MetricDataQueries"]))

    clients = {}
    for region in {settings.region, "us-east-1"}:
        clients[region] = aws.client("cloudwatch", settings, region=region)
        clients[region].meta.events.register(
            "provide-client-params.cloudwatch.GetMetricData", count
        )
    wired = build_sources(settings)
    return Sources(
        metrics=CloudWatchMetrics(clients),
        logs=wired.logs,
        functions=wired.functions,
        legacy_sql=wired.legacy_sql,
    ), queries_per_call


def test_every_check_is_ok_on_a_healthy_service(
    world: World, moto: MotoServer, legacy_url: str, now: datetime
) -> None:
    healthy(world, legacy_url)
    settings = settings_for(moto.url, legacy_database_url=legacy_url)

    results = run(settings, now=now)

    assert {n: r.status for n, r in results.items()} == dict.fromkeys(results, Status.OK), {
        n: r.reason for n, r in results.items()
    }
    assert set(results) == AWS_CHECKS | {"postgres_inserts"}
    assert {n: c.component for n, c in registry().items()} == {
        "cloudfront_hit_rate": "cloudfront",
        "dual_write": "legacy",
        "dynamodb_throttling": "dynamodb",
        "dynamodb_writes": "dynamodb",
        "gallery_cache": "cache",
        "lambda_cold_starts": "lambda",
        "postgres_inserts": "legacy",
        "upload_success": "upload_path",
    }


@pytest.mark.parametrize(("region", "calls"), [("us-east-1", 2), ("eu-west-1", 3)])
def test_one_cycle_costs_one_get_metric_data_call_per_region_and_window(
    world: World,
    moto: MotoServer,
    now: datetime,
    region: str,
    calls: int,
) -> None:
    """All checks' metrics in one call per (region, time range): the windows (5 min) and the
    dynamodb_writes baseline (24 h); CloudFront's metrics are in us-east-1 whatever the region."""
    healthy(world)
    settings = settings_for(moto.url, region=region)
    sources, queries_per_call = counting_sources(settings)

    run(settings, now=now, sources=sources)
    # GetFunctionConfiguration: dual_write's (postgres_inserts reads it too, when configured).
    assert api_calls(sources) == {
        "GetMetricData": calls,
        "FilterLogEvents": 1,
        "GetFunctionConfiguration": 1,
    }
    run(settings, now=now + timedelta(seconds=60), sources=sources)
    assert api_calls(sources)["GetMetricData"] == 2 * calls

    # Metrics several checks read (successful uploads) are requested once per cycle.
    declared = [
        q for c in registry().values() for q in c.metric_queries(settings, params_for(c, settings))
    ]
    assert sum(queries_per_call) == 2 * len(set(declared))
    assert len(set(declared)) == 28 < len(declared) == 31


def test_aws_down_makes_every_aws_check_unknown_and_postgres_still_counts(
    moto: MotoServer,
    legacy_url: str,
    now: datetime,
) -> None:
    insert_rows(legacy_url, now - timedelta(hours=1))
    closed = f"http://127.0.0.1:{free_port()}"
    settings = settings_for(closed, legacy_database_url=legacy_url)

    started = time.monotonic()
    results = run(settings, now=now)
    elapsed = time.monotonic() - started

    assert set(results) == AWS_CHECKS | {"postgres_inserts"}
    for name in AWS_CHECKS:
        assert results[name].status is Status.UNKNOWN, name
        assert "Could not connect to the endpoint URL" in results[name].reason, name
    # No rows is the answer that matters once dual-write is off, flag or no flag.
    legacy = results["postgres_inserts"]
    assert legacy.status is Status.OK
    assert legacy.figures["inserted_rows"] == 0 and legacy.figures["flag"] is None
    assert "the dual-write flag could not be read" in legacy.reason
    assert elapsed < 30


def test_aws_down_with_rows_inserted_leaves_them_unjudged(legacy_url: str, now: datetime) -> None:
    insert_rows(legacy_url, now - timedelta(seconds=30))
    settings = settings_for(f"http://127.0.0.1:{free_port()}", legacy_database_url=legacy_url)

    result = run(settings, "postgres_inserts", now=now)["postgres_inserts"]

    assert result.status is Status.UNKNOWN
    assert result.figures["inserted_rows"] == 1


def test_postgres_down_affects_postgres_inserts_only(
    world: World, moto: MotoServer, now: datetime
) -> None:
    healthy(world)
    down = f"postgresql://postgres@127.0.0.1:{free_port()}/gallery"
    settings = settings_for(moto.url, legacy_database_url=down)

    results = run(settings, now=now)

    assert results.pop("postgres_inserts").status is Status.UNKNOWN
    assert {n: r.status for n, r in results.items()} == dict.fromkeys(AWS_CHECKS, Status.OK)


def test_adapters_are_the_ones_wiring_builds(moto: MotoServer) -> None:
    sources = build_sources(settings_for(moto.url, legacy_database_url="postgresql://x/y"))
    assert isinstance(sources.metrics, CloudWatchMetrics)
    assert isinstance(sources.logs, CloudWatchLogs)
    assert isinstance(sources.functions, LambdaConfig)
    assert isinstance(sources.legacy_sql, PostgresSql)


def test_every_threshold_can_be_set_from_the_environment() -> None:
    for name, check in registry().items():
        for key in check.defaults:
            variable = f"WATCHTOWER_CHECK_{name.upper()}_{key.upper()}"
            settings = Settings.from_env({variable: "7"}, checks=tunables())
            assert params_for(check, settings)[key] == 7, variable
