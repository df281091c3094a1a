"""Issue 13, item 4: users' get, list and delete judged beside uploads, from the image core's
metrics: error rates and latency per operation, thresholds configurable."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.watchtower.checks.conftest import World
from tests.watchtower.cutover.conftest import Legacy
from tests.watchtower.cutover.evidence import FLIP, samples, window
from tests.watchtower.cutover.test_evidence import flip_before
from watchtower.cutover.config import CutoverSettings
from watchtower.cutover.judge import CriterionStatus, State, judge, slot_at
from watchtower.cutover.service import CutoverService
from watchtower.errors import ConfigError


def verdict(change: Any, settings: CutoverSettings | None = None) -> Any:
    w = window()
    return judge(
        w,
        samples(w, change=change),
        now=w.ends_at,
        settings=settings or CutoverSettings(),
        signoffs=[],
    )


def test_healthy_operations_pass() -> None:
    ops = verdict(None).criterion("user_operations")
    assert ops.status is CriterionStatus.OK, ops.detail
    assert "get 100.00% ok of 57,800" in ops.figure


def test_delete_server_errors_fail_the_window_at_its_end() -> None:
    hour12 = FLIP + timedelta(hours=12)

    def broken_deletes(at: datetime, figures: dict) -> None:
        if hour12 <= at < hour12 + timedelta(hours=1):  # 12 slots of 200 deletes, 20 failing
            figures["user_operations"]["delete"]["server_errors"] = 20.0

    result = verdict(broken_deletes)
    ops = result.criterion("user_operations")
    assert ops.status is CriterionStatus.FAILED
    assert "0.42% of 57,800 delete requests failed with a server error" in ops.detail
    assert any("20 delete server errors" in e.text for e in ops.events)
    assert result.state is State.FAILED


def test_slow_gets_fail_at_the_configured_objective() -> None:
    def slow_gets(at: datetime, figures: dict) -> None:
        figures["user_operations"]["get"]["over"]["250"] = 20.0  # 10% over 250 ms

    assert verdict(slow_gets).criterion("user_operations").status is CriterionStatus.OK
    strict = CutoverSettings.from_env({"WATCHTOWER_CUTOVER_MAX_OPERATION_P95_MS": "250"})
    ops = verdict(slow_gets, strict).criterion("user_operations")
    assert ops.status is CriterionStatus.FAILED
    assert "10.00% of get requests took over 250 ms" in ops.detail
    with pytest.raises(ConfigError, match="MAX_OPERATION_P95_MS=300 cannot be judged"):
        CutoverSettings.from_env({"WATCHTOWER_CUTOVER_MAX_OPERATION_P95_MS": "300"})


def test_a_sample_reads_get_list_and_delete_from_cloudwatch(
    service: CutoverService, world: World, legacy: Legacy, now: datetime
) -> None:
    world.function({"ENABLE_DYNAMODB_DUAL_WRITE": "false"})
    service.open_window(flipped_by="olive", at=flip_before(now), now=now, via="cli")
    inside = slot_at(now, 300) - timedelta(minutes=2)
    world.requests("success", 30, operation="get", at=inside)
    world.requests("server_error", 2, operation="delete", at=inside)
    world.metric(
        "LatencyOver500ms",
        at=inside,
        stats={"SampleCount": 30, "Sum": 4, "Minimum": 0.0, "Maximum": 1.0},
        Operation="get",
        Traffic="user",
    )
    sample = service.tick(now=now)
    assert sample is not None
    ops = sample.reading("user_operations").figures
    assert ops["get"]["requests"] == 30.0 and ops["get"]["over"]["500"] == 4.0
    assert ops["delete"] == {
        "requests": 2.0,
        "server_errors": 2.0,
        "samples": 0.0,
        "over": {"250": 0.0, "500": 0.0, "800": 0.0, "1000": 0.0},
    }
    judged = service.verdict(now=now).criterion("user_operations")
    assert judged.status is CriterionStatus.FAILING
    assert "100.00% of 2 delete requests failed" in judged.detail
