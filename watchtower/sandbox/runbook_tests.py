"""`watchtower runbooks test [ID...]`: every runbook proven in a throwaway sandbox.

The sandbox is started as the demo starts it (the moto server, Redis, PostgreSQL when it is
installed; the platform made by the image core's bootstrap and `sandbox.resources`), reset to
that state before every pass, and stopped at the end. The passes are `watchtower.runbook.testing`'s;
this module is only the sandbox and the command. One line per runbook and pass; exit 1 on any
failure.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import urllib3

from image_core.legacy import PostgresGalleryWriter
from image_core.metadata import DynamoDbMetadata
from watchtower.config import Settings
from watchtower.runbook.engine import Engine
from watchtower.runbook.parser import catalog, default_dir, load
from watchtower.runbook.step_blocks import Catalog
from watchtower.runbook.testing import Fixture, Outcome, Tester, _Calls, watch_client
from watchtower.runtime import Watchtower, build
from watchtower.sandbox import resources, servers

TABLE = "images"
BUCKET = "images"
FUNCTION = "image-api"
REGION = "us-east-1"
# disable-dual-write carries no fixture of its own yet (another change owns that file): with no
# dual-write history in a fresh sandbox its pre-flight gate refuses, and the run ends there, as
# that runbook documents.
FIXTURES = {"disable-dual-write": Fixture(expect={"preflight-report": "failed"})}


class Platform:
    """The demo's AWS resources in moto, and the image service's Redis; reset between passes."""

    def __init__(self, moto_url: str, redis_client: Any) -> None:
        self.url = moto_url
        self.redis = redis_client
        self.client = functools.cache(lambda service: resources.client(service, moto_url))
        self.distribution = ""

    def reset(self) -> None:
        urllib3.request("POST", f"{self.url}/moto-api/reset", timeout=10)
        if self.redis is not None:
            self.redis.flushdb()
        DynamoDbMetadata(self.client("dynamodb"), TABLE).bootstrap()
        self.client("s3").create_bucket(Bucket=BUCKET)
        made = resources.create(
            self.url, function=FUNCTION, table=TABLE, bucket=BUCKET, dual_write=True
        )
        self.distribution = made.distribution_id

    def setup(self, name: str, spec: Any) -> None:
        dynamodb = self.client("dynamodb")
        if name == "dynamodb_table" and spec.get("billing") == "PROVISIONED":
            indexes = dynamodb.describe_table(TableName=TABLE)["Table"].get(
                "GlobalSecondaryIndexes", []
            )
            capacity = {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
            dynamodb.update_table(
                TableName=TABLE,
                BillingMode="PROVISIONED",
                ProvisionedThroughput=capacity,
                GlobalSecondaryIndexUpdates=[
                    {"Update": {"IndexName": i["IndexName"], "ProvisionedThroughput": capacity}}
                    for i in indexes
                ],
            )
        elif name == "dynamodb_table":
            return
        elif name == "metric":
            self.client("cloudwatch").put_metric_data(
                Namespace=spec["namespace"],
                MetricData=[
                    {
                        "MetricName": spec["name"],
                        "Dimensions": [
                            {"Name": k, "Value": v} for k, v in spec.get("dimensions", {}).items()
                        ],
                        "Timestamp": datetime.now(UTC) - timedelta(minutes=1),
                        "Value": float(spec["value"]),
                        "Unit": "Count",
                    }
                ],
            )
        elif name == "lambda_environment":
            self.client("lambda").update_function_configuration(
                FunctionName=FUNCTION, Environment={"Variables": dict(spec)}
            )
        else:
            raise ValueError(
                f"the sandbox has no setup {name!r} (dynamodb_table, metric, lambda_environment)"
            )

    def snapshot(self) -> dict[str, Any]:
        lam = self.client("lambda")
        config = lam.get_function_configuration(FunctionName=FUNCTION)
        concurrency = lam.get_function_concurrency(FunctionName=FUNCTION)
        table = self.client("dynamodb").describe_table(TableName=TABLE)["Table"]
        return {
            "lambda.environment": config.get("Environment", {}).get("Variables", {}),
            "lambda.reserved": concurrency.get("ReservedConcurrentExecutions"),
            "dynamodb.billing": table.get("BillingModeSummary", {}).get("BillingMode"),
            "dynamodb.throughput": {
                k: v
                for k, v in table.get("ProvisionedThroughput", {}).items()
                if k in ("ReadCapacityUnits", "WriteCapacityUnits")
            },
            "redis.keys": sorted(self.redis.scan_iter(count=500)) if self.redis is not None else [],
        }


@contextmanager
def sandbox(log: Any = print) -> Iterator[tuple[Platform, Watchtower]]:
    """The throwaway sandbox and a Watchtower over it; everything stopped afterwards."""
    # The sandbox's dummy credentials, for every client this process makes (checks, queries).
    for name, value in resources.SANDBOX_CREDENTIALS.items():
        os.environ.setdefault(name, value)
    workdir = Path(tempfile.mkdtemp(prefix="watchtower-runbooks-test-"))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, True)
        moto = servers.start_moto()
        stack.callback(moto.stop)
        moto.configure_lambda_without_docker()
        redis_server = servers.start_redis()
        stack.callback(redis_server.stop)
        database = f"sqlite:///{workdir / 'watchtower.sqlite'}"
        legacy = None
        try:
            postgres = servers.start_postgres()
        except servers.ServerUnavailable as exc:
            log(f"PostgreSQL unavailable ({exc}); the runbook store is SQLite, no legacy table")
        else:
            stack.callback(postgres.stop)
            database = legacy = postgres.url
            # The legacy table, as the demo has it, for the runbooks that read or backfill it.
            writer = PostgresGalleryWriter(legacy)
            writer.bootstrap()
            writer.close()
        wt = build(
            Settings(
                database_url=database,
                aws_endpoint_url=moto.url,
                region=REGION,
                table=TABLE,
                bucket=BUCKET,
                lambda_function=FUNCTION,
                image_redis_url=redis_server.url,
                legacy_database_url=legacy,
                secret_key="runbooks-test-" + str(time.time_ns()),
            )
        )
        stack.callback(wt.close)
        import redis

        client = redis.Redis.from_url(redis_server.url, decode_responses=True)
        stack.callback(client.close)
        platform = Platform(moto.url, client)
        platform.reset()
        yield platform, wt


def tester(platform: Platform, wt: Watchtower, known: Catalog | None = None) -> Tester:
    base = wt.runbooks

    def make_engine(watched: Catalog, calls: _Calls) -> Engine:
        clients = functools.cache(
            lambda service: watch_client(resources.client(service, platform.url), calls)
        )
        settings = dataclasses.replace(
            base.settings, cloudfront_distribution_id=platform.distribution
        )
        engine = Engine(
            store=base.store,
            runbooks=base.runbooks,
            catalog=watched,
            settings=settings,
            checks=base.checks,
            queries=base.queries,
            aws=clients,
            redis=lambda: platform.redis,
            retry_delay=0.0,
            cutover=base.cutover,
        )
        engine.steps.verifier.sleep = lambda seconds: None
        return engine

    return Tester(
        sandbox=platform, catalog=known or catalog(), make_engine=make_engine, fixtures=FIXTURES
    )


def run(ids: tuple[str, ...], *, echo: Any = print) -> list[Outcome]:
    began = time.monotonic()
    results: list[Outcome] = []
    files, _problems = load([default_dir()], catalog())
    missing = [i for i in ids if i not in files]
    if missing:
        names = ", ".join(sorted(files))
        raise click.UsageError(f"no runbook {', '.join(missing)} (known: {names})")
    with sandbox(log=echo) as (platform, wt):
        known = wt.runbooks.runbooks
        t = tester(platform, wt)
        for runbook_id in ids or tuple(sorted(known)):
            for outcome in t.test(known[runbook_id]):
                echo(outcome.line())
                results.append(outcome)
    failed = sum(not r.ok for r in results)
    echo(f"{len(results)} passes, {failed} failed, in {time.monotonic() - began:.1f} s")
    return results


@click.command("test")
@click.argument("ids", nargs=-1)
def test_command(ids: tuple[str, ...]) -> None:
    """Prove runbooks in a throwaway sandbox: dry run, real run, failure injection."""
    results = run(ids, echo=click.echo)
    if not results or not all(r.ok for r in results):
        sys.exit(1)
