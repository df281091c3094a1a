"""Runs a probe, confirming a failure with one immediate retry before it is reported critical.

This module and the scheduler are the only places that read the real clock (`context_factory`);
probes get `now` and `clock` through their context.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime

from watchtower.config import Settings
from watchtower.model import Result, Status
from watchtower.probes.base import Http, Probe, ProbeContext

log = logging.getLogger(__name__)

FLAKE_PREFIX = "failed once, passed on immediate retry: "


def run_probe(probe: Probe, ctx_factory: Callable[[], ProbeContext]) -> list[Result]:
    """Run `probe`; a critical run is retried once at once, and both runs are returned.

    The list is in the order the runs happened and every result in it is meant to be stored:
    * `[ok]` or `[warning]`: no retry.
    * `[critical, critical (attempt=2)]`: the failure is confirmed; page.
    * `[warning, ok or warning (attempt=2)]`: the first run failed and the retry passed, so the
      first run is reported as `warning` with reason "failed once, passed on immediate retry: …"
      (its steps still show which one failed). One lost packet pages no one, yet a flaky
      service stays visible.
    * `[unknown]`: the probe itself broke (a bug, not the API); not retried.

    The whole run has a deadline (`Settings.probe_deadline_seconds`, under the interval): when it
    passes, one critical result names the image API and the wait, on time.

    The run's effective status is the worst in the list (`effective_status`): with the downgrade
    above, it is critical only when the retry failed too. A retry that ends `unknown` does not
    clear the first failure.
    """
    ctx = ctx_factory()
    budget = float(ctx.settings.probe_deadline_seconds)
    done: list[list[Result]] = []
    worker = threading.Thread(
        target=lambda: done.append(_run(probe, ctx, ctx_factory)),
        name=f"probe-{probe.name}",
        daemon=True,
    )
    worker.start()
    worker.join(budget)
    if done:
        return done[0]
    # The run is abandoned (its requests end with their own timeouts); the slot is not lost.
    return [
        probe.result(
            ctx,
            Status.CRITICAL,
            f"the image API ({ctx.settings.image_api_url}) did not answer within {budget:g} s: "
            f"the {probe.name} run, retry included, passed its deadline",
        )
    ]


def _run(probe: Probe, ctx: ProbeContext, ctx_factory: Callable[[], ProbeContext]) -> list[Result]:
    first = _attempt(probe, ctx)
    if first.status is not Status.CRITICAL:
        return [first]
    retry = replace(_attempt(probe, ctx_factory()), attempt=2)
    if retry.status not in (Status.OK, Status.WARNING):
        return [first, retry]
    return [replace(first, status=Status.WARNING, reason=FLAKE_PREFIX + first.reason), retry]


def effective_status(results: Iterable[Result]) -> Status:
    """The status one `run_probe` call stands for: the worst of its results."""
    return Status.worst([r.status for r in results])


def context_factory(
    settings: Settings, http: Http, params: Mapping[str, float] | None = None
) -> Callable[[], ProbeContext]:
    """Contexts stamped with the real clock, one per attempt."""

    def make() -> ProbeContext:
        return ProbeContext(
            settings=settings,
            http=http,
            now=datetime.now(UTC),
            clock=time.perf_counter,
            params=dict(params or {}),
        )

    return make


def _attempt(probe: Probe, ctx: ProbeContext) -> Result:
    try:
        return probe.run(ctx)
    except Exception as exc:  # a broken probe must not stop the scheduler
        log.exception("probe %s failed", probe.name)
        return probe.result(
            ctx,
            Status.UNKNOWN,
            f"the probe failed: {type(exc).__name__}: {exc} (a bug; see the log)",
        )
