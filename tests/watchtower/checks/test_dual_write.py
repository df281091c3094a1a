from __future__ import annotations

from datetime import datetime

import pytest

from tests.watchtower.checks.conftest import World, run, settings_for
from watchtower.checks.dual_write import flag_value, judge
from watchtower.config import Settings
from watchtower.model import Status
from watchtower.sandbox.servers import MotoServer

PARAMS = {"window_seconds": 300, "min_success_ratio": 0.999}


def figures(attempts: float, failures: float = 0, uploads: float = 0) -> dict[str, float | None]:
    return {
        "attempts": attempts,
        "failures": failures,
        "uploads": uploads,
        "success_ratio": (attempts - failures) / attempts if attempts else None,
    }


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("on", True),
        ("false", False),
        ("0", False),
        ("", False),
        ("no", False),
        (None, False),  # unset: the image core's default, off
        ("maybe", None),
    ],
)
def test_flag_is_read_as_the_image_core_reads_it(raw: str | None, expected: bool | None) -> None:
    env = {} if raw is None else {"ENABLE_DYNAMODB_DUAL_WRITE": raw}
    value, note = flag_value(env, "image-api")
    assert value is expected
    assert "ENABLE_DYNAMODB_DUAL_WRITE" in note


def test_judge_flag_on_and_every_dual_write_succeeds_is_ok() -> None:
    status, reason = judge(True, figures(1000, 0, 1000), PARAMS)
    assert status is Status.OK
    assert "100.00% of 1000 dual-writes succeeded in 5 min" in reason


def test_judge_flag_on_and_success_below_the_minimum_is_critical() -> None:
    status, reason = judge(True, figures(1000, 2, 1000), PARAMS)
    assert status is Status.CRITICAL
    assert reason == "dual-write success 99.80% (2 of 1000 failed) in 5 min, not above 99.9%"


def test_judge_flag_on_and_exactly_the_minimum_is_critical_like_the_gate() -> None:
    """One rule (Story 6.1 AC 2, "> 99.9%"): exactly 99.9% fails the check as it fails the gate."""
    status, reason = judge(True, figures(1000, 1, 1000), PARAMS)
    assert status is Status.CRITICAL and "not above 99.9%" in reason
    assert judge(True, figures(10000, 9, 10000), PARAMS)[0] is Status.OK


def test_judge_flag_off_and_dual_writes_attempted_is_critical() -> None:
    status, reason = judge(False, figures(3), PARAMS, flag_note="ENABLE_DYNAMODB_DUAL_WRITE=false")
    assert status is Status.CRITICAL
    assert reason.startswith("3 dual-writes attempted in 5 min although dual-write is off")


def test_judge_flag_off_and_no_attempts_is_ok() -> None:
    assert judge(False, figures(0, 0, 50), PARAMS)[0] is Status.OK


def test_judge_flag_on_and_uploads_without_dual_writes_is_a_warning() -> None:
    status, reason = judge(True, figures(0, 0, 40), PARAMS)
    assert status is Status.WARNING
    assert "none of the 40 successful uploads" in reason


def test_judge_flag_on_and_no_uploads_is_ok() -> None:
    assert judge(True, figures(0), PARAMS)[0] is Status.OK


def test_judge_unreadable_flag_is_unknown() -> None:
    status, reason = judge(None, figures(10), PARAMS, flag_note="access denied")
    assert status is Status.UNKNOWN
    assert "could not be read (access denied)" in reason


def test_flag_on_and_dual_writes_succeeding_is_ok(
    world: World, settings: Settings, now: datetime
) -> None:
    world.function({"ENABLE_DYNAMODB_DUAL_WRITE": "true"})
    world.dual_writes(success=500)
    world.requests("success", 480)
    world.requests("success", 20, traffic="synthetic")

    result = run(settings, "dual_write", now=now)["dual_write"]

    assert result.status is Status.OK, result.reason
    assert result.figures == {
        "flag": 1.0,
        "attempts": 500,
        "failures": 0,
        "success_ratio": 1.0,
        "uploads": 500,
    }
    assert result.thresholds == {"min_success_ratio": 0.999}


def test_flag_on_and_uploads_not_dual_written_is_a_warning(
    world: World, settings: Settings, now: datetime
) -> None:
    world.function({"ENABLE_DYNAMODB_DUAL_WRITE": "true"})
    world.requests("success", 25)
    world.dual_writes(success=100, at=world.ago(900))  # before the window: not counted

    result = run(settings, "dual_write", now=now)["dual_write"]

    assert result.status is Status.WARNING, result.reason
    assert result.figures["attempts"] == 0


def test_failing_dual_writes_are_critical(world: World, settings: Settings, now: datetime) -> None:
    world.function({"ENABLE_DYNAMODB_DUAL_WRITE": "true"})
    world.dual_writes(success=990, failure=10)

    result = run(settings, "dual_write", now=now)["dual_write"]

    assert result.status is Status.CRITICAL
    assert result.figures["success_ratio"] == pytest.approx(0.99)
    assert "10 of 1000 failed" in result.reason


def test_dual_writes_after_the_flag_is_turned_off_are_critical(
    world: World, settings: Settings, now: datetime
) -> None:
    world.function({"ENABLE_DYNAMODB_DUAL_WRITE": "true"})
    world.set_environment({"ENABLE_DYNAMODB_DUAL_WRITE": "false"})
    world.dual_writes(success=7)

    result = run(settings, "dual_write", now=now)["dual_write"]

    assert result.status is Status.CRITICAL
    assert result.figures["flag"] == 0.0
    assert "7 dual-writes attempted" in result.reason


def test_missing_function_is_unknown(world: World, settings: Settings, now: datetime) -> None:
    world.dual_writes(success=7)

    result = run(settings, "dual_write", now=now)["dual_write"]

    assert result.status is Status.UNKNOWN
    assert "Lambda function 'image-api' configuration could not be read" in result.reason
    assert result.figures["flag"] is None


# -- through an alias (WATCHTOWER_LAMBDA_ALIAS): what the alias serves, not $LATEST --------------


def _publish_behind_alias(world: World, environment: dict[str, str], alias: str = "live") -> str:
    world.function(environment)
    lam = world._client("lambda")
    version = str(lam.publish_version(FunctionName="image-api")["Version"])
    lam.create_alias(FunctionName="image-api", Name=alias, FunctionVersion=version)
    return version


def test_writing_latest_alone_is_reported_as_the_alias_still_serving_the_flag_on(
    world: World, moto: MotoServer, now: datetime
) -> None:
    version = _publish_behind_alias(world, {"ENABLE_DYNAMODB_DUAL_WRITE": "true"})
    world.set_environment({"ENABLE_DYNAMODB_DUAL_WRITE": "false"})  # $LATEST only
    world.dual_writes(success=10)
    world.requests("success", 10)
    settings = settings_for(moto.url, lambda_alias="live")

    result = run(settings, "dual_write", now=now)["dual_write"]

    assert result.figures["flag"] == 1.0, result.reason
    assert f"alias 'live' of function 'image-api' serves version {version}" in result.reason
    assert "the alias still serves the flag on" in result.reason
    # Unqualified, the same function reads off: $LATEST is what it serves.
    unqualified = run(settings_for(moto.url), "dual_write", now=now)["dual_write"]
    assert unqualified.figures["flag"] == 0.0


def test_a_weighted_alias_names_both_versions_with_their_weights(
    world: World, moto: MotoServer, now: datetime
) -> None:
    first = _publish_behind_alias(world, {"ENABLE_DYNAMODB_DUAL_WRITE": "true"})
    world.set_environment({"ENABLE_DYNAMODB_DUAL_WRITE": "false"})
    lam = world._client("lambda")
    second = str(lam.publish_version(FunctionName="image-api")["Version"])
    lam.update_alias(
        FunctionName="image-api",
        Name="live",
        RoutingConfig={"AdditionalVersionWeights": {second: 0.25}},
    )

    result = run(settings_for(moto.url, lambda_alias="live"), "dual_write", now=now)["dual_write"]

    assert result.figures["flag"] == 1.0  # a quarter of requests still dual-write
    assert (
        f"version {first} (75%): ENABLE_DYNAMODB_DUAL_WRITE=true and "
        f"version {second} (25%): ENABLE_DYNAMODB_DUAL_WRITE=false"
    ) in result.reason


def test_a_missing_alias_is_unknown_and_named(
    world: World, moto: MotoServer, now: datetime
) -> None:
    world.function({"ENABLE_DYNAMODB_DUAL_WRITE": "false"})
    result = run(settings_for(moto.url, lambda_alias="prod"), "dual_write", now=now)["dual_write"]
    assert result.status is Status.UNKNOWN
    assert "alias 'prod' of Lambda function 'image-api' could not be read" in result.reason
