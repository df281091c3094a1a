"""Issue 13's sandbox acceptance run, automated in controlled time: dual-write is off and the
window open, users keep uploading, Watchtower's sampler is stopped for 10 minutes of the window,
it starts again, then `rollback-dual-write` runs. The hole is backfilled (gallery_images holds
every upload made while the flag was off), the stores reconcile to zero differences, and the
window's evidence marks the two slots read back after the outage as backfilled.

Real parts: the image core's HTTP API and upload path (S3, DynamoDB and its CloudWatch metrics,
all on the moto server), the function's flag in moto's Lambda, PostgreSQL's gallery_images, and
Watchtower as the composition root builds it: the cutover sampler and the runbook engine running
the repository's rollback runbook, with an approval. Time is controlled: the image core's clock
(each record's created_at, each metric's timestamp) and the sampler's `now` are set by hand, in
the production's 5-minute slots, starting two hours ago; the runbook runs at the real now.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import boto3
import psycopg
import pytest

from image_core import aws as core_aws
from image_core.api import create_app
from image_core.app import Components, bootstrap
from image_core.app import build as build_core
from image_core.config import Settings as CoreSettings
from image_core.service import ImageService
from image_core.telemetry import CloudWatchSink, Telemetry
from tests.helpers import image_bytes
from tests.watchtower.checks.conftest import World
from tests.watchtower.cutover.conftest import TABLE, Legacy
from watchtower.config import Settings
from watchtower.cutover.config import CutoverSettings
from watchtower.cutover.judge import State, slot_at
from watchtower.cutover.model import BACKFILL
from watchtower.runbook.model import ExecutionStatus
from watchtower.runtime import build
from watchtower.sandbox.servers import MotoServer

FIVE = timedelta(minutes=5)


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at.timestamp()


@pytest.fixture
def clock() -> Clock:
    return Clock(slot_at(datetime.now(UTC) - timedelta(hours=2), 300))


@pytest.fixture
def image_api(
    moto: MotoServer, legacy: Legacy, clock: Clock
) -> Iterator[tuple[Callable[[], str], CloudWatchSink]]:
    """The image core with dual-write off, on the controlled clock: `upload()` posts one image
    as a user through the HTTP API and returns its id; the sink is flushed by hand."""
    settings = CoreSettings(
        aws_endpoint_url=moto.url,
        table=TABLE,
        bucket="images",
        trust_user_header=True,
        metrics_sink="none",
    )
    bootstrap(settings)
    built = build_core(settings)
    cloudwatch = core_aws.client("cloudwatch", settings)
    sink = CloudWatchSink(cloudwatch, settings.metrics_namespace, interval=3600, clock=clock)
    telemetry = Telemetry(sink)
    executor = ThreadPoolExecutor(max_workers=2)
    service = ImageService(
        objects=built.storage,
        metadata=built.metadata,
        claims=built.metadata,
        executor=executor,
        telemetry=telemetry,
        url_for=lambda key: f"http://cdn.test/{key}",
        clock=clock,
    )
    components: Components = dataclasses.replace(built, service=service, telemetry=telemetry)
    client = create_app(components=components).test_client()

    def upload() -> str:
        answer = client.post(
            "/images",
            headers={"X-User-Id": "ada"},
            data={"file": (io.BytesIO(image_bytes()), "photo.jpg", "image/jpeg")},
            content_type="multipart/form-data",
        )
        assert answer.status_code == 201, answer.json
        return str(answer.json["id"])

    yield upload, sink
    sink.close()
    cloudwatch.close()
    executor.shutdown(wait=True)
    built.close()


def legacy_ids(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM gallery_images")}


def test_a_10_minute_outage_then_a_rollback_leaves_no_hole_and_marks_the_backfilled_slots(
    settings: Settings,
    world: World,
    legacy_url: str,
    clock: Clock,
    image_api: tuple[Callable[[], str], CloudWatchSink],
) -> None:
    upload, sink = image_api
    world.function({"ENABLE_DYNAMODB_DUAL_WRITE": "false"})  # what the flip left deployed
    start = clock.at
    flip = start + timedelta(seconds=7)
    slots = [start + k * FIVE for k in range(1, 6)]  # the slots ending at 0:05 .. 0:25
    missed = slots[2:4]  # 0:15 and 0:20: the sampler is stopped from 0:10 to 0:20
    wt = build(settings, cutover=CutoverSettings(metrics_lag_seconds=0))
    try:
        cutover = wt.cutover
        window = cutover.open_window(flipped_by="olive", at=flip, now=flip, via="cli")

        uploaded: dict[datetime, list[str]] = {}
        for boundary in slots:
            ids = []
            for minutes in (4, 2):  # two uploads inside the slot, metrics flushed at their time
                clock.at = boundary - timedelta(minutes=minutes)
                ids.append(upload())
                sink.flush()
            uploaded[boundary] = ids
            if boundary not in missed:  # the scheduler's tick, just after the boundary
                sample = cutover.tick(now=boundary + timedelta(seconds=10))
                assert sample is not None and sample.at == boundary

        # Back after the outage: its tick read the two missed slots back from CloudWatch.
        stored = {s.at: s for s in cutover.store.samples(window.id)}
        assert set(stored) == set(slots)
        for at in slots:
            backfilled = BACKFILL in stored[at].readings
            assert backfilled == (at in missed), at
            assert stored[at].reading("upload_success").figures["uploads"] == 2.0, at
        for at in missed:
            mark = stored[at].readings[BACKFILL].figures
            assert mark["taken_at"].startswith(slots[4].strftime("%Y-%m-%dT%H:%M"))
            assert "CloudWatch" in mark["sources"]["upload_success"]

        # Nothing reached gallery_images while the flag was off: that is the hole.
        every = [i for ids in uploaded.values() for i in ids]
        assert len(every) == 10 and not legacy_ids(legacy_url) & set(every)

        # The rollback plan: one run of the repository's runbook, the flag step approved.
        engine = wt.runbooks
        run = engine.start("rollback-dual-write", params={}, started_by="olive")
        engine.run_pending()
        for _ in range(5):
            if engine.get(run).waiting_step is None:
                break
            engine.approve(run, by="ada", comment="roll back after the outage")
            engine.run_pending()
        execution = engine.get(run)
        assert execution.status is ExecutionStatus.SUCCEEDED, execution
        steps = {s.step_id: s for s in execution.steps}
        assert steps["backfill"].status.value == "succeeded", steps["backfill"].error
        assert steps["backfill"].outputs["rows_written"] == 10
        assert steps["reconcile"].status.value == "succeeded", steps["reconcile"].error
        assert steps["reconcile"].outputs["differences"] == 0
        assert steps["reconcile"].outputs["dynamodb_images"] == 10

        # No hole: every upload made while the flag was off is in gallery_images, once.
        assert legacy_ids(legacy_url) == set(every)
        lambda_client = boto3.client(
            "lambda", endpoint_url=settings.aws_endpoint_url, region_name="us-east-1"
        )
        flag = lambda_client.get_function_configuration(FunctionName=settings.lambda_function)
        assert flag["Environment"]["Variables"]["ENABLE_DYNAMODB_DUAL_WRITE"] == "true"

        # The window closes as rolled back; its evidence still shows the backfilled slots.
        cutover.tick(now=wt.now())
        closed = cutover.verdict(window.id, now=wt.now())
        assert closed.state is State.ROLLED_BACK
        assert [gap.start for gap in closed.coverage.backfilled] == [at - FIVE for at in missed]
        document = cutover.document(window.id, now=wt.now())
        shown = document["coverage"]["backfilled"]
        assert len(shown) == 2, shown
    finally:
        wt.close()
