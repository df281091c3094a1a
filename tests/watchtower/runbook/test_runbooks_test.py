"""`watchtower runbooks test` over every runbook in the repository (make test runs it), and over
broken copies: a compensation removed, an action whose dry run plans other calls than it makes.

The sandbox is the moto server, Redis and PostgreSQL the tests start, arranged as the demo
arranges its platform (table, bucket, function, distribution, log group); its state is read
back through boto3 and Redis and compared as plain data.
"""

from __future__ import annotations

import dataclasses
import functools
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis
import urllib3

from image_core.legacy import PostgresGalleryWriter
from tests.watchtower.runbook.conftest import FUNCTION, TABLE, Aws, MakeHarness
from watchtower.runbook.actions.base import ActionContext
from watchtower.runbook.engine import Engine
from watchtower.runbook.model import ApiCall
from watchtower.runbook.parser import catalog, load
from watchtower.runbook.step_blocks import Catalog
from watchtower.runbook.testing import Fixture, Outcome, Tester, _Calls, watch_client

REPO_RUNBOOKS = Path(__file__).parents[3] / "runbooks"
BUDGET = 90.0  # seconds, for every runbook, on two cores
# disable-dual-write carries no fixture of its own (another change owns that file): with no
# legacy database and no dual-write metrics in the sandbox, its pre-flight gate refuses, and the
# run ends there, as that runbook documents.
FIXTURES = {"disable-dual-write": Fixture(expect={"preflight-report": "failed"})}


class MotoSandbox:
    """The demo's platform in the moto server (and the image service's Redis)."""

    def __init__(self, aws: Aws, cache: redis.Redis) -> None:
        self.aws = aws
        self.cache = cache
        self.distribution = ""

    def reset(self) -> None:
        urllib3.request("POST", f"{self.aws.url}/moto-api/reset", timeout=10)
        self.cache.flushdb()
        self.aws.client.cache_clear()  # type: ignore[attr-defined]
        self.aws.bucket()
        self.aws.function({"ENABLE_DYNAMODB_DUAL_WRITE": "true", "IMAGE_TABLE": TABLE})
        self.aws.table(provisioned=False)
        self.distribution = self.aws.distribution()

    def setup(self, name: str, spec: Any) -> None:
        if name == "dynamodb_table":
            self.aws.client("dynamodb").delete_table(TableName=TABLE)
            self.aws.client("dynamodb").get_waiter("table_not_exists")
            self.aws.table(provisioned=spec.get("billing") == "PROVISIONED")
        elif name == "metric":
            at = datetime.now(UTC) - timedelta(minutes=1)
            self.aws.metric(
                spec["name"],
                spec["value"],
                namespace=spec["namespace"],
                at=at,
                **spec.get("dimensions", {}),
            )
        elif name == "lambda_environment":
            self.aws.client("lambda").update_function_configuration(
                FunctionName=FUNCTION, Environment={"Variables": dict(spec)}
            )
        else:
            raise ValueError(f"the sandbox has no setup {name!r}")

    def snapshot(self) -> dict[str, Any]:
        client = self.aws.client
        config = client("lambda").get_function_configuration(FunctionName=FUNCTION)
        concurrency = client("lambda").get_function_concurrency(FunctionName=FUNCTION)
        table = client("dynamodb").describe_table(TableName=TABLE)["Table"]
        return {
            "lambda.environment": config.get("Environment", {}).get("Variables", {}),
            "lambda.reserved": concurrency.get("ReservedConcurrentExecutions"),
            "dynamodb.billing": table.get("BillingModeSummary", {}).get("BillingMode"),
            "dynamodb.throughput": {
                k: v
                for k, v in table.get("ProvisionedThroughput", {}).items()
                if k in ("ReadCapacityUnits", "WriteCapacityUnits")
            },
            "redis.keys": sorted(self.cache.scan_iter(count=500)),  # SCAN, never KEYS
        }


@pytest.fixture
def tester(
    make_harness: MakeHarness, aws: Aws, redis_url: str, legacy_url: str
) -> Iterator[Callable[..., Tester]]:
    cache = redis.Redis.from_url(redis_url, decode_responses=True)
    sandbox = MotoSandbox(aws, cache)
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
