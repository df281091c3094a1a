"""`dual_write`: the flag's actual value on the deployed function, and the dual-write success rate.

The flag is read from the Lambda function's configuration, not from a config file: that is what
the running code sees. With an alias configured (WATCHTOWER_LAMBDA_ALIAS), from the version(s)
the alias serves, weighted ones included; `$LATEST` changed alone is said to serve nothing.
The success rate comes from the image core's DualWrites{Outcome} metric.
For one window after the flag is flipped off, dual-writes made just before the flip still count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from watchtower.checks import image_metrics
from watchtower.checks.base import (
    Check,
    CheckContext,
    FunctionConfigSource,
    MetricQuery,
    ServedVersion,
    ratio,
    register,
    total,
)
from watchtower.config import Settings
from watchtower.errors import SourceError
from watchtower.model import Result, Status

FLAG = "ENABLE_DYNAMODB_DUAL_WRITE"
# The image core's own parsing of the flag (image_core/config.py); unset means its default, off.
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}

# The one dual-write success rule (Story 6.1 AC 2: "> 99.9%"), shared by this check, the cutover's
# pre-flight gate (watchtower.cutover.gate) and, through this check's status, the
# DualWriteFailing alert. WATCHTOWER_CHECK_DUAL_WRITE_MIN_SUCCESS_RATIO sets it for all three.
MIN_SUCCESS_RATIO = 0.999
SUCCESS_RULE = "above"  # how the rule reads: the ratio must be strictly above the minimum


def success_meets(success_ratio: float, minimum: float) -> bool:
    """Whether a dual-write success ratio passes: strictly above the minimum, never equal."""
    return success_ratio > minimum


def flag_value(environment: Mapping[str, str], function: str) -> tuple[bool | None, str]:
    """The flag as the image core would read it from this environment, and how it reads."""
    raw = environment.get(FLAG)
    if raw is None:
        return False, f"{FLAG} is not set on function {function!r} (the image core's default: off)"
    value = raw.strip().lower()
    if value in _TRUE:
        return True, f"{FLAG}={raw} on function {function!r}"
    if value in _FALSE:
        return False, f"{FLAG}={raw} on function {function!r}"
    return None, f"{FLAG}={raw!r} on function {function!r} is not a boolean"


def read_flag(ctx: CheckContext) -> tuple[bool | None, str]:
    """The flag of what serves traffic, or None and why it could not be read."""
    if ctx.sources.functions is None:
        return None, "no Lambda configuration source is configured"
    try:
        return serving_flag(ctx.sources.functions, ctx.settings)
    except SourceError as exc:
        return None, str(exc)


def serving_flag(functions: FunctionConfigSource, settings: Settings) -> tuple[bool | None, str]:
    """The flag of what serves traffic: the alias's version(s) when one is configured, else
    `$LATEST`; raises SourceError. The cutover's evidence reads it the same way."""
    function, alias = settings.lambda_function, settings.lambda_alias
    if not alias:
        return flag_value(functions.environment(function), function)
    flag, note = served_flag(functions.served(function, alias), function, alias)
    if flag:
        latest, _ = flag_value(functions.environment(function), function)
        if latest is False:
            note += (
                f"; the alias still serves the flag on: $LATEST has it off, but alias "
                f"{alias!r} does not serve $LATEST (publish a version and move the alias)"
            )
    return flag, note


def served_flag(
    served: Sequence[ServedVersion], function: str, alias: str
) -> tuple[bool | None, str]:
    """The flag across the versions an alias serves: on when any serves it on (those requests
    dual-write), unknown when any cannot be read; the note names each version and its weight."""
    flags = [flag_value(v.environment, function)[0] for v in served]
    parts = []
    for version in served:
        raw = version.environment.get(FLAG)
        said = f"{FLAG} unset" if raw is None else f"{FLAG}={raw}"
        share = f" ({version.weight:.0%})" if len(served) > 1 else ""
        parts.append(f"version {version.version}{share}: {said}")
    note = f"alias {alias!r} of function {function!r} serves " + " and ".join(parts)
    if any(f is None for f in flags):
        return None, note + " (not a boolean)"
    return any(flags), note


def flag_figure(flag: bool | None) -> float | None:
    return None if flag is None else float(flag)


@register
class DualWrite(Check):
    name = "dual_write"
    title = "Dual-write flag and success rate"
    component = "legacy"
    reads = ("lambda:configuration",)
    defaults = {"window_seconds": 300, "min_success_ratio": MIN_SUCCESS_RATIO}

    def metric_queries(self, settings: Settings, params: Mapping[str, float]) -> list[MetricQuery]:
        window = int(params["window_seconds"])
        return [
            image_metrics.dual_writes(settings, window, outcome="success"),
            image_metrics.dual_writes(settings, window, outcome="failure"),
            *(
                image_metrics.requests(settings, window, traffic=t, outcome="success")
                for t in image_metrics.TRAFFIC
            ),
        ]

    def evaluate(self, ctx: CheckContext) -> Result:
        flag, flag_note = read_flag(ctx)
        try:
            successes = total(ctx.metric("dual_writes_success")) or 0
            failures = total(ctx.metric("dual_writes_failure")) or 0
            uploads = sum(
                total(ctx.metric(f"requests_upload_{t}_success")) or 0
                for t in image_metrics.TRAFFIC
            )
        except SourceError as exc:
            # The flag was still read: say what it is, even though the rate is unknown.
            return self.result(
                ctx,
                Status.UNKNOWN,
                f"dual-write metrics could not be read ({exc}); {flag_note}",
                {"flag": flag_figure(flag)},
            )
        attempts = successes + failures
        figures = {
            "flag": flag_figure(flag),
            "attempts": attempts,
            "failures": failures,
            "success_ratio": ratio(successes, attempts),
            "uploads": uploads,
        }
        status, reason = judge(flag, figures, ctx.params, flag_note=flag_note)
        if ctx.settings.lambda_alias and flag_note not in reason:
            reason = f"{reason} ({flag_note})"  # which version(s) said so
        return self.result(ctx, status, reason, figures)


def judge(
    flag: bool | None,
    figures: Mapping[str, float | None],
    params: Mapping[str, float],
    *,
    flag_note: str = "",
) -> tuple[Status, str]:
    """Off means no attempts at all; on means (nearly) every attempt succeeds, one per upload."""
    attempts = figures["attempts"] or 0
    failures = figures["failures"] or 0
    uploads = figures["uploads"] or 0
    minutes = params["window_seconds"] / 60
    if flag is None:
        return Status.UNKNOWN, (
            f"the dual-write flag could not be read ({flag_note}); "
            f"{attempts:.0f} dual-writes in {minutes:.0f} min"
        )
    if not flag:
        if attempts > 0:
            return Status.CRITICAL, (
                f"{attempts:.0f} dual-writes attempted in {minutes:.0f} min "
                f"although dual-write is off ({flag_note})"
            )
        return Status.OK, (
            f"dual-write is off and no dual-writes were attempted in {minutes:.0f} min"
        )
    if attempts == 0:
        if uploads > 0:
            return Status.WARNING, (
                f"dual-write is on, but none of the {uploads:.0f} successful "
                f"uploads in {minutes:.0f} min was dual-written"
            )
        return Status.OK, f"dual-write is on; no uploads in {minutes:.0f} min to dual-write"
    success_ratio = (attempts - failures) / attempts
    if not success_meets(success_ratio, params["min_success_ratio"]):
        return Status.CRITICAL, (
            f"dual-write success {success_ratio:.2%} ({failures:.0f} of "
            f"{attempts:.0f} failed) in {minutes:.0f} min, not above "
            f"{params['min_success_ratio']:.1%}"
        )
    return Status.OK, (
        f"dual-write is on: {success_ratio:.2%} of {attempts:.0f} dual-writes "
        f"succeeded in {minutes:.0f} min"
    )
