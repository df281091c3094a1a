"""The repository's runbooks, each end to end in the sandbox (the moto server, Redis and
PostgreSQL): a dry run that changes nothing, then a real run, with people answering."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import psycopg
import pytest
import redis
from botocore.stub import Stubber

from image_core.cache import RedisGalleryCache, generation_key
from image_core.legacy import SCHEMA
from image_core.metadata import DynamoDbMetadata
from tests.watchtower.runbook.conftest import BUCKET, FUNCTION, Aws, Harness, MakeHarness
from watchtower.model import Alert
from watchtower.runbook.model import ExecutionStatus

NAMESPACE = "ImageService"


def fired(name: str, fingerprint: str = "fp") -> Alert:
    return Alert(
        fingerprint=fingerprint,
        status="firing",
        labels={"alertname": name, "severity": "warning"},
        annotations={},
        starts_at=datetime.now(UTC),
    )


def decide(h: Harness, run_id: str, by: str = "ada") -> str:
    """Approve (or confirm) the step the run waits at; returns its id."""
    step = h.get(run_id).waiting_step
    assert step is not None, h.get(run_id).reason
    h.engine.approve(run_id, by=by, comment="tested")
    h.run()
    return step.step_id


def test_image_upload_failures(make_harness: MakeHarness, aws: Aws) -> None:
    aws.bucket()
    aws.function({"IMAGE_TABLE": "images"})
    distribution = aws.distribution()
    h = make_harness(cloudfront_distribution_id=distribution)
    now = h.clock()
    aws.logs(f"/aws/lambda/{FUNCTION}", [(now - timedelta(minutes=1), "INFO all good")])

    dry = h.engine.start("image-upload-failures", params={}, started_by="olive", dry_run=True)
    h.run()
    assert h.status(dry) is ExecutionStatus.SUCCEEDED, h.get(dry).reason
    real = h.engine.start_from_alert(
        "image-upload-failures", alert=fired("ImageUploadProbeFailing"), mode="automatic"
    )
    assert real is not None
    h.run()
    run = h.get(real)
    assert run.status is ExecutionStatus.SUCCEEDED, run.reason
    assert h.steps(real) == {
        "upload-success": "succeeded",
        "probe-history": "skipped",  # no Prometheus configured here
        "dynamodb-throttling": "succeeded",
        "s3-bucket": "succeeded",
        "lambda-errors": "succeeded",
        "lambda-error-logs": "succeeded",
        "cloudfront": "succeeded",
    }
    assert run.reason == "done"

    # The bucket gone: the run still gathers every other piece of evidence, and says which failed.
    aws.client("s3").delete_bucket(Bucket=BUCKET)
    aws.logs(f"/aws/lambda/{FUNCTION}", [(now - timedelta(seconds=30), "ERROR AccessDenied")])
    broken = h.engine.start_from_alert(
        "image-upload-failures", alert=fired("ImageUploadErrors", "fp-2"), mode="automatic"
    )
    assert broken is not None
    h.run()
    run = h.get(broken)
    assert run.reason == "done; went on past failed steps: s3-bucket, lambda-error-logs"
    s3 = {s.step_id: s for s in run.steps}["s3-bucket"]
    assert s3.outputs["error"] == "no such bucket"


def test_dynamodb_throttling(make_harness: MakeHarness, aws: Aws) -> None:
    aws.table(provisioned=True)
    h = make_harness()
    aws.metric(
        "ThrottledRequests",
        12,
        namespace="AWS/DynamoDB",
        at=h.clock() - timedelta(minutes=1),
        TableName="images",
        Operation="PutItem",
    )
    dry = h.engine.start("dynamodb-throttling", params={}, started_by="olive", dry_run=True)
    h.run()
    assert h.status(dry) is ExecutionStatus.SUCCEEDED, h.get(dry).reason
    assert h.steps(dry)["switch-to-on-demand"] == "planned"
    assert h.steps(dry)["access-patterns"] == "planned"
    assert aws.billing_mode() == "PROVISIONED"

    real = h.engine.start_from_alert(
        "dynamodb-throttling", alert=fired("ImageDynamoDBThrottling"), mode="automatic"
    )
    assert real is not None
    h.run()
    # Automatic, but the switch says approval: required.
    assert decide(h, real) == "switch-to-on-demand"
    assert aws.billing_mode() == "PAY_PER_REQUEST"
    assert decide(h, real) == "access-patterns"
    run = h.get(real)
    assert run.status is ExecutionStatus.SUCCEEDED, run.reason
    switch = {s.step_id: s for s in run.steps}["switch-to-on-demand"]
    assert switch.outputs["post_check"]["held"] is True
    assert switch.outputs["previous_mode"] == "PROVISIONED"


def test_cloudfront_cache_invalidation(make_harness: MakeHarness, aws: Aws, redis_url: str) -> None:
    distribution = aws.distribution(default_ttl=300)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    cache = RedisGalleryCache(client, ttl=600)
    for n in range(5):
        cache.put_page("u-9", 20, f"c{n}", {"items": [n]}, "0")
    cache.put_page("u-10", 20, None, {"items": []}, "0")
    h = make_harness(
        cloudfront_distribution_id=distribution, image_redis_url=redis_url, redis=lambda: client
    )
    try:
        params = {"user": "u-9", "paths": "/thumbnails/u-9/*, /originals/u-9/*"}
        dry = h.engine.start(
            "cloudfront-cache-invalidation", params=params, started_by="olive", dry_run=True
        )
        h.run()
        assert h.status(dry) is ExecutionStatus.SUCCEEDED, h.get(dry).reason
        steps = {s.step_id: s for s in h.get(dry).steps}
        assert steps["invalidate"].plan[0]["parameters"]["InvalidationBatch"]["Paths"] == {
            "Quantity": 2,
            "Items": ["/thumbnails/u-9/*", "/originals/u-9/*"],
        }
        assert steps["user-gallery"].status.value == "planned"
        assert aws.invalidations(distribution) == []
        assert client.dbsize() == 6

        real = h.engine.start("cloudfront-cache-invalidation", params=params, started_by="olive")
        h.run()
        # The default TTL (300 s) is below the minimum: a person is asked to raise it.
        assert decide(h, real, by="olive") == "ttl"  # a manual step: its starter may confirm
        assert decide(h, real) == "invalidate"
        run = h.get(real)
        assert run.status is ExecutionStatus.SUCCEEDED, run.reason
        invalidate = {s.step_id: s for s in run.steps}["invalidate"]
        assert invalidate.outputs["post_check"]["outputs"]["completed"] is True
        assert len(aws.invalidations(distribution)) == 1
        assert cache.get_page("u-9", 20, "c1").page is None
        assert cache.get_page("u-10", 20, None).page == {"items": []}
        assert client.exists(generation_key("u-9"))
    finally:
        client.close()


class SplitLambda:
    """The moto server's Lambda client, except for the provisioned-concurrency calls, which the
    moto server does not have (it answers 404): those go to a client stubbed with botocore's
    Stubber, which checks every request against the service model."""

    STUBBED = frozenset(
        {"get_provisioned_concurrency_config", "put_provisioned_concurrency_config"}
    )

    def __init__(self, real: Any, stubbed: Any) -> None:
        self._real = real
        self._stubbed = stubbed

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stubbed if name in self.STUBBED else self._real, name)


@pytest.fixture
def provisioned(aws: Aws) -> Iterator[tuple[Stubber, Any]]:
    stubbed = boto3.client("lambda", endpoint_url=aws.url, region_name="us-east-1")
    with Stubber(stubbed) as stub:
        split = SplitLambda(aws.client("lambda"), stubbed)
        yield stub, lambda service: split if service == "lambda" else aws.client(service)


def test_lambda_cold_starts(
    make_harness: MakeHarness, aws: Aws, provisioned: tuple[Stubber, Any]
) -> None:
    stub, clients = provisioned
    aws.function({"IMAGE_TABLE": "images"})
    h = make_harness(aws_clients=clients)
    now = h.clock()
    lines = []
    for n in range(30):
        line = f"REPORT RequestId: r-{n:04d}\tDuration: 12.34 ms\tBilled Duration: 13 ms\t"
        line += "Memory Size: 512 MB\tMax Memory Used: 80 MB\t"
        if n % 3 == 0:  # a third of the invocations are cold
            line += "Init Duration: 412.50 ms\t"
        lines.append((now - timedelta(seconds=200 - n), line))
    aws.logs(f"/aws/lambda/{FUNCTION}", lines)
    not_found = {"service_error_code": "ProvisionedConcurrencyConfigNotFoundException"}
    where = {"FunctionName": FUNCTION, "Qualifier": "live"}
    stub.add_client_error("get_provisioned_concurrency_config", expected_params=where, **not_found)

    dry = h.engine.start("lambda-cold-starts", params={}, started_by="olive", dry_run=True)
    h.run()
    assert h.status(dry) is ExecutionStatus.SUCCEEDED, h.get(dry).reason
    steps = {s.step_id: s for s in h.get(dry).steps}
    assert steps["cold-starts"].outputs["figures"]["cold_starts"] == 10
    assert steps["provisioned-now"].outputs["status"] == "NONE"
    assert steps["provision"].plan[0]["parameters"] == {
        **where,
        "ProvisionedConcurrentExecutions": 2,
    }
    assert steps["bundle"].status.value == "skipped"  # the test bundle is tiny
    stub.assert_no_pending_responses()  # the dry run put nothing

    stub.add_client_error("get_provisioned_concurrency_config", expected_params=where, **not_found)
    real = h.engine.start("lambda-cold-starts", params={"provisioned": "4"}, started_by="olive")
    h.run()
    stub.add_client_error("get_provisioned_concurrency_config", expected_params=where, **not_found)
    stub.add_response(
        "put_provisioned_concurrency_config",
        {"RequestedProvisionedConcurrentExecutions": 4, "Status": "IN_PROGRESS"},
        expected_params={**where, "ProvisionedConcurrentExecutions": 4},
    )
    stub.add_response(
        "get_provisioned_concurrency_config",
        {"RequestedProvisionedConcurrentExecutions": 4, "Status": "IN_PROGRESS"},
        expected_params=where,
    )
    assert decide(h, real) == "provision"
    run = h.get(real)
    assert run.status is ExecutionStatus.SUCCEEDED, run.reason
    stub.assert_no_pending_responses()


def _dual_write_platform(aws: Aws, legacy_url: str, at: datetime, *, failures: float = 0) -> None:
    aws.function(
        {"ENABLE_DYNAMODB_DUAL_WRITE": "true", "IMAGE_TABLE": "images", "IMAGE_LEGACY_URL": "pg"}
    )
    for hours in (1, 30, 100):
        aws.metric(
            "DualWrites",
            4000,
            namespace=NAMESPACE,
            at=at - timedelta(hours=hours),
            Outcome="success",
        )
    if failures:
        aws.metric(
            "DualWrites",
            failures,
            namespace=NAMESPACE,
            at=at - timedelta(hours=2),
            Outcome="failure",
        )
    with psycopg.connect(legacy_url, autocommit=True) as conn:
        conn.execute(SCHEMA)
    # The gate reconciles DynamoDB's image records with gallery_images: both empty here, agreeing.
    DynamoDbMetadata(aws.client("dynamodb"), "images").bootstrap()


def test_disable_dual_write(make_harness: MakeHarness, aws: Aws, legacy_url: str) -> None:
    h = make_harness(legacy_database_url=legacy_url)
    _dual_write_platform(aws, legacy_url, h.clock())
    before = aws.environment()

    dry = h.engine.start("disable-dual-write", params={}, started_by="olive", dry_run=True)
    h.run()
    assert h.status(dry) is ExecutionStatus.SUCCEEDED, h.get(dry).reason
    assert h.steps(dry) == {
        "preflight-report": "planned",
        "preflight-legacy-inserts": "succeeded",
        "preflight-dynamodb-writes": "succeeded",
        "read-alias": "skipped",  # served unqualified: no alias
        "flip-alias": "skipped",
        "flip": "planned",
        "verify": "skipped",
        "start-monitoring": "planned",
    }
    assert aws.environment() == before

    real = h.engine.start("disable-dual-write", params={}, started_by="olive")
    h.run()
    run = h.get(real)
    preflight = {s.step_id: s for s in run.evidence()}["preflight-report"]
    assert preflight.outputs["gate"] == "passed"
    assert preflight.outputs["attempts"] == 12000
    assert preflight.outputs["success_ratio"] == 1.0
    with pytest.raises(Exception, match="second operator"):
        h.engine.approve(real, by="olive")
    assert decide(h, real) == "flip"
    run = h.get(real)
    assert run.status is ExecutionStatus.SUCCEEDED, run.reason
    assert aws.environment() == {**before, "ENABLE_DYNAMODB_DUAL_WRITE": "false"}
    audit = [(a.actor, a.action) for a in h.engine.audit(real)]
    assert ("ada", "approved") in audit
    assert audit[-1] == ("watchtower", "cutover.window_started")
    window = {s.step_id: s for s in run.steps}["start-monitoring"].outputs
    assert window["hours"] == 24


def test_disable_dual_write_refuses_when_the_gate_fails(
    make_harness: MakeHarness, aws: Aws, legacy_url: str
) -> None:
    h = make_harness(legacy_database_url=legacy_url)
    _dual_write_platform(aws, legacy_url, h.clock(), failures=40)
    run_id = h.engine.start("disable-dual-write", params={}, started_by="olive")
    h.run()
    run = h.get(run_id)
    assert run.status is ExecutionStatus.FAILED
    assert run.reason.startswith("step 'preflight-report' failed:")
    assert "pre-flight gate failed" in run.reason
    assert aws.environment()["ENABLE_DYNAMODB_DUAL_WRITE"] == "true"


def test_rollback_dual_write(make_harness: MakeHarness, aws: Aws) -> None:
    aws.function({"ENABLE_DYNAMODB_DUAL_WRITE": "false", "IMAGE_TABLE": "images"})
    h = make_harness()
    dry = h.engine.start("rollback-dual-write", params={}, started_by="olive", dry_run=True)
    h.run()
    assert h.status(dry) is ExecutionStatus.SUCCEEDED, h.get(dry).reason
    assert aws.environment()["ENABLE_DYNAMODB_DUAL_WRITE"] == "false"

    real = h.engine.start_from_alert(
        "rollback-dual-write", alert=fired("LegacyInsertsAfterCutover"), mode="suggest"
    )
    assert real is not None
    h.run()
    assert decide(h, real) == "re-enable"
    # Suggested by an alert: every step that changes anything waits, even the record.
    assert decide(h, real, by="olive") == "record"
    run = h.get(real)
    assert run.status is ExecutionStatus.SUCCEEDED, run.reason
    assert aws.environment() == {"ENABLE_DYNAMODB_DUAL_WRITE": "true", "IMAGE_TABLE": "images"}
    assert [(a.actor, a.action) for a in h.engine.audit(real)][-1] == (
        "watchtower",
        "cutover.rolled_back",
    )
