"""The value parsers both settings objects share (watchtower.config): a bad value fails start-up
with the variable's name and what it must be."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from watchtower.config import Settings
from watchtower.cutover.config import CutoverSettings
from watchtower.errors import ConfigError

Load = Callable[[Mapping[str, str]], Any]


@pytest.mark.parametrize(
    ("load", "variable", "raw", "message"),
    [
        (Settings.from_env, "WATCHTOWER_PROBE_INTERVAL", "soon", "is not a whole number"),
        (Settings.from_env, "WATCHTOWER_PROBE_INTERVAL", "0", "must be greater than 0"),
        (Settings.from_env, "WATCHTOWER_SANDBOX", "maybe", "is not a boolean"),
        (Settings.from_env, "WATCHTOWER_RUNBOOK_WORKER_NICE", "-1", "must not be negative"),
        (Settings.from_env, "WATCHTOWER_RUNBOOK_WORKER_NICE", "20", "must be from 0 to 19"),
        (CutoverSettings.from_env, "WATCHTOWER_CUTOVER_WINDOW_HOURS", "x", "is not a whole number"),
        (CutoverSettings.from_env, "WATCHTOWER_CUTOVER_GRACE", "-1", "must not be negative"),
        (CutoverSettings.from_env, "WATCHTOWER_CUTOVER_GRACE", "1.5", "is not a whole number"),
        (CutoverSettings.from_env, "WATCHTOWER_CUTOVER_MIN_COVERAGE", "1.5", "between 0 and 1"),
        (CutoverSettings.from_env, "WATCHTOWER_CUTOVER_MIN_COVERAGE", "most", "is not a number"),
        (CutoverSettings.from_env, "WATCHTOWER_CUTOVER_MAX_P95_MS", "-800", "greater than 0"),
        (CutoverSettings.from_env, "WATCHTOWER_CUTOVER_REHEARSAL", "maybe", "is not a boolean"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable(
    load: Load, variable: str, raw: str, message: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        load({variable: raw})
    assert str(refused.value).startswith(f"{variable}={raw!r} ")
    assert message in str(refused.value)


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("1", True), ("no", False)])
def test_both_settings_read_a_flag_alike(raw: str, expected: bool) -> None:
    assert Settings.from_env({"WATCHTOWER_SANDBOX": raw}).sandbox is expected
    cutover = CutoverSettings.from_env({"WATCHTOWER_CUTOVER_REHEARSAL": raw})
    assert cutover.rehearsal is expected


def test_good_values_are_read() -> None:
    cutover = CutoverSettings.from_env(
        {
            "WATCHTOWER_CUTOVER_GRACE": "0",
            "WATCHTOWER_CUTOVER_MIN_COVERAGE": "0.95",
            "WATCHTOWER_CUTOVER_RECONCILE_READ_UNITS": "2.5",
        }
    )
    assert (cutover.grace_seconds, cutover.min_coverage) == (0, 0.95)
    assert cutover.reconcile_read_units_per_second == 2.5
