"""Fixtures for the runbook engine: an Engine over a fresh SQLite store, real checks and
sources against the moto server, real actions, and a clock the test moves by hand."""

from __future__ import annotations

import functools
import textwrap
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import urllib3
from sqlalchemy import Engine as SqlEngine

from tests.helpers import create_function
from watchtower.checks import registry as check_registry
from watchtower.config import Settings
from watchtower.cutover.config import CutoverSettings
from watchtower.runbook.adapters import PlatformQueries, WatchtowerChecks
from watchtower.runbook.engine import CheckRunner, Engine
from watchtower.runbook.model import Execution, ExecutionStatus
from watchtower.runbook.parser import catalog, load
from watchtower.runbook.store import RunbookStore
from watchtower.runtime import build_cutover, build_sources
from watchtower.sandbox.servers import MotoServer
from watchtower.store import HistoryStore, engine_for

FUNCTION = "image-api"
TABLE = "images"
BUCKET = "image-bucket"
REPO_RUNBOOKS = Path(__file__).resolve().parents[3] / "runbooks"


class Clock:
    """Now, moved by the test; like a real clock, each reading is a little later."""

    def __init__(self, start: datetime | None = None) -> None:
        self.at = start or datetime.now(UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            self.at += timedelta(microseconds=1)
            return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


class Aws:
    """boto3 clients for the moto server, to arrange the platform and read it back."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client: Callable[[str], Any] = functools.cache(
            lambda service: boto3.client(service, endpoint_url=url, region_name="us-east-1")
        )

    def function(self, environment: Mapping[str, str], name: str = FUNCTION) -> None:
        create_function(self.client("iam"), self.client("lambda"), name, dict(environment))

    def environment(self, name: str = FUNCTION) -> dict[str, str]:
        config = self.client("lambda").get_function_configuration(FunctionName=name)
        return dict(config["Environment"]["Variables"])

    def table(self, *, provisioned: bool, name: str = TABLE) -> None:
        extra: dict[str, Any] = (
            {
                "BillingMode": "PROVISIONED",
                "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
            }
            if provisioned
            else {"BillingMode": "PAY_PER_REQUEST"}
        )
        index: dict[str, Any] = {
            "IndexName": "by_user",
            "KeySchema": [{"AttributeName": "gsi1pk", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "ALL"},
        }
        if provisioned:
            index["ProvisionedThroughput"] = {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
        self.client("dynamodb").create_table(
            TableName=name,
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "gsi1pk", "AttributeType": "S"},
            ],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            GlobalSecondaryIndexes=[index],
            **extra,
        )

    def billing_mode(self, name: str = TABLE) -> str:
        table = self.client("dynamodb").describe_table(TableName=name)["Table"]
        return str(table["BillingModeSummary"]["BillingMode"])

    def bucket(self, name: str = BUCKET) -> None:
        self.client("s3").create_bucket(Bucket=name)

    def distribution(self, default_ttl: int = 86400) -> str:
        answer = self.client("cloudfront").create_distribution(
            DistributionConfig={
                "CallerReference": "watchtower-tests",
                "Origins": {
                    "Quantity": 1,
                    "Items": [
                        {
                            "Id": "images",
                            "DomainName": f"{BUCKET}.s3.amazonaws.com",
                            "S3OriginConfig": {"OriginAccessIdentity": ""},
                        }
                    ],
                },
                "DefaultCacheBehavior": {
                    "TargetOriginId": "images",
                    "ViewerProtocolPolicy": "redirect-to-https",
                    "MinTTL": 0,
                    "DefaultTTL": default_ttl,
                    "MaxTTL": 31536000,
                    "ForwardedValues": {"QueryString": False, "Cookies": {"Forward": "none"}},
                },
                "Comment": "",
                "Enabled": True,
            }
        )
        return str(answer["Distribution"]["Id"])

    def invalidations(self, distribution: str) -> list[dict[str, Any]]:
        answer = self.client("cloudfront").list_invalidations(DistributionId=distribution)
        return list(answer["InvalidationList"].get("Items", []))

    def metric(
        self, name: str, value: float, *, namespace: str, at: datetime, **dimensions: str
    ) -> None:
        self.client("cloudwatch").put_metric_data(
            Namespace=namespace,
            MetricData=[
                {
                    "MetricName": name,
                    "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
                    "Timestamp": at,
                    "Value": value,
                    "Unit": "Count",
                }
            ],
        )

    def logs(self, group: str, lines: list[tuple[datetime, str]]) -> None:
        logs = self.client("logs")
        if not logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]:
            logs.create_log_group(logGroupName=group)
        # Named as Lambda names an unqualified invocation's stream: the checks read it by version.
        stream = f"{lines[0][0]:%Y/%m/%d}/[$LATEST]{len(lines)}-{lines[0][0].timestamp()}"
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
        logs.put_log_events(
            logGroupName=group,
            logStreamName=stream,
            logEvents=[{"timestamp": int(t.timestamp() * 1000), "message": m} for t, m in lines],
        )


@pytest.fixture
def aws(moto: MotoServer) -> Aws:
    return Aws(moto.url)


@dataclass
class Harness:
    """An engine as the runtime builds it, with a clock the test moves."""

    engine: Engine
    store: RunbookStore
    clock: Clock
    settings: Settings
    database: SqlEngine
    made: list[Engine] = field(default_factory=list)

    def run(self) -> int:
        return self.engine.run_pending()

    def get(self, execution_id: str) -> Execution:
        return self.engine.get(execution_id)

    def status(self, execution_id: str) -> ExecutionStatus:
        return self.engine.get(execution_id).status

    def steps(self, execution_id: str) -> dict[str, str]:
        return {s.step_id: s.status.value for s in self.engine.get(execution_id).steps}


def write_runbook(directory: Path, runbook_id: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{runbook_id}.md"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


MakeHarness = Callable[..., Harness]


@pytest.fixture
def make_harness(moto: MotoServer, tmp_path: Path) -> Iterator[MakeHarness]:
    made: list[Harness] = []
    database = engine_for(f"sqlite:///{tmp_path / 'runbooks.sqlite'}")
    clock = Clock()

    def make(
        *,
        runbooks: Path | list[Path] = REPO_RUNBOOKS,
        checks: Callable[[CheckRunner], CheckRunner] | None = None,
        aws_clients: Callable[[str], Any] | None = None,
        redis: Callable[[], Any] | None = None,
        worker_id: str | None = None,
        approval_timeout: timedelta = timedelta(hours=1),
        lease: timedelta = timedelta(seconds=60),
        poll_seconds: float = 0.05,
        nice: int = 0,
        **overrides: Any,
    ) -> Harness:
        values: dict[str, Any] = {
            "aws_endpoint_url": moto.url,
            "region": "us-east-1",
            "database_url": f"sqlite:///{tmp_path / 'runbooks.sqlite'}",
            "lambda_function": FUNCTION,
            "table": TABLE,
            "bucket": BUCKET,
        }
        values.update(overrides)
        settings = Settings(**values)
        store = RunbookStore(database)
        store.create_schema()
        known = catalog()
        found, problems = load(runbooks if isinstance(runbooks, list) else [runbooks], known)
        assert not problems, [str(p) for p in problems]
        sources = build_sources(settings)
        check_runner: CheckRunner = WatchtowerChecks(check_registry(), settings, sources)
        if checks is not None:
            check_runner = checks(check_runner)
        client = aws_clients or functools.cache(
            lambda service: boto3.client(service, endpoint_url=moto.url, region_name="us-east-1")
        )
        history = HistoryStore(database)
        history.create_schema()
        cutover = build_cutover(
            settings,
            CutoverSettings(),
            database,
            history,
            sources,
            lambda service, region=None: client(service),
            runs=store,
        )
        engine = Engine(
            store=store,
            runbooks=found,
            catalog=known,
            settings=settings,
            checks=check_runner,
            queries=PlatformQueries(
                settings=settings,
                sources=sources,
                http=urllib3.PoolManager(),
                prometheus_url=settings.prometheus_url,
                legacy_database_url=settings.legacy_database_url,
            ),
            aws=client,
            redis=redis,
            clock=clock,
            approval_timeout=approval_timeout,
            lease=lease,
            poll_seconds=poll_seconds,
            nice=nice,
            retry_delay=0.01,
            worker_id=worker_id,
            cutover=cutover,
        )
        harness = Harness(
            engine=engine, store=store, clock=clock, settings=settings, database=database
        )
        made.append(harness)
        return harness

    yield make
    for harness in made:
        harness.engine.stop_worker()
    database.dispose()
