"""The simulated telemetry, put into the moto server, read by the real checks: each scenario's
profile gives the check its result, and healthy is green."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from watchtower.checks import registry
from watchtower.checks.runner import run_checks
from watchtower.config import Settings
from watchtower.model import Result, Status
from watchtower.runtime import build_sources
from watchtower.sandbox import resources
from watchtower.sandbox.gateway import Invocation, Invocations
from watchtower.sandbox.scenarios import SCENARIOS
from watchtower.sandbox.servers import MotoServer
from watchtower.sandbox.telemetry import HEALTHY, Profile, TelemetrySimulator

SIMULATED_CHECKS = ("dynamodb_throttling", "lambda_cold_starts", "cloudfront_hit_rate")


def play(moto: MotoServer, profile: Profile, *, fmt: str = "text") -> dict[str, Result]:
    """A minute of simulated telemetry over steady requests, then one cycle of the checks."""
    made = resources.create(
        moto.url, function="image-api", table="images", bucket="images", dual_write=True
    )
    invocations = Invocations()
    cloudwatch, logs = resources.client("cloudwatch", moto.url), resources.client("logs", moto.url)
    simulator = TelemetrySimulator(
        cloudwatch=cloudwatch,
        logs=logs,
        invocations=invocations,
        profile=lambda: profile,
        table="images",
        distribution_id=made.distribution_id,
        log_group=made.log_group,
        log_format=fmt,  # type: ignore[arg-type]
        interval=5.0,
        rng=random.Random(42),
    )
    start = datetime.now(UTC) - timedelta(seconds=60)
    for tick in range(12):
        at = start + timedelta(seconds=5 * (tick + 1))
        for n in range(8):
            invocations.add(
                Invocation(
                    request_id=f"{tick}-{n}",
                    ended_at=(at - timedelta(seconds=4 - n * 0.5)).timestamp(),
                    duration_ms=40.0 + n,
                    generation=1,
                    method="POST" if n == 0 else "GET",
                    path="/images",
                    status=201 if n == 0 else 200,
                )
            )
        simulator.tick(at.timestamp())
    cloudwatch.close()
    logs.close()
    settings = Settings(
        aws_endpoint_url=moto.url,
        cloudfront_distribution_id=made.distribution_id,
        check_overrides={name: {"window_seconds": 60} for name in SIMULATED_CHECKS},
    )
    checks = registry()
    results = run_checks(
        [checks[name] for name in (*SIMULATED_CHECKS, "dynamodb_writes")],
        settings=settings,
        sources=build_sources(settings),
        now=start + timedelta(seconds=61),
    )
    return {r.name: r for r in results}


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_healthy_telemetry_is_green(moto: MotoServer, fmt: str) -> None:
    results = play(moto, HEALTHY, fmt=fmt)
    assert {name: r.status for name, r in results.items()} == {
        "dynamodb_throttling": Status.OK,
        "lambda_cold_starts": Status.OK,
        "cloudfront_hit_rate": Status.OK,
        "dynamodb_writes": Status.OK,
    }, {name: r.reason for name, r in results.items()}
    assert results["lambda_cold_starts"].figures["invocations"] == 96
    assert results["lambda_cold_starts"].figures["cold_starts"] == 1  # the new process's first
    assert results["dynamodb_writes"].figures["write_units"] == 12 * 5.0


@pytest.mark.parametrize("name", ["throttling", "cold-starts", "cache-misses"])
def test_each_simulated_scenario_turns_its_check_red(moto: MotoServer, name: str) -> None:
    scenario = SCENARIOS[name]
    results = play(moto, scenario.telemetry)
    for check, status in scenario.turns_red:
        assert results[check].status is status, results[check].reason
    others = {c for c in SIMULATED_CHECKS if c not in dict(scenario.turns_red)}
    assert all(results[c].status is Status.OK for c in others)
