"""What the fuzz tests share: bounded, derandomized settings, and what every answer of the image
API must be."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings

from image_core.app import Components
from tests.image_core import readback


def fuzz_settings(max_examples: int) -> settings:
    """Derandomized (the same examples on every run, so CI is stable), bounded and without a
    deadline: a request to the moto server takes as long as it takes."""
    return settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        # The fixtures (a store, an app) are shared by the examples of one test on purpose: the
        # invariants are checked over everything the examples wrote together.
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
    )


def assert_error_body(answer: Any) -> None:
    """A 4xx answers JSON naming the problem with a code and a message."""
    body = answer.get_json(silent=True)
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), answer.data[:200]
    assert isinstance(body["error"].get("code"), str) and body["error"]["code"]
    assert isinstance(body["error"].get("message"), str) and body["error"]["message"]


def assert_nothing_half_written(components: Components) -> None:
    """Every image record has both of its objects, every object has its record, and no
    Idempotency-Key claim is left in progress once the requests that made them have answered."""
    problems = readback.half_written(components)
    assert problems == [], problems
