"""`upload_success`: success rate and latency objective of real user uploads.

Only `Traffic=user` is read: Watchtower's own probe uploads are synthetic and left out (the probe
reports its own view). Success is `success / (success + server_error)`: client errors (415 wrong
type, 413 too large, 400 corrupt, 422 key reuse) are the client's fault, not the service's, and
are reported beside it, not judged.

The latency objective (P95 at most `objective_ms`, 800 ms by default) is judged from counts, not
percentiles: the share of uploads slower than it is `LatencyOver<objective>ms` Sum / `Latency`
SampleCount (every upload, whatever its outcome), which must stay under 5%. Counts aggregate
correctly over any window and work where percentile statistics do not (the moto server).
`p95_upper_bound_ms` is the smallest published threshold with at most 5% of uploads over it: the
P95 is at or below it.

The objective is one setting for the check, the cutover's `upload_latency` criterion and the
`ImageUploadSlow` alerts: WATCHTOWER_CUTOVER_MAX_P95_MS, which start-up refuses unless it is one of
the thresholds the image core publishes (WATCHTOWER_CUTOVER_LATENCY_THRESHOLDS_MS, mirroring
IMAGE_LATENCY_THRESHOLDS_MS). The composition root hands it to this check as the `objective_ms`
parameter (`judging`); it is no WATCHTOWER_CHECK_* variable of its own, so it cannot differ. Should
the image core still not publish `LatencyOver<objective>ms`, the latency is unknown, never 0% slow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from watchtower.checks import image_metrics
from watchtower.checks.base import Check, CheckContext, MetricQuery, ratio, register, total
from watchtower.config import Settings
from watchtower.model import Result, Status

TRAFFIC = "user"
# The epic's upload P95, and WATCHTOWER_CUTOVER_MAX_P95_MS's default (the one setting).
OBJECTIVE_MS = 800
P95_SHARE = 0.05  # "P95 at or below t" means at most 5% over t, by definition


def objective_ms(params: Mapping[str, float]) -> int:
    """The upload P95 objective this check judges (the root sets it from the cutover's)."""
    return int(params.get("objective_ms", OBJECTIVE_MS))


def thresholds_ms(params: Mapping[str, float]) -> tuple[int, ...]:
    """The LatencyOver<N>ms read: the usual ones for the P95 bound, and the objective."""
    return tuple(sorted({*image_metrics.LATENCY_THRESHOLDS_MS, objective_ms(params)}))


def judging(settings: Settings, objective: float) -> Settings:
    """`settings` with upload_success judging `objective` ms (WATCHTOWER_CUTOVER_MAX_P95_MS); the
    same settings when that is the default."""
    overrides = settings.check_overrides
    mine = {k: v for k, v in overrides.get(UploadSuccess.name, {}).items() if k != "objective_ms"}
    if float(objective) != OBJECTIVE_MS:
        mine["objective_ms"] = float(objective)
    if mine == overrides.get(UploadSuccess.name, {}):
        return settings
    others = {k: v for k, v in overrides.items() if k != UploadSuccess.name}
    return replace(
        settings, check_overrides={**others, **({UploadSuccess.name: mine} if mine else {})}
    )


@register
class UploadSuccess(Check):
    name = "upload_success"
    title = "Upload success and latency"
    component = "upload_path"
    defaults = {
        "window_seconds": 300,
        "min_success_ratio": 0.999,  # critical below
        "max_slow_ratio": 0.05,  # warning above: P95 over the objective
        "critical_slow_ratio": 0.20,
        "min_requests": 10,  # fewer uploads: ratios are not judged
    }

    def metric_queries(self, settings: Settings, params: Mapping[str, float]) -> list[MetricQuery]:
        window = int(params["window_seconds"])
        return [
            *(
                image_metrics.requests(settings, window, traffic=TRAFFIC, outcome=o)
                for o in ("success", "server_error", "client_error")
            ),
            image_metrics.latency_samples(settings, window, traffic=TRAFFIC),
            *(
                image_metrics.latency_over(settings, window, t, traffic=TRAFFIC)
                for t in thresholds_ms(params)
            ),
        ]

    def evaluate(self, ctx: CheckContext) -> Result:
        counts = {
            outcome: total(ctx.metric(f"requests_upload_{TRAFFIC}_{outcome}"))
            for outcome in ("success", "server_error", "client_error")
        }
        samples = total(ctx.metric(f"latency_samples_upload_{TRAFFIC}"))
        objective = objective_ms(ctx.params)
        read = {
            t: total(ctx.metric(f"latency_over_{t}ms_upload_{TRAFFIC}"))
            for t in thresholds_ms(ctx.params)
        }
        # A threshold the image core does not publish is left out of the bound, never read as 0.
        over = {t: v for t, v in read.items() if v is not None}
        # The objective is exported with the thresholds even at its default: the alerts read it.
        thresholds = {k: v for k, v in ctx.params.items() if k != "window_seconds"}
        thresholds["objective_ms"] = float(objective)
        if all(v is None for v in (*counts.values(), samples)):
            return self.result(
                ctx,
                Status.UNKNOWN,
                f"no uploads recorded in {ctx.params['window_seconds'] / 60:.0f} min",
                thresholds=thresholds,
            )
        successes, server_errors = counts["success"] or 0, counts["server_error"] or 0
        figures = {
            "uploads": successes + server_errors,
            "server_errors": server_errors,
            "client_errors": counts["client_error"] or 0,
            "success_ratio": ratio(successes, successes + server_errors),
            "latency_samples": samples or 0,
            "slow_ratio": ratio(over[objective], samples) if objective in over else None,
            "p95_upper_bound_ms": p95_upper_bound(over, samples),
        }
        return self.result(ctx, *judge(figures, ctx.params), figures, thresholds)


def p95_upper_bound(over: Mapping[int, float], samples: float | None) -> float | None:
    """The smallest threshold with at most 5% of samples over it; None above the largest."""
    if not samples:
        return None
    for threshold in sorted(over):
        if over[threshold] / samples <= P95_SHARE:
            return float(threshold)
    return None


def judge(figures: Mapping[str, float | None], params: Mapping[str, float]) -> tuple[Status, str]:
    uploads = figures["uploads"] or 0
    server_errors = figures["server_errors"] or 0
    client_errors = figures["client_errors"] or 0
    success = figures["success_ratio"]
    slow = figures["slow_ratio"]
    bound = figures["p95_upper_bound_ms"]
    objective = objective_ms(params)
    minutes = params["window_seconds"] / 60
    aside = f"; {client_errors:.0f} rejected as client errors" if client_errors else ""
    if uploads < params["min_requests"]:
        said = (
            f"{uploads:.0f} uploads in {minutes:.0f} min, too few to judge the ratios "
            f"(at least {params['min_requests']:.0f}){aside}"
        )
        if server_errors:
            return Status.WARNING, f"{server_errors:.0f} failed with a server error: {said}"
        return Status.OK, said
    findings: list[tuple[Status, str]] = []
    if success is not None and success < params["min_success_ratio"]:
        findings.append((Status.CRITICAL, f"success below {params['min_success_ratio']:.1%}"))
    if slow is None and figures["latency_samples"]:
        # Watchtower judges an objective the image core does not publish: unknown, never 0%.
        findings.append(
            (
                Status.UNKNOWN,
                f"LatencyOver{objective}ms is not published, so the {objective} ms objective "
                "(WATCHTOWER_CUTOVER_MAX_P95_MS) cannot be judged: list it in the image core's "
                "IMAGE_LATENCY_THRESHOLDS_MS",
            )
        )
    elif slow is None:
        findings.append(
            (Status.UNKNOWN, "no Latency samples, so the latency objective cannot be judged")
        )
    elif slow > params["critical_slow_ratio"]:
        findings.append(
            (
                Status.CRITICAL,
                f"over {params['critical_slow_ratio']:.0%} slower than {objective} ms",
            )
        )
    elif slow > params["max_slow_ratio"]:
        findings.append(
            (
                Status.WARNING,
                f"P95 over {objective} ms (more than {params['max_slow_ratio']:.0%} slower)",
            )
        )
    said = (
        f"{(success or 0):.2%} of {uploads:.0f} uploads succeeded "
        f"({server_errors:.0f} server errors) in {minutes:.0f} min"
    )
    if slow is not None:
        said += f", {slow:.1%} slower than {objective} ms"
        top = max(thresholds_ms(params))
        said += f" (P95 at most {bound:.0f} ms)" if bound is not None else f" (P95 over {top} ms)"
    said += aside
    if not findings:
        return Status.OK, said
    return (
        Status.worst([s for s, _ in findings]),
        f"{said}: {'; '.join(text for _, text in findings)}",
    )
