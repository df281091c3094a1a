"""Runs a set of checks as one cycle: one batched metric fetch, then each check's judgement.

One failing source never stops the other checks: every failure becomes that check's `unknown`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime

from watchtower.checks.base import Check, CheckContext, MetricQuery, Series, Sources
from watchtower.config import Settings
from watchtower.errors import SourceError
from watchtower.model import Result, unknown

log = logging.getLogger(__name__)


def params_for(check: Check, settings: Settings) -> dict[str, float]:
    overrides = settings.check_overrides.get(check.name, {})
    return {**check.defaults, **{k: v for k, v in overrides.items() if k != "interval"}}


def interval_for(check: Check, settings: Settings) -> int:
    default = settings.check_interval or check.interval
    return int(settings.check_overrides.get(check.name, {}).get("interval", default))


def run_checks(
    checks: Iterable[Check], *, settings: Settings, sources: Sources, now: datetime
) -> list[Result]:
    checks = list(checks)
    params = {c.name: params_for(c, settings) for c in checks}
    wanted: dict[str, list[MetricQuery]] = {}
    for check in checks:
        try:
            wanted[check.name] = check.metric_queries(settings, params[check.name])
        except Exception as exc:  # a broken check must not stop the cycle
            log.exception("check %s could not declare its metrics", check.name)
            wanted[check.name] = []
            params[check.name] = {**params[check.name], "_broken": 1}
            del exc
    fetched, errors = _fetch_all(wanted, settings=settings, sources=sources, now=now)
    results = []
    for check in checks:
        started = time.perf_counter()
        region_errors = {
            errors[q.region or settings.region]
            for q in wanted[check.name]
            if (q.region or settings.region) in errors
        }
        ctx = CheckContext(
            settings=settings,
            sources=sources,
            now=now,
            params=params[check.name],
            metrics={q.key: fetched.get(q, []) for q in wanted[check.name]},
            metrics_error="; ".join(sorted(region_errors)) or None,
        )
        results.append(
            replace(_evaluate(check, ctx), duration_seconds=time.perf_counter() - started)
        )
    return results


def _fetch_all(
    wanted: dict[str, list[MetricQuery]], *, settings: Settings, sources: Sources, now: datetime
) -> tuple[dict[MetricQuery, Series], dict[str, str]]:
    by_region: dict[str, list[MetricQuery]] = {}
    for queries in wanted.values():
        for q in queries:
            by_region.setdefault(q.region or settings.region, []).append(q)
    fetched: dict[MetricQuery, Series] = {}
    errors: dict[str, str] = {}
    for region, queries in by_region.items():
        try:
            fetched.update(
                sources.metrics.fetch(list(dict.fromkeys(queries)), now=now, region=region)
            )
        except SourceError as exc:
            errors[region] = str(exc)
    return fetched, errors


def _evaluate(check: Check, ctx: CheckContext) -> Result:
    thresholds = {k: v for k, v in ctx.params.items() if k not in ("window_seconds", "_broken")}
    if "_broken" in ctx.params:
        return unknown(
            check.name,
            "check",
            "the check could not declare its metrics (a bug; see Watchtower's log)",
            ctx.now,
            thresholds,
        )
    try:
        return check.evaluate(ctx)
    except SourceError as exc:
        return unknown(check.name, "check", str(exc), ctx.now, thresholds)
    except Exception as exc:
        log.exception("check %s failed", check.name)
        return unknown(
            check.name,
            "check",
            f"the check failed: {type(exc).__name__}: {exc}",
            ctx.now,
            thresholds,
        )
