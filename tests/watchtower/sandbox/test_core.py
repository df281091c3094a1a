"""The sandbox's deciding parts, with no server: flag following, scenario plans, simulated
telemetry as the checks parse it, traffic planning, and the demo's settings."""

from __future__ import annotations

import json
import random
import secrets
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from watchtower.checks import registry, tunables
from watchtower.checks.lambda_cold_starts import parse_report, summarise
from watchtower.config import Settings
from watchtower.model import Status
from watchtower.probes import registry as probe_registry
from watchtower.sandbox import demo
from watchtower.sandbox.flag_follower import decide, parse_flag
from watchtower.sandbox.gateway import Invocation
from watchtower.sandbox.issuer import LocalIssuer
from watchtower.sandbox.scenarios import HEALTHY_SCENARIO, SCENARIOS, plan
from watchtower.sandbox.telemetry import (
    DELETE_WRITE_UNITS,
    HEALTHY,
    UPLOAD_WRITE_UNITS,
    Containers,
    report_line,
    simulate,
    write_units,
)
from watchtower.sandbox.traffic import MAX_GALLERY, USERS, next_action, pause

NOW = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)


def invocation(
    n: int, *, generation: int = 1, method: str = "GET", path: str = "/images", status: int = 200
) -> Invocation:
    return Invocation(
        request_id=f"req-{n}",
        ended_at=NOW.timestamp() - 10 + n / 10,
        duration_ms=12.345 + n,
        generation=generation,
        method=method,
        path=path,
        status=status,
    )


# -- the flag follower ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "value"),
    [(None, False), ("true", True), ("TRUE ", True), ("1", True), ("off", False), ("", False)],
)
def test_the_flag_reads_as_the_image_core_reads_it(raw: str | None, value: bool) -> None:
    assert parse_flag(raw) is value


def test_a_flag_the_image_core_would_refuse_reads_as_none() -> None:
    assert parse_flag("maybe") is None


def test_flipping_the_flag_off_restarts_without_dual_write() -> None:
    decision = decide(
        {"ENABLE_DYNAMODB_DUAL_WRITE": "false"}, running=True, held=False, postgres=True
    )
    assert decision.restart and decision.dual_write is False


def test_flipping_it_back_on_restarts_with_dual_write() -> None:
    decision = decide(
        {"ENABLE_DYNAMODB_DUAL_WRITE": "true"}, running=False, held=False, postgres=True
    )
    assert decision.restart and decision.dual_write is True


def test_an_unset_flag_is_off() -> None:
    assert decide({}, running=True, held=False, postgres=True).dual_write is False


@pytest.mark.parametrize(
    ("environment", "running", "held", "postgres", "because"),
    [
        ({"ENABLE_DYNAMODB_DUAL_WRITE": "true"}, True, False, True, "in both"),
        ({"ENABLE_DYNAMODB_DUAL_WRITE": "false"}, True, True, True, "held"),
        ({"ENABLE_DYNAMODB_DUAL_WRITE": "maybe"}, True, False, True, "not a boolean"),
        ({"ENABLE_DYNAMODB_DUAL_WRITE": "true"}, False, False, False, "needs PostgreSQL"),
    ],
)
def test_no_restart(
    environment: dict[str, str], running: bool, held: bool, postgres: bool, because: str
) -> None:
    decision = decide(environment, running=running, held=held, postgres=postgres)
    assert not decision.restart
    assert because in decision.reason


# -- scenarios --------------------------------------------------------------------------------


def test_every_scenario_turns_a_real_result_red() -> None:
    names = set(registry()) | set(probe_registry())
    assert set(SCENARIOS) == {
        "healthy",
        "throttling",
        "cold-starts",
        "cache-misses",
        "legacy-writes",
        "upload-errors",
    }
    for scenario in SCENARIOS.values():
        assert {name for name, _ in scenario.turns_red} <= names
        assert all(status is not Status.OK for _, status in scenario.turns_red)
        assert bool(scenario.turns_red) is (scenario is not HEALTHY_SCENARIO)


def test_simulated_scenarios_change_telemetry_only() -> None:
    for name in ("throttling", "cold-starts", "cache-misses"):
        assert plan(HEALTHY_SCENARIO, SCENARIOS[name]) == []
        assert SCENARIOS[name].telemetry != HEALTHY


def test_legacy_writes_holds_the_process_before_the_flag_goes_off() -> None:
    steps = plan(HEALTHY_SCENARIO, SCENARIOS["legacy-writes"])
    assert steps == ["hold_image_api", "dual_write_on", "flag_off"]
    assert plan(SCENARIOS["legacy-writes"], HEALTHY_SCENARIO) == [
        "restore_flag",
        "release_image_api",
    ]


def test_switching_between_scenarios_undoes_the_first() -> None:
    assert plan(SCENARIOS["legacy-writes"], SCENARIOS["upload-errors"]) == [
        "restore_flag",
        "release_image_api",
        "break_bucket",
    ]
    assert plan(SCENARIOS["upload-errors"], SCENARIOS["cold-starts"]) == ["restore_bucket"]
    assert plan(SCENARIOS["upload-errors"], SCENARIOS["upload-errors"]) == []


# -- simulated telemetry ----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["text", "json"])
@pytest.mark.parametrize("init_ms", [None, 412.5])
def test_report_lines_parse_as_the_check_parses_them(fmt: Any, init_ms: float | None) -> None:
    line = report_line(invocation(3), init_ms=init_ms, fmt=fmt, max_memory_mb=170)
    report = parse_report(line)
    assert report is not None
    assert report.request_id == "req-3"
    assert report.duration_ms == pytest.approx(15.35)
    assert report.init_duration_ms == init_ms


def test_text_report_lines_look_like_lambdas() -> None:
    line = report_line(invocation(0), init_ms=250.0, fmt="text", max_memory_mb=180)
    assert line == (
        "REPORT RequestId: req-0\tDuration: 12.35 ms\tBilled Duration: 13 ms\t"
        "Memory Size: 1024 MB\tMax Memory Used: 180 MB\tInit Duration: 250.00 ms\t"
    )
    event = json.loads(report_line(invocation(0), init_ms=None, fmt="json", max_memory_mb=180))
    assert event["type"] == "platform.report"
    assert "initDurationMs" not in event["record"]["metrics"]


def test_a_new_process_starts_cold_once_when_healthy() -> None:
    containers, rng = Containers(), random.Random(1)
    placed = [containers.place(invocation(n), HEALTHY, rng, NOW) for n in range(50)]
    assert [init is not None for _, init in placed] == [True] + [False] * 49
    assert len({stream for stream, _ in placed}) == 1
    stream, init = containers.place(invocation(50, generation=2), HEALTHY, rng, NOW)
    assert init is not None and stream != placed[0][0]
    # A request the old process still answers while it drains is not a new cold start.
    assert containers.place(invocation(51, generation=1), HEALTHY, rng, NOW)[1] is None


def test_the_cold_starts_profile_makes_many_slow_cold_starts() -> None:
    profile = SCENARIOS["cold-starts"].telemetry
    tick = simulate(
        profile,
        [invocation(n) for n in range(100)],
        now=NOW,
        seconds=5,
        table="images",
        distribution_id="E1",
        containers=Containers(),
        fmt="text",
        rng=random.Random(7),
    )
    lines = [e["message"] for events in tick.log_events.values() for e in events]
    figures = summarise(lines)
    assert figures["invocations"] == 100
    assert figures["cold_start_ratio"] is not None and figures["cold_start_ratio"] > 0.25
    assert figures["init_p95_ms"] is not None and figures["init_p95_ms"] >= 3000
    for events in tick.log_events.values():
        assert [e["timestamp"] for e in events] == sorted(e["timestamp"] for e in events)


def test_write_units_follow_successful_uploads_and_deletes() -> None:
    invocations = [
        invocation(1, method="POST", status=201),
        invocation(2, method="POST", status=200),  # an idempotent replay writes nothing
        invocation(3, method="POST", status=503),
        invocation(4, method="DELETE", path="/images/abc", status=204),
        invocation(5, method="GET", path="/images/abc", status=200),
    ]
    assert write_units(invocations) == UPLOAD_WRITE_UNITS + DELETE_WRITE_UNITS


def test_healthy_metrics_have_no_throttling_and_no_writes_without_writes() -> None:
    tick = simulate(
        HEALTHY,
        [invocation(1)],
        now=NOW,
        seconds=5,
        table="images",
        distribution_id="E1",
        containers=Containers(),
        fmt="text",
        rng=random.Random(3),
    )
    assert tick.metric_data["AWS/DynamoDB"] == []
    hit, requests = tick.metric_data["AWS/CloudFront"]
    assert hit["MetricName"] == "CacheHitRate" and 91 <= hit["Value"] <= 97
    assert hit["Unit"] == "Percent" and hit["Timestamp"] == NOW
    assert {"Name": "Region", "Value": "Global"} in hit["Dimensions"]
    assert requests["MetricName"] == "Requests" and requests["Value"] > 0


def test_the_throttling_profile_throttles_the_table() -> None:
    tick = simulate(
        SCENARIOS["throttling"].telemetry,
        [invocation(1, method="POST", status=201)],
        now=NOW,
        seconds=10,
        table="images",
        distribution_id="E1",
        containers=Containers(),
        fmt="text",
        rng=random.Random(3),
    )
    names = [d["MetricName"] for d in tick.metric_data["AWS/DynamoDB"]]
    assert names.count("ThrottledRequests") == 3
    assert {"ConsumedWriteCapacityUnits", "WriteThrottleEvents", "ReadThrottleEvents"} <= set(names)
    assert tick.throttled == 60


# -- traffic ----------------------------------------------------------------------------------


def test_users_with_no_images_upload_first() -> None:
    rng = random.Random(5)
    for _ in range(50):
        assert next_action({}, rng).kind in ("upload", "not_an_image")


def test_a_full_gallery_is_trimmed() -> None:
    full = {user: [f"{user}-{n}" for n in range(MAX_GALLERY)] for user in USERS}
    action = next_action(full, random.Random(2))
    assert action.kind == "delete" and action.image_id in full[action.user]


def test_a_mix_of_requests_at_a_bounded_rate() -> None:
    rng = random.Random(11)
    galleries = {user: ["a", "b"] for user in USERS}
    kinds = {next_action(galleries, rng).kind for _ in range(200)}
    assert {"upload", "list", "get", "delete"} <= kinds
    pauses = [pause(1.0, rng) for _ in range(200)]
    assert min(pauses) >= 0.5 and max(pauses) <= 1.5


# -- the demo's settings ----------------------------------------------------------------------


ALICE = secrets.token_urlsafe(40)  # start-up refuses weak tokens
TOK = secrets.token_urlsafe(40)


def test_demo_settings_point_at_the_sandbox_whatever_the_shell_says(tmp_path: Path) -> None:
    stack: Any = SimpleNamespace(
        moto=SimpleNamespace(url="http://127.0.0.1:5001"),
        redis=SimpleNamespace(url="redis://127.0.0.1:6380/0"),
        postgres=SimpleNamespace(url="postgresql://postgres@127.0.0.1:5433/gallery"),
        region="us-east-1",
        image_api_url="http://127.0.0.1:8001",
        table="images",
        bucket="images",
        legacy_table="gallery_images",
        resources=SimpleNamespace(
            function="image-api",
            alias="live",
            log_group="/aws/lambda/image-api",
            distribution_id="E2DEMO",
        ),
        issuer=LocalIssuer(tmp_path / "issuer.key"),
    )
    shell = {
        "WATCHTOWER_DATABASE_URL": "postgresql://prod.example/watchtower",
        "AWS_ENDPOINT_URL": "https://example.com",
        "WATCHTOWER_PROBE_INTERVAL": "7",
        "WATCHTOWER_CHECK_UPLOAD_SUCCESS_WINDOW_SECONDS": "120",
        "WATCHTOWER_USERS": f"alice:admin:{ALICE}",
        "WATCHTOWER_PROBE_TOKEN": "a-production-token",
        "WATCHTOWER_LAMBDA_ALIAS": "prod",
        "WATCHTOWER_LEGACY_TABLE": "reporting.gallery_images",
    }
    env = demo.settings_environment(stack, port=8123, token=TOK, workdir=tmp_path, environ=shell)
    settings = Settings.from_env(env, checks=tunables())
    assert settings.sandbox is True
    assert settings.aws_endpoint_url == "http://127.0.0.1:5001"
    assert settings.database_url == f"sqlite:///{tmp_path / 'watchtower.sqlite'}"
    assert settings.image_api_url == "http://127.0.0.1:8001"
    assert settings.cloudfront_distribution_id == "E2DEMO"
    # Checks and runbooks act on the sandbox's alias and legacy table, not the shell's.
    assert settings.lambda_alias == "live"
    assert settings.legacy_table == "gallery_images"
    assert settings.legacy_database_url == "postgresql://postgres@127.0.0.1:5433/gallery"
    assert settings.public_url == "http://127.0.0.1:8123"
    assert settings.probe_interval == 7  # the shell's pace wins
    # The probe signs in with a token of the sandbox's issuer, never the shell's.
    assert settings.probe_token is None
    assert settings.probe_token_command == stack.issuer.command("watchtower-probe")
    assert settings.check_interval == 15
    assert settings.check_overrides["upload_success"]["window_seconds"] == 120
    assert settings.check_overrides["lambda_cold_starts"]["window_seconds"] == 60
    assert settings.users == (
        ("alice", "admin", ALICE),
        ("demo-operator", "operator", TOK),
    )
