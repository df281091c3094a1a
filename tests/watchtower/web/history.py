"""A believable history of results for the status page: tests, the browser screenshot, the timing.

Nine sources (the upload_get probe and the eight checks), one result each per `every` seconds,
with a few incidents at fixed places relative to `now`, so every state and bar kind shows.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta

from watchtower.model import Result, Status, StepResult

STEPS = ("upload", "replay", "get", "thumbnail", "list", "delete", "get_deleted")
_MEDIAN = {
    "upload": 0.19,
    "replay": 0.06,
    "get": 0.035,
    "thumbnail": 0.05,
    "list": 0.045,
    "delete": 0.07,
    "get_deleted": 0.025,
}
CHECKS = (
    "upload_success",
    "dynamodb_throttling",
    "dynamodb_writes",
    "lambda_cold_starts",
    "cloudfront_hit_rate",
    "gallery_cache",
    "postgres_inserts",
    "dual_write",
)


def walk(
    at: datetime,
    rng: random.Random,
    *,
    fail: str | None = None,
    reason: str = "",
    slow: float = 1.0,
    status: Status | None = None,
    attempt: int = 1,
) -> Result:
    """One upload_get run: every step timed, stopping at `fail` when it is given."""
    steps = []
    for name in STEPS:
        seconds = _MEDIAN[name] * rng.lognormvariate(0, 0.28) * (slow if name == "upload" else 1)
        if name == fail:
            steps.append(StepResult(name=name, ok=False, seconds=seconds, reason=reason))
            break
        steps.append(StepResult(name=name, ok=True, seconds=seconds))
    total = sum(s.seconds for s in steps)
    if fail is not None:
        judged, said = Status.CRITICAL, f"{fail} failed: {reason}"
    elif steps[0].seconds > 0.8:
        judged = Status.WARNING
        said = f"slow: upload took {steps[0].seconds:.2f} s (warning over 0.80 s)"
    else:
        judged, said = Status.OK, f"all {len(steps)} steps ok in {total:.2f} s"
    if status is Status.WARNING and fail is not None:
        said = "failed once, passed on immediate retry: " + said
    return Result(
        name="upload_get",
        kind="probe",
        status=status or judged,
        reason=said,
        observed_at=at,
        figures={f"{s.name}_seconds": s.seconds for s in steps} | {"total_seconds": total},
        thresholds={"warning_upload_seconds": 0.8, "warning_total_seconds": 4.0},
        steps=tuple(steps),
        duration_seconds=total,
        attempt=attempt,
    )


def check(name: str, at: datetime, status: Status, reason: str, **figures: float) -> Result:
    return Result(
        name=name, kind="check", status=status, reason=reason, observed_at=at, figures=figures
    )


def synthetic_history(
    now: datetime, *, days: float = 7, every: int = 60, seed: int = 7
) -> Iterator[Result]:
    """Results from `days` ago up to `now`, oldest first."""
    rng = random.Random(seed)
    start = now - timedelta(days=days)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    thumbnail_outage = (today - timedelta(days=3, hours=-14), timedelta(minutes=25))
    slow_uploads = (today - timedelta(days=5, hours=-9), timedelta(minutes=90))
    throttling = (today - timedelta(days=2, hours=-20), timedelta(minutes=40))
    legacy_rows = (today - timedelta(days=1, hours=-11), timedelta(minutes=5))
    lambda_silent_since = now - timedelta(minutes=6)
    cloudfront_low_since = now - timedelta(minutes=40)

    def inside(at: datetime, window: tuple[datetime, timedelta]) -> bool:
        return window[0] <= at < window[0] + window[1]

    at = start
    while at <= now:
        # -- the probe
        if inside(at, thumbnail_outage):
            why = "expected 200 from the thumbnail URL, got HTTP 503"
            yield walk(at, rng, fail="thumbnail", reason=why)
            yield walk(at + timedelta(seconds=2), rng, fail="thumbnail", reason=why, attempt=2)
        elif rng.random() < 0.0005:
            why = "timed out: no answer within 10 s (http://127.0.0.1:8000)"
            yield walk(at, rng, fail="get", reason=why, status=Status.WARNING)
            yield walk(at + timedelta(seconds=2), rng, attempt=2)
        else:
            yield walk(at, rng, slow=4.5 if inside(at, slow_uploads) else 1.0)
        # -- the checks
        uploads = rng.randint(40, 70)
        yield check(
            "upload_success",
            at,
            Status.OK,
            f"100.00% of {uploads} uploads succeeded (0 server errors) in 5 min, "
            "1.2% slower than 800 ms (P95 at most 500 ms)",
            uploads=uploads,
            server_errors=0,
            success_ratio=1.0,
            slow_ratio=0.012,
            p95_upper_bound_ms=500,
        )
        if inside(at, throttling):
            throttled = 80 if (at - throttling[0]) < timedelta(minutes=10) else 12
            yield check(
                "dynamodb_throttling",
                at,
                Status.CRITICAL if throttled >= 50 else Status.WARNING,
                f"{throttled} throttled requests or events in 5 min",
                throttled_requests=throttled,
                read_throttle_events=0,
                write_throttle_events=throttled,
            )
        else:
            yield check(
                "dynamodb_throttling",
                at,
                Status.OK,
                "no throttling in 5 min",
                throttled_requests=0,
                read_throttle_events=0,
                write_throttle_events=0,
            )
        units = uploads * 3.0
        yield check(
            "dynamodb_writes",
            at,
            Status.OK,
            f"{units:.0f} write units in 5 min, {units / 160:.0%} of the daily baseline",
            write_units=units,
            baseline_write_units=160,
            ratio_of_baseline=units / 160,
            uploads=uploads,
        )
        if at < lambda_silent_since:
            invocations = rng.randint(120, 180)
            cold = rng.randint(1, 5)
            yield check(
                "lambda_cold_starts",
                at,
                Status.OK,
                f"{cold} cold starts in {invocations} invocations ({cold / invocations:.1%}) "
                "in 5 min, init P95 412 ms",
                invocations=invocations,
                cold_starts=cold,
                cold_start_ratio=cold / invocations,
                init_p95_ms=412,
            )
        hit = 0.74 if at >= cloudfront_low_since else 0.9 + rng.random() * 0.06
        yield check(
            "cloudfront_hit_rate",
            at,
            Status.WARNING if hit < 0.8 else Status.OK,
            f"hit rate {hit:.1%} of 2,140 requests in 5 min" + (", below 80%" if hit < 0.8 else ""),
            hit_ratio=hit,
            requests=2140,
        )
        yield check(
            "gallery_cache",
            at,
            Status.OK,
            "hits 88.0%, bypassed 0.0% of 620 lookups in 5 min",
            hits=546,
            misses=74,
            bypasses=0,
            hit_ratio=0.88,
            bypass_ratio=0.0,
        )
        if inside(at, legacy_rows):
            yield check(
                "postgres_inserts",
                at,
                Status.CRITICAL,
                "3 rows inserted into gallery_images in 5 min after dual-write was turned off "
                "(ENABLE_DYNAMODB_DUAL_WRITE=false on function 'image-api')",
                inserted_rows=3,
                flag=0,
            )
        else:
            yield check(
                "postgres_inserts",
                at,
                Status.OK,
                "no rows inserted into gallery_images in 5 min; dual-write is off",
                inserted_rows=0,
                flag=0,
            )
        yield check(
            "dual_write",
            at,
            Status.OK,
            "dual-write is off and no dual-writes were attempted in 5 min",
            flag=0,
            attempts=0,
            failures=0,
        )
        at += timedelta(seconds=every)
