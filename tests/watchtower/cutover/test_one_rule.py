"""Issue 13, item 7: one rule for the dual-write success threshold, shared by the live
`dual_write` check, the pre-flight gate and the DualWriteFailing alert (which reads the check's
status). Exactly 99.9% fails all of them: Story 6.1 AC 2 says "> 99.9%"."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.watchtower.checks.conftest import World, run
from tests.watchtower.cutover.conftest import Images, Legacy
from tests.watchtower.cutover.test_preflight import healthy_week, same_images
from watchtower.checks import registry
from watchtower.config import Settings
from watchtower.cutover.config import CutoverSettings
from watchtower.cutover.service import CutoverService
from watchtower.errors import ConfigError
from watchtower.model import Status

CHECKS = {name: set(c.defaults) for name, c in registry().items()}


def test_exactly_the_minimum_fails_the_check_and_the_gate_alike(
    service: CutoverService,
    settings: Settings,
    world: World,
    images: Images,
    legacy: Legacy,
    now: datetime,
) -> None:
    # The last 5 minutes: 999 of 1000 dual-writes succeeded, exactly 99.9%.
    world.function({"ENABLE_DYNAMODB_DUAL_WRITE": "true"})
    world.dual_writes(999, 1, at=world.ago(60))
    world.requests("success", 1000, at=world.ago(60))
    check = run(settings, "dual_write", now=now)["dual_write"]
    assert check.status is Status.CRITICAL, check.reason
    assert "99.90% (1 of 1000 failed) in 5 min, not above 99.9%" in check.reason
    # The same ratio over the week fails the gate.
    healthy_week(world, successes=6993, failures=7)
    same_images(images, legacy, now)
    result = service.preflight(now=now)
    assert not result.gate.passed
    assert result.gate.failures[0].endswith("not above 99.9%")


def test_the_check_threshold_is_the_gates_unless_they_disagree() -> None:
    env = {"WATCHTOWER_CHECK_DUAL_WRITE_MIN_SUCCESS_RATIO": "0.995"}
    assert Settings.from_env(env, checks=CHECKS).check_overrides == {
        "dual_write": {"min_success_ratio": 0.995}
    }
    assert CutoverSettings.from_env(env).min_success_ratio == 0.995
    same = {**env, "WATCHTOWER_CUTOVER_MIN_SUCCESS_RATIO": "0.995"}
    assert CutoverSettings.from_env(same).min_success_ratio == 0.995
    with pytest.raises(ConfigError, match="share one threshold"):
        CutoverSettings.from_env({**env, "WATCHTOWER_CUTOVER_MIN_SUCCESS_RATIO": "0.999"})
    assert (
        CutoverSettings.from_env({}).min_success_ratio
        == registry()["dual_write"].defaults["min_success_ratio"]
    )
