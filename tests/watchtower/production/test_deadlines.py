"""Every reading within a deadline: a source that does not answer gives a named result on time.

The sources here hang on an event (as a frozen process would), so the tests are quick and exact;
test_frozen_sources.py and test_frozen_postgres.py freeze the real moto, Redis and PostgreSQL with
SIGSTOP.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from watchtower.checks import registry
from watchtower.checks.base import MetricQuery, Series, Sources, TableSql
from watchtower.checks.runner import run_checks
from watchtower.config import Settings
from watchtower.model import Result, Status
from watchtower.probes.base import Probe, ProbeContext
from watchtower.probes.runner import run_probe

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture
def frozen() -> Iterator[threading.Event]:
    """Set at the end of the test: the hung calls return then, and their threads end."""
    thaw = threading.Event()
    yield thaw
    thaw.set()


class HungMetrics:
    def __init__(self, thaw: threading.Event) -> None:
        self.thaw = thaw

    def fetch(
        self, queries: Sequence[MetricQuery], *, now: datetime, region: str
    ) -> dict[MetricQuery, Series]:
        self.thaw.wait(30)
        return {}


class NoMetrics:
    def fetch(
        self, queries: Sequence[MetricQuery], *, now: datetime, region: str
    ) -> dict[MetricQuery, Series]:
        return {}


class HungSql:
    table = "gallery_images"

    def __init__(self, thaw: threading.Event) -> None:
        self.thaw = thaw

    def scalar(self, sql: str | TableSql, params: Mapping[str, Any]) -> Any:
        self.thaw.wait(30)
        return 0


def cycle(settings: Settings, sources: Sources, *names: str) -> tuple[dict[str, Result], float]:
    checks = registry()
    started = time.monotonic()
    results = run_checks([checks[n] for n in names], settings=settings, sources=sources, now=NOW)
    return {r.name: r for r in results}, time.monotonic() - started


def test_a_hung_cloudwatch_gives_each_check_a_named_unknown_on_time(
    frozen: threading.Event,
) -> None:
    settings = Settings(check_deadline_seconds=1)
    results, took = cycle(
        settings, Sources(metrics=HungMetrics(frozen)), "dynamodb_writes", "upload_success"
    )
    assert took < 2.0
    for name in ("dynamodb_writes", "upload_success"):
        assert results[name].status is Status.UNKNOWN
        assert results[name].reason == "CloudWatch (us-east-1) did not answer within 1 s"


def test_a_hung_legacy_postgresql_is_named_and_other_checks_are_unaffected(
    frozen: threading.Event,
) -> None:
    settings = Settings(check_deadline_seconds=1, legacy_database_url="postgresql://x@127.0.0.1/x")
    sources = Sources(metrics=NoMetrics(), legacy_sql=HungSql(frozen))
    results, took = cycle(settings, sources, "postgres_inserts", "dynamodb_throttling")
    assert took < 2.0
    hung = results["postgres_inserts"]
    assert hung.status is Status.UNKNOWN
    assert hung.reason == (
        "the legacy PostgreSQL did not answer within 1 s (the check cycle's deadline)"
    )
    assert "did not answer" not in results["dynamodb_throttling"].reason


class HungProbe(Probe):
    name = "hung_probe"
    title = "Hung probe"
    component = "image_api"

    def __init__(self, thaw: threading.Event) -> None:
        self.thaw = thaw

    def run(self, ctx: ProbeContext) -> Result:
        self.thaw.wait(30)
        return self.result(ctx, Status.OK, "late")


def test_a_hung_probe_run_is_critical_naming_the_api_on_time(frozen: threading.Event) -> None:
    settings = Settings(probe_deadline_seconds=1)

    def ctx() -> ProbeContext:
        return ProbeContext(
            settings=settings, http=None, now=NOW, clock=time.perf_counter, params={}
        )  # type: ignore[arg-type]

    started = time.monotonic()
    results = run_probe(HungProbe(frozen), ctx)
    assert time.monotonic() - started < 1.5
    assert [r.status for r in results] == [Status.CRITICAL]
    assert results[0].reason.startswith(
        f"the image API ({settings.image_api_url}) did not answer within 1 s"
    )
