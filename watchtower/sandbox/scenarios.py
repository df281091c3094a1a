"""Scenarios: each turns one component red, with real mechanics wherever the local stack allows.

    healthy        every component green
    throttling     SIMULATED DynamoDB throttle metrics             -> dynamodb_throttling critical
    cold-starts    SIMULATED cold starts on real requests           -> lambda_cold_starts critical
    cache-misses   SIMULATED CloudFront hit rate                    -> cloudfront_hit_rate critical
    legacy-writes  REAL: the function's flag says false, yet the    -> postgres_inserts and
                   image API process keeps dual-writing real rows      dual_write critical
    upload-errors  REAL: the image API restarts with a bucket that  -> upload_get and
                   does not exist, so uploads answer 503               upload_success critical

`plan` is the pure part: which steps lead from one scenario to another. `ScenarioController`
takes them through the sandbox's `Levers`.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

from watchtower.errors import ScenarioUnavailable, UnknownScenario
from watchtower.model import Status
from watchtower.sandbox.telemetry import HEALTHY, Profile

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Scenario:
    name: str
    summary: str  # what the person on call would see
    mechanics: str  # what is real, what is simulated
    turns_red: tuple[tuple[str, Status], ...] = ()  # result name -> the status the check gives
    telemetry: Profile = HEALTHY
    stale_flag: bool = False  # the function says dual-write off; the process keeps it on
    missing_bucket: bool = False  # the image API runs with a bucket that does not exist
    needs_postgres: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "summary": self.summary,
            "mechanics": self.mechanics,
            "turns_red": {name: status.value for name, status in self.turns_red},
        }


HEALTHY_SCENARIO = Scenario(
    name="healthy",
    summary="every component green",
    mechanics="real user traffic and probes; simulated telemetry at healthy levels",
)

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        HEALTHY_SCENARIO,
        Scenario(
            name="throttling",
            summary="the images table is throttled",
            mechanics="SIMULATED: ThrottledRequests (PutItem, TransactWriteItems, Query) and "
            "Read/WriteThrottleEvents on the table, about 6 a second; moto never throttles",
            turns_red=(("dynamodb_throttling", Status.CRITICAL),),
            telemetry=replace(HEALTHY, throttled_per_second=6.0),
        ),
        Scenario(
            name="cold-starts",
            summary="the function starts cold on half its invocations, each init over 3 s",
            mechanics="REPORT lines follow the real requests; SIMULATED: half of them start a "
            "new container with an Init Duration of 3.2 to 5.5 s (a slow-loading package)",
            turns_red=(("lambda_cold_starts", Status.CRITICAL),),
            telemetry=replace(HEALTHY, cold_start_share=0.5, init_ms=(3200.0, 5500.0)),
        ),
        Scenario(
            name="cache-misses",
            summary="CloudFront serves most thumbnails from the origin",
            mechanics="SIMULATED: CacheHitRate of 2 to 10% (as after an invalidation of /*, or "
            "with a cache policy that varies on every query string)",
            turns_red=(("cloudfront_hit_rate", Status.CRITICAL),),
            telemetry=replace(HEALTHY, cache_hit_percent=(2.0, 10.0)),
        ),
        Scenario(
            name="legacy-writes",
            summary="dual-write is off on the function, but rows still land in gallery_images",
            mechanics="REAL: ENABLE_DYNAMODB_DUAL_WRITE is set to false on the function in moto "
            "(UpdateFunctionConfiguration), but the image API process is not replaced: it keeps "
            "the environment it started with and dual-writes every upload into PostgreSQL, as a "
            "stale deployment would. Ending the scenario restores the flag.",
            turns_red=(("postgres_inserts", Status.CRITICAL), ("dual_write", Status.CRITICAL)),
            stale_flag=True,
            needs_postgres=True,
        ),
        Scenario(
            name="upload-errors",
            summary="uploads fail with 503: the image API writes to a bucket that does not exist",
            mechanics="REAL: the image API restarts with IMAGE_BUCKET set to a bucket that does "
            "not exist; uploads answer 503 storage_unavailable, gets and lists still work",
            turns_red=(("upload_get", Status.CRITICAL), ("upload_success", Status.CRITICAL)),
            missing_bucket=True,
        ),
    )
}

Step = Literal[
    "restore_bucket",
    "restore_flag",
    "release_image_api",
    "hold_image_api",
    "dual_write_on",
    "flag_off",
    "break_bucket",
]


def plan(current: Scenario, target: Scenario) -> list[Step]:
    """The steps from `current` to `target`: undo what `current` changed, then break anew."""
    steps: list[Step] = []
    if current.missing_bucket and not target.missing_bucket:
        steps.append("restore_bucket")
    if current.stale_flag and not target.stale_flag:
        steps += ["restore_flag", "release_image_api"]
    if target.stale_flag and not current.stale_flag:
        steps += ["hold_image_api", "dual_write_on", "flag_off"]
    if target.missing_bucket and not current.missing_bucket:
        steps.append("break_bucket")
    return steps


class Levers(Protocol):
    """What scenarios move in the sandbox."""

    def function_flag(self) -> str | None:
        """The served ENABLE_DYNAMODB_DUAL_WRITE (alias's version, else $LATEST); None: unset."""

    def set_function_flag(self, raw: str | None) -> None: ...

    def hold_image_api(self, held: bool) -> None:
        """Hold: the image API no longer follows the function's flag."""

    def restart_image_api(
        self, *, dual_write: bool | None = None, bucket_exists: bool | None = None
    ) -> None: ...


class ScenarioController:
    """The scenario now, and switching to another; one switch at a time."""

    def __init__(self, levers: Levers, *, postgres: bool) -> None:
        self._levers = levers
        self._postgres = postgres
        self._current = HEALTHY_SCENARIO
        self._saved_flag: str | None = None
        self._lock = threading.Lock()

    @property
    def current(self) -> Scenario:
        return self._current

    def profile(self) -> Profile:
        return self._current.telemetry

    def dual_write_on(self) -> bool:
        """Turn the function's flag back on (what the pre-cutover service runs with); True when
        it was off, as an earlier flip or rehearsal leaves it."""
        with self._lock:
            if self._levers.function_flag() == "true":
                return False
            self._levers.set_function_flag("true")
            return True

    def available(self, scenario: Scenario) -> str | None:
        """None when `scenario` can run here, else why not."""
        if scenario.needs_postgres and not self._postgres:
            return f"{scenario.name} needs PostgreSQL (gallery_images), which is not running"
        return None

    def switch(self, name: str) -> Scenario:
        target = SCENARIOS.get(name)
        if target is None:
            raise UnknownScenario(f"no scenario {name!r} (known: {', '.join(SCENARIOS)})")
        why_not = self.available(target)
        if why_not is not None:
            raise ScenarioUnavailable(why_not)
        with self._lock:
            try:
                for step in plan(self._current, target):
                    self._take(step)
            except BaseException:
                # Half a switch: at least never leave the image API deaf to the function's flag.
                if not self._current.stale_flag:
                    self._levers.hold_image_api(False)
                raise
            previous, self._current = self._current, target
        if previous is not target:
            log.info("scenario: %s -> %s (%s)", previous.name, target.name, target.mechanics)
        return target

    def _take(self, step: Step) -> None:
        levers = self._levers
        if step == "restore_bucket":
            levers.restart_image_api(bucket_exists=True)
        elif step == "restore_flag":
            levers.set_function_flag(self._saved_flag)
        elif step == "release_image_api":
            levers.hold_image_api(False)
        elif step == "hold_image_api":
            levers.hold_image_api(True)
        elif step == "dual_write_on":
            levers.restart_image_api(dual_write=True)
        elif step == "flag_off":
            self._saved_flag = levers.function_flag()
            levers.set_function_flag("false")
        elif step == "break_bucket":
            levers.restart_image_api(bucket_exists=False)

    def describe(self) -> dict[str, Any]:
        return {
            "scenario": self._current.as_dict(),
            "scenarios": [
                {**s.as_dict(), "unavailable": self.available(s)} for s in SCENARIOS.values()
            ],
        }
