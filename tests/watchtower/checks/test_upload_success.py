from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from tests.watchtower.checks.conftest import World, run
from watchtower.checks.upload_success import (
    OBJECTIVE_MS,
    UploadSuccess,
    judge,
    judging,
    p95_upper_bound,
)
from watchtower.config import Settings
from watchtower.model import Status

PARAMS = dict(UploadSuccess.defaults)


def figures(
    successes: float,
    server_errors: float = 0,
    *,
    slow: float | None = 0.01,
    client_errors: float = 0,
    bound: float | None = 500,
) -> dict[str, float | None]:
    uploads = successes + server_errors
    return {
        "uploads": uploads,
        "server_errors": server_errors,
        "client_errors": client_errors,
        "success_ratio": successes / uploads if uploads else None,
        "latency_samples": uploads,
        "slow_ratio": slow,
        "p95_upper_bound_ms": bound,
    }


@pytest.mark.parametrize(
    ("over", "bound"),
    [
        ({250: 500, 500: 50, 800: 10, 1000: 0}, 500.0),  # 50% over 250, 5% over 500
        ({250: 40, 500: 0, 800: 0, 1000: 0}, 250.0),
        (
            {250: 900, 500: 600, 800: 300, 1000: 51},
            None,
        ),  # 5.1% over 1 s: P95 above every threshold
        ({250: 900, 500: 600, 800: 300, 1000: 50}, 1000.0),
    ],
)
def test_p95_upper_bound_from_counts(over: dict[int, float], bound: float | None) -> None:
    assert p95_upper_bound(over, 1000) == bound


def test_p95_upper_bound_without_samples() -> None:
    assert p95_upper_bound({250: 0, 500: 0, 800: 0, 1000: 0}, None) is None


def test_judge_healthy_uploads_are_ok() -> None:
    assert judge(figures(1000, 0, slow=0.02, client_errors=4), PARAMS) == (
        Status.OK,
        "100.00% of 1000 uploads succeeded (0 server errors) in 5 min, 2.0% slower "
        "than 800 ms (P95 at most 500 ms); 4 rejected as client errors",
    )


def test_judge_client_errors_do_not_count_against_success() -> None:
    assert judge(figures(100, 0, client_errors=900), PARAMS)[0] is Status.OK


def test_judge_success_below_the_minimum_is_critical() -> None:
    status, reason = judge(figures(998, 2), PARAMS)
    assert status is Status.CRITICAL
    assert reason.endswith(
        "(2 server errors) in 5 min, 1.0% slower than 800 ms (P95 at most "
        "500 ms): success below 99.9%"
    )


@pytest.mark.parametrize(
    ("slow", "status"),
    [
        (0.05, Status.OK),
        (0.051, Status.WARNING),
        (0.20, Status.WARNING),
        (0.21, Status.CRITICAL),
    ],
)
def test_judge_share_slower_than_800_ms(slow: float, status: Status) -> None:
    assert judge(figures(1000, slow=slow, bound=1000), PARAMS)[0] is status


def test_judge_too_few_uploads_are_not_judged_by_ratio() -> None:
    assert judge(figures(5, slow=1.0, bound=None), PARAMS)[0] is Status.OK
    status, reason = judge(figures(4, 1), PARAMS)
    assert status is Status.WARNING
    assert reason == (
        "1 failed with a server error: 5 uploads in 5 min, too few to judge the "
        "ratios (at least 10)"
    )


def test_judge_uploads_without_latency_samples_are_unknown() -> None:
    assert judge(figures(100, slow=None, bound=None), PARAMS)[0] is Status.UNKNOWN


def test_healthy_user_uploads_are_ok(world: World, settings: Settings, now: datetime) -> None:
    world.requests("success", 2000)
    world.requests("client_error", 30)  # e.g. 415: the client's fault
    world.latency(2030, {250: 600, 500: 100, 800: 40, 1000: 10})
    # Probe traffic is synthetic and left out, however badly it fares.
    world.requests("server_error", 50, traffic="synthetic")
    world.latency(50, {250: 50, 500: 50, 800: 50, 1000: 50}, traffic="synthetic")

    result = run(settings, "upload_success", now=now)["upload_success"]

    assert result.status is Status.OK, result.reason
    assert result.figures == {
        "uploads": 2000,
        "server_errors": 0,
        "client_errors": 30,
        "success_ratio": 1.0,
        "latency_samples": 2030,
        "slow_ratio": pytest.approx(40 / 2030),
        "p95_upper_bound_ms": 500.0,
    }


def test_slow_uploads_are_a_warning(world: World, settings: Settings, now: datetime) -> None:
    world.requests("success", 1000)
    world.latency(1000, {250: 900, 500: 400, 800: 80, 1000: 30})

    result = run(settings, "upload_success", now=now)["upload_success"]

    assert result.status is Status.WARNING, result.reason
    assert result.figures["slow_ratio"] == pytest.approx(0.08)
    assert result.figures["p95_upper_bound_ms"] == 1000.0
    assert "8.0% slower than 800 ms" in result.reason


def test_failing_uploads_are_critical(world: World, settings: Settings, now: datetime) -> None:
    world.requests("success", 990)
    world.requests("server_error", 10)
    world.latency(1000, {250: 100, 500: 10})

    result = run(settings, "upload_success", now=now)["upload_success"]

    assert result.status is Status.CRITICAL, result.reason
    assert result.figures["success_ratio"] == pytest.approx(0.99)
    assert "success below 99.9%" in result.reason


def test_no_uploads_in_the_window_is_unknown(
    world: World, settings: Settings, now: datetime
) -> None:
    world.requests("success", 500, at=world.ago(1200))
    world.requests("success", 500, traffic="synthetic")

    result = run(settings, "upload_success", now=now)["upload_success"]

    assert result.status is Status.UNKNOWN
    assert result.reason == "no uploads recorded in 5 min"


# -- the objective: one setting (WATCHTOWER_CUTOVER_MAX_P95_MS), handed in by the root ----------


def test_judge_at_the_objective_it_is_given() -> None:
    params = {**PARAMS, "objective_ms": 1000.0}
    status, reason = judge(figures(1000, slow=0.08, bound=None), params)
    assert status is Status.WARNING
    assert "8.0% slower than 1000 ms" in reason and "P95 over 1000 ms" in reason
    assert "800" not in reason


def test_the_check_judges_the_cutover_objective(
    world: World, settings: Settings, now: datetime
) -> None:
    # 8% of uploads over 800 ms but only 3% over 1000 ms: a warning at 800, fine at 1000.
    world.requests("success", 1000)
    world.latency(1000, {250: 900, 500: 400, 800: 80, 1000: 30})

    at_800 = run(judging(settings, 800), "upload_success", now=now)["upload_success"]
    at_1000 = run(judging(settings, 1000), "upload_success", now=now)["upload_success"]

    assert at_800.status is Status.WARNING and at_800.thresholds["objective_ms"] == 800
    # The default is exported too, with no override: the probe's alert reads it.
    assert (
        run(settings, "upload_success", now=now)["upload_success"].thresholds["objective_ms"] == 800
    )
    assert at_1000.status is Status.OK, at_1000.reason
    assert at_1000.figures["slow_ratio"] == pytest.approx(0.03)
    assert "3.0% slower than 1000 ms" in at_1000.reason
    assert at_1000.thresholds["objective_ms"] == 1000  # what the alert and the page see


def test_an_objective_between_the_usual_thresholds_reads_its_own_metric(
    world: World, settings: Settings, now: datetime
) -> None:
    # The image core publishes 847 (IMAGE_LATENCY_THRESHOLDS_MS=250,500,847,1000), not 800.
    world.requests("success", 1000)
    world.latency(1000, {250: 900, 500: 400, 847: 45, 1000: 20}, thresholds=(250, 500, 847, 1000))

    result = run(judging(settings, 847), "upload_success", now=now)["upload_success"]

    assert result.status is Status.OK, result.reason
    assert result.figures["slow_ratio"] == pytest.approx(0.045)
    assert result.figures["p95_upper_bound_ms"] == 847.0  # 800, unpublished, is left out
    assert "4.5% slower than 847 ms" in result.reason


def test_an_objective_the_image_core_does_not_publish_is_unknown_not_zero(
    world: World, settings: Settings, now: datetime
) -> None:
    # Watchtower set to 900 while the image core still publishes the default four: every upload
    # is slow, yet "0% over 900 ms" must not pass.
    world.requests("success", 1000)
    world.latency(1000, {250: 1000, 500: 1000, 800: 1000, 1000: 1000})

    result = run(judging(settings, 900), "upload_success", now=now)["upload_success"]

    assert result.status is Status.UNKNOWN
    assert "LatencyOver900ms is not published" in result.reason
    assert "IMAGE_LATENCY_THRESHOLDS_MS" in result.reason
    assert result.figures["slow_ratio"] is None


def test_an_unpublished_objective_does_not_hide_failing_uploads(
    world: World, settings: Settings, now: datetime
) -> None:
    world.requests("success", 990)
    world.requests("server_error", 10)
    world.latency(1000, {250: 100})

    result = run(judging(settings, 900), "upload_success", now=now)["upload_success"]

    assert result.status is Status.CRITICAL, result.reason
    assert "success below 99.9%" in result.reason
    assert "LatencyOver900ms is not published" in result.reason


def test_the_root_hands_the_cutover_objective_to_the_check() -> None:
    from watchtower.checks import tunables
    from watchtower.config import Settings as WatchtowerSettings
    from watchtower.cutover.config import CutoverSettings
    from watchtower.errors import ConfigError

    cutover = CutoverSettings.from_env({"WATCHTOWER_CUTOVER_MAX_P95_MS": "1000"})
    handed = judging(WatchtowerSettings(), cutover.max_p95_ms)
    assert handed.check_overrides["upload_success"]["objective_ms"] == 1000
    assert CutoverSettings().max_p95_ms == OBJECTIVE_MS  # one default
    # At the default nothing is handed (the check's own default is the same number).
    plain = WatchtowerSettings(check_overrides={"upload_success": {"window_seconds": 120}})
    assert judging(plain, CutoverSettings().max_p95_ms) is plain
    # No second variable for it: the check's own catalog refuses one.
    with pytest.raises(ConfigError, match="objective_ms"):
        WatchtowerSettings.from_env(
            {"WATCHTOWER_CHECK_UPLOAD_SUCCESS_OBJECTIVE_MS": "900"}, checks=tunables()
        )


def test_a_watchtower_built_from_the_environment_judges_the_cutover_objective(
    tmp_path: Path,
) -> None:
    from watchtower.runtime import from_environ

    wt = from_environ(
        {
            "WATCHTOWER_DATABASE_URL": f"sqlite:///{tmp_path / 'h.sqlite'}",
            "WATCHTOWER_CUTOVER_MAX_P95_MS": "1000",
        }
    )
    try:
        assert wt.settings.check_overrides["upload_success"]["objective_ms"] == 1000
        assert wt.cutover.cutover.max_p95_ms == 1000
    finally:
        wt.close()
