"""`watchtower runbooks test` over every runbook in the repository (make test runs it), and over
broken copies: a compensation removed, an action whose dry run plans other calls than it makes.

The sandbox is the moto server, Redis and PostgreSQL the tests start, arranged by the same
`Platform` the command uses (table, bucket, function, distribution, log group); its state is
read back through boto3 and Redis and compared as plain data.
"""

from __future__ import annotations

import dataclasses
import functools
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis

from image_core.legacy import PostgresGalleryWriter
from tests.watchtower.runbook.conftest import Aws, MakeHarness
from watchtower.runbook.actions.base import ActionContext
from watchtower.runbook.engine import Engine
from watchtower.runbook.model import ApiCall
from watchtower.runbook.parser import catalog, load
from watchtower.runbook.step_blocks import Catalog
from watchtower.runbook.testing import Fixture, Outcome, Tester, _Calls, watch_client
from watchtower.sandbox.runbook_tests import Platform

REPO_RUNBOOKS = Path(__file__).parents[3] / "runbooks"
BUDGET = 90.0  # seconds, for every runbook, on two cores
# disable-dual-write carries no fixture of its own (another change owns that file): with no
# legacy database and no dual-write metrics in the sandbox, its pre-flight gate refuses, and the
# run ends there, as that runbook documents.
FIXTURES = {"disable-dual-write": Fixture(expect={"preflight-report": "failed"})}


@pytest.fixture
def tester(
    make_harness: MakeHarness, aws: Aws, redis_url: str, legacy_url: str
) -> Iterator[Callable[..., Tester]]:
    cache = redis.Redis.from_url(redis_url, decode_responses=True)
    sandbox = Platform(aws.url, cache)  # the platform `watchtower runbooks test` uses
    sandbox.reset()
    # The legacy table as the demo has it, for the runbooks that read or backfill it.
    writer = PostgresGalleryWriter(legacy_url)
    writer.bootstrap()
    writer.close()
    h = make_harness(image_redis_url=redis_url, legacy_database_url=legacy_url, redis=lambda: cache)

    def make(runbooks: Path | None = None, actions: Mapping[str, Any] | None = None) -> Tester:
        def engine(watched: Catalog, calls: _Calls) -> Engine:
            clients = functools.cache(
                lambda service: watch_client(
                    boto3.client(service, endpoint_url=aws.url, region_name="us-east-1"), calls
                )
            )
            found = h.engine.runbooks
            if runbooks is not None:
                found, problems = load([runbooks], known)
                assert not problems, [str(p) for p in problems]
            made = Engine(
                store=h.store,
                runbooks=found,
                catalog=watched,
                settings=dataclasses.replace(
                    h.settings, cloudfront_distribution_id=sandbox.distribution
                ),
                checks=h.engine.checks,
                queries=h.engine.queries,
                aws=clients,
                redis=lambda: cache,
                clock=h.clock,
                retry_delay=0.0,
                cutover=h.engine.cutover,
            )
            made.steps.verifier.sleep = lambda seconds: None
            return made

        known = catalog()
        if actions:
            known = Catalog(checks=known.checks, actions={**known.actions, **actions})
        return Tester(sandbox=sandbox, catalog=known, make_engine=engine, fixtures=FIXTURES)

    yield make
    cache.close()


def report(results: list[Outcome]) -> str:
    return "\n".join(r.line() for r in results)


@pytest.mark.slow
def test_every_runbook_passes_its_dry_run_real_run_and_failure_injection(
    tester: Callable[..., Tester], make_harness: MakeHarness
) -> None:
    t = tester()
    began = time.monotonic()
    results: list[Outcome] = []
    found, problems = load([REPO_RUNBOOKS], catalog())
    assert not problems
    for runbook_id in sorted(found):
        results.extend(t.test(found[runbook_id]))
    took = time.monotonic() - began
    print("\n" + report(results) + f"\n{len(found)} runbooks in {took:.1f} s")
    assert all(r.ok for r in results), report([r for r in results if not r.ok])
    names = {(r.runbook, r.name) for r in results}
    assert ("dynamodb-throttling", "undone:switch-to-on-demand") in names
    assert took < BUDGET


@pytest.mark.slow
def test_a_runbook_whose_compensation_was_removed_fails(
    tester: Callable[..., Tester], tmp_path: Path
) -> None:
    text = (REPO_RUNBOOKS / "dynamodb-throttling.md").read_text()
    start = text.index("compensate:\n  action: dynamodb.set_billing_mode")
    end = text.index("```", start)
    (tmp_path / "dynamodb-throttling.md").write_text(text[:start] + text[end:])
    found, _ = load([tmp_path], catalog())
    results = tester(runbooks=tmp_path).test(found["dynamodb-throttling"])
    (undone,) = [r for r in results if r.name == "undone:switch-to-on-demand"]
    assert not undone.ok and "no compensation" in undone.detail, report(results)
    # The intact copy passes the same pass.
    shutil.copy(REPO_RUNBOOKS / "dynamodb-throttling.md", tmp_path / "dynamodb-throttling.md")
    found, _ = load([tmp_path], catalog())
    results = tester(runbooks=tmp_path).test(found["dynamodb-throttling"])
    assert all(r.ok for r in results), report(results)


def test_an_action_whose_dry_run_differs_from_its_real_calls_fails(
    tester: Callable[..., Tester],
) -> None:
    real = catalog().actions["dynamodb.set_billing_mode"]

    class Liar(type(real)):  # type: ignore[misc]
        def plan(self, values: Mapping[str, Any], ctx: ActionContext) -> list[ApiCall]:
            return [ApiCall(service="dynamodb", operation="UpdateTimeToLive", parameters={})]

    found, _ = load([REPO_RUNBOOKS], catalog())
    t = tester(actions={"dynamodb.set_billing_mode": Liar()})
    results = t.test(found["dynamodb-throttling"])
    (run,) = [r for r in results if r.name == "real"]
    assert not run.ok and "UpdateTimeToLive" in run.detail, report(results)
