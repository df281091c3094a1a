"""`run_probe`: a failure is confirmed by one immediate retry before it is reported critical."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import urllib3
from flask import Response

from image_core.app import Components
from tests.watchtower.probes.conftest import Proxy, Seen, leftovers
from watchtower.config import Settings
from watchtower.model import Result, Status
from watchtower.probes.base import Probe, ProbeContext
from watchtower.probes.runner import FLAKE_PREFIX, context_factory, effective_status, run_probe
from watchtower.probes.upload_get import UploadGet

MakeProxy = Callable[..., tuple[Proxy, str]]


def test_a_failure_that_passes_on_retry_is_a_warning_with_both_results(
    image_api: str, components: Components, http: urllib3.PoolManager, make_proxy: MakeProxy
) -> None:
    def first_upload_lost(proxy: Proxy, seen: Seen) -> Response | None:
        if seen.method == "POST" and proxy.count("POST") == 1:
            return Response("<html>bad gateway</html>", status=502, content_type="text/html")
        return None

    _, url = make_proxy(image_api, first_upload_lost)
    results = run_probe(UploadGet(), context_factory(Settings(image_api_url=url), http))

    assert [(r.attempt, r.status) for r in results] == [(1, Status.WARNING), (2, Status.OK)]
    assert results[0].reason == FLAKE_PREFIX + "upload failed: expected 201, got HTTP 502"
    assert results[0].failed_step is not None and results[0].failed_step.name == "upload"
    assert effective_status(results) is Status.WARNING
    assert leftovers(components) == []


def test_a_failure_confirmed_by_the_retry_is_critical(
    closed_url: str, http: urllib3.PoolManager
) -> None:
    results = run_probe(UploadGet(), context_factory(Settings(image_api_url=closed_url), http))

    assert [(r.attempt, r.status) for r in results] == [(1, Status.CRITICAL), (2, Status.CRITICAL)]
    assert all(r.reason.startswith("image API unreachable: ") for r in results)
    assert effective_status(results) is Status.CRITICAL


class Scripted(Probe):
    """Answers the statuses it is given, one per run; an exception is raised as a broken probe."""

    name = "scripted"
    title = "Scripted"
    component = "test"

    def __init__(self, *outcomes: Status | Exception) -> None:
        self.outcomes = list(outcomes)
        self.runs = 0

    def run(self, ctx: ProbeContext) -> Result:
        self.runs += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return self.result(ctx, outcome, f"run {self.runs}")


def factory() -> Callable[[], ProbeContext]:
    # Scripted probes make no requests: the pool is never used, so it holds no sockets.
    return lambda: ProbeContext(
        settings=Settings(),
        http=urllib3.PoolManager(),
        now=datetime(2025, 1, 1, tzinfo=UTC),
        clock=iter(range(1000)).__next__,
    )


def test_ok_and_warning_are_not_retried() -> None:
    for status in (Status.OK, Status.WARNING):
        probe = Scripted(status)
        results = run_probe(probe, factory())
        assert [(r.attempt, r.status) for r in results] == [(1, status)] and probe.runs == 1


def test_a_broken_probe_is_unknown_and_not_retried() -> None:
    probe = Scripted(KeyError("id"))
    [result] = run_probe(probe, factory())
    assert result.status is Status.UNKNOWN and probe.runs == 1
    assert result.reason.startswith("the probe failed: KeyError")


def test_a_retry_that_cannot_tell_does_not_clear_the_failure() -> None:
    results = run_probe(Scripted(Status.CRITICAL, RuntimeError("bug")), factory())
    assert [(r.attempt, r.status) for r in results] == [(1, Status.CRITICAL), (2, Status.UNKNOWN)]
    assert results[0].reason == "run 1"
    assert effective_status(results) is Status.CRITICAL


def test_a_retry_that_passes_slowly_still_clears_the_page() -> None:
    results = run_probe(Scripted(Status.CRITICAL, Status.WARNING), factory())
    assert [(r.attempt, r.status) for r in results] == [(1, Status.WARNING), (2, Status.WARNING)]
    assert results[0].reason == FLAKE_PREFIX + "run 1"
