"""Runs a set of checks as one cycle: one batched metric fetch, then each check's judgement.

One failing source never stops the other checks: every failure becomes that check's `unknown`.

Every cycle has a deadline (`Settings.check_deadline_seconds`, under the interval): the metric
fetch and each check's judgement run in threads of their own, and a source that has not answered
by then gives its checks an `unknown` result naming it and the wait ("CloudWatch (us-east-1) did
not answer within 40 s"), on time, so a hung source neither stalls the cycle nor loses the next
slot. The abandoned call ends by itself with the clients' own timeouts.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from watchtower.checks.base import Check, CheckContext, MetricQuery, Series, Sources
from watchtower.config import Settings
from watchtower.errors import SourceError
from watchtower.model import Result, unknown

log = logging.getLogger(__name__)
GRACE = 0.5  # seconds past the deadline for judgements whose sources already answered


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
    budget = float(settings.check_deadline_seconds)
    deadline = time.monotonic() + budget
    fetched, errors = _fetch_all(
        wanted, settings=settings, sources=sources, now=now, deadline=deadline, budget=budget
    )
    runs: list[tuple[Check, CheckContext, _Tracker, _Run]] = []
    for check in checks:
        region_errors = {
            errors[q.region or settings.region]
            for q in wanted[check.name]
            if (q.region or settings.region) in errors
        }
        tracker = _Tracker()
        ctx = CheckContext(
            settings=settings,
            sources=_tracked(sources, tracker),
            now=now,
            params=params[check.name],
            metrics={q.key: fetched.get(q, []) for q in wanted[check.name]},
            metrics_error="; ".join(sorted(region_errors)) or None,
        )
        runs.append((check, ctx, tracker, _start(functools.partial(_evaluate, check, ctx))))
    results = []
    until = deadline + GRACE  # judging is quick once the sources answered
    for check, ctx, tracker, run in runs:
        if run.wait(until - time.monotonic()):
            results.append(replace(run.value(), duration_seconds=run.took))
            continue
        waited = tracker.current or "its sources"
        results.append(
            unknown(
                check.name,
                "check",
                f"{waited} did not answer within {budget:g} s (the check cycle's deadline)",
                now,
                {k: v for k, v in ctx.params.items() if k not in ("window_seconds", "_broken")},
            )
        )
    return results


# -- deadlines ----------------------------------------------------------------------------------


class _Run:
    """One call in a daemon thread of its own: waited for up to a deadline, then abandoned."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self._call = call
        self._value: Any = None
        self._error: BaseException | None = None
        self.took = 0.0
        self._thread = threading.Thread(target=self._run, name="check-cycle", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        started = time.perf_counter()
        try:
            self._value = self._call()
        except BaseException as exc:  # handed to the waiter
            self._error = exc
        self.took = time.perf_counter() - started

    def wait(self, seconds: float) -> bool:
        self._thread.join(max(0.0, seconds))
        return not self._thread.is_alive()

    def value(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._value


def _start(call: Callable[[], Any]) -> _Run:
    return _Run(call)


class _Tracker:
    """Which source a check is waiting for, so a missed deadline can name it."""

    current: str | None = None


@dataclass(frozen=True)
class _Named:
    """A port whose calls say, while they last, which source the check waits for."""

    port: Any
    label: str
    tracker: _Tracker

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.port, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self.tracker.current = self.label
            result = attr(*args, **kwargs)
            self.tracker.current = None
            return result

        return call


def _tracked(sources: Sources, tracker: _Tracker) -> Sources:
    def named(port: Any, label: str) -> Any:
        return None if port is None else _Named(port, label, tracker)

    return Sources(
        metrics=named(sources.metrics, "CloudWatch"),
        logs=named(sources.logs, "CloudWatch Logs"),
        functions=named(sources.functions, "Lambda"),
        legacy_sql=named(sources.legacy_sql, "the legacy PostgreSQL"),
    )


def _fetch_all(
    wanted: dict[str, list[MetricQuery]],
    *,
    settings: Settings,
    sources: Sources,
    now: datetime,
    deadline: float,
    budget: float,
) -> tuple[dict[MetricQuery, Series], dict[str, str]]:
    by_region: dict[str, list[MetricQuery]] = {}
    for queries in wanted.values():
        for q in queries:
            by_region.setdefault(q.region or settings.region, []).append(q)
    fetched: dict[MetricQuery, Series] = {}
    errors: dict[str, str] = {}
    runs = {
        region: _start(
            functools.partial(
                sources.metrics.fetch, list(dict.fromkeys(queries)), now=now, region=region
            )
        )
        for region, queries in by_region.items()
    }
    for region, run in runs.items():
        if not run.wait(deadline - time.monotonic()):
            errors[region] = f"CloudWatch ({region}) did not answer within {budget:g} s"
            continue
        try:
            fetched.update(run.value())
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
