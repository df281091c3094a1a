from __future__ import annotations

from datetime import datetime

import pytest

from tests.watchtower.checks.conftest import World, run
from watchtower.checks.dynamodb_writes import DynamoDbWrites, judge
from watchtower.config import Settings
from watchtower.model import Status

PARAMS = dict(DynamoDbWrites.defaults)


def figures(
    writes: float | None, baseline: float | None, uploads: float = 0
) -> dict[str, float | None]:
    return {
        "write_units": writes,
        "baseline_write_units": baseline,
        "uploads": uploads,
        "ratio_of_baseline": writes / baseline if writes is not None and baseline else None,
    }


def test_judge_writes_at_the_usual_rate_are_ok() -> None:
    assert judge(figures(95, 100, 90), PARAMS) == (
        Status.OK,
        "95 write units in 5 min, 95% of the 24 h average of 100 per 5 min",
    )


def test_judge_writes_below_half_the_usual_rate_are_a_warning() -> None:
    status, reason = judge(figures(40, 100, 30), PARAMS)
    assert status is Status.WARNING
    assert reason == "40 write units in 5 min, 40% of the 24 h average of 100 per 5 min, below 50%"


@pytest.mark.parametrize("writes", [None, 0.0])
def test_judge_uploads_without_writes_are_critical(writes: float | None) -> None:
    status, reason = judge(figures(writes, 100, 12), PARAMS)
    assert status is Status.CRITICAL
    assert reason == "12 successful uploads in 5 min but no DynamoDB write capacity consumed"


def test_judge_no_writes_and_no_uploads_is_unknown() -> None:
    status, reason = judge(figures(None, 100), PARAMS)
    assert status is Status.UNKNOWN
    assert reason == (
        "no DynamoDB writes and no uploads recorded in 5 min: nothing to judge; "
        "the 24 h average is 100 per window"
    )


def test_judge_without_a_baseline_is_ok_and_says_so() -> None:
    status, reason = judge(figures(3, None, 2), PARAMS)
    assert status is Status.OK
    assert "too little in the last 24 h to compare against (none, at least 10)" in reason


def usual_day(world: World, units_per_window: float) -> None:
    """24 hourly datapoints adding up to `units_per_window` per 5-minute window over 24 h."""
    for hour in range(1, 25):
        world.table_writes(units_per_window * 12, at=world.ago(hour * 3600 - 30))


def test_writes_at_the_usual_rate_are_ok(world: World, settings: Settings, now: datetime) -> None:
    usual_day(world, 100)
    world.table_writes(110)
    world.requests("success", 50)
    world.requests("success", 5, traffic="synthetic")

    result = run(settings, "dynamodb_writes", now=now)["dynamodb_writes"]

    assert result.status is Status.OK, result.reason
    # The window's own 110 units are part of the 24 h: (24 * 1200 + 110) / 288.
    assert result.figures["baseline_write_units"] == pytest.approx((24 * 1200 + 110) / 288)
    assert result.figures["write_units"] == 110
    assert result.figures["uploads"] == 55


def test_writes_far_below_the_usual_rate_are_a_warning(
    world: World, settings: Settings, now: datetime
) -> None:
    usual_day(world, 100)
    world.table_writes(20)
    world.requests("success", 10)

    result = run(settings, "dynamodb_writes", now=now)["dynamodb_writes"]

    assert result.status is Status.WARNING, result.reason
    assert result.figures["ratio_of_baseline"] == pytest.approx(20 / ((24 * 1200 + 20) / 288))


def test_uploads_without_writes_are_critical(
    world: World, settings: Settings, now: datetime
) -> None:
    usual_day(world, 100)
    world.requests("success", 8, traffic="synthetic")

    result = run(settings, "dynamodb_writes", now=now)["dynamodb_writes"]

    assert result.status is Status.CRITICAL, result.reason
    assert result.figures["write_units"] is None
    assert result.figures["uploads"] == 8


def test_no_writes_and_no_uploads_is_unknown(
    world: World, settings: Settings, now: datetime
) -> None:
    world.table_writes(500, table="another-table")

    result = run(settings, "dynamodb_writes", now=now)["dynamodb_writes"]

    assert result.status is Status.UNKNOWN
    assert result.reason == "no DynamoDB writes and no uploads recorded in 5 min: nothing to judge"


def test_judge_with_too_little_history_says_no_baseline_yet_and_no_percentage() -> None:
    f = {**figures(132, 10.8, 20), "baseline_history_seconds": 120.0}
    status, reason = judge(f, PARAMS)
    assert status is Status.OK
    assert reason == "132 write units in 5 min; no baseline yet (2 min of history, needs 1 h)"
    assert "%" not in reason


def test_right_after_start_there_is_no_baseline_and_no_ratio(
    world: World, settings: Settings, now: datetime
) -> None:
    # The demo's first minutes: the window's writes are the whole history.
    world.table_writes(132)
    world.requests("success", 20)

    result = run(settings, "dynamodb_writes", now=now)["dynamodb_writes"]

    assert result.status is Status.OK, result.reason
    assert "no baseline yet" in result.reason and "needs 1 h" in result.reason
    assert "%" not in result.reason
    assert result.figures["ratio_of_baseline"] is None
    assert result.figures["baseline_write_units"] is None


def test_the_baseline_averages_over_the_history_it_has(
    world: World, settings: Settings, now: datetime
) -> None:
    # Two hours of history at 100 per window: the average is 100, not 2/24 of it.
    for minute in range(10, 121, 5):
        world.table_writes(100, at=world.ago(minute * 60))
    world.table_writes(100)
    world.requests("success", 50)

    result = run(settings, "dynamodb_writes", now=now)["dynamodb_writes"]

    assert result.status is Status.OK, result.reason
    assert 1.5 * 3600 < result.figures["baseline_history_seconds"] <= 2.2 * 3600
    assert result.figures["ratio_of_baseline"] == pytest.approx(1.0, rel=0.1)
