"""Telemetry: statistic sets flushed to CloudWatch (moto), the request path, EMF lines."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from flask.testing import FlaskClient

from image_core import aws
from image_core.api import create_app
from image_core.app import Components
from image_core.config import Settings
from image_core.telemetry import LATENCY_THRESHOLDS_MS, CloudWatchSink, Datum, EmfSink, Telemetry
from tests.helpers import image_bytes
from tests.image_core.readback import image_items, metric
from watchtower.sandbox import servers

UPLOAD_USER = {"Operation": "upload", "Traffic": "user"}
PROBE = "watchtower-probe"  # the one user whose X-Synthetic-Traffic is believed here


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(metrics_namespace="TelemetryTest")


@pytest.fixture
def sink(settings: Settings) -> Iterator[CloudWatchSink]:
    client = aws.client("cloudwatch", settings)
    sink = CloudWatchSink(client, settings.metrics_namespace, interval=3600)
    yield sink
    sink.close()
    client.close()


def stats(settings: Settings, name: str, dims: dict[str, str]) -> dict[str, float | None]:
    return {
        s: metric(settings, name, dims, s) for s in ("Sum", "SampleCount", "Minimum", "Maximum")
    }


# -- CloudWatchSink -------------------------------------------------------------------------------


def test_events_are_aggregated_into_one_statistic_set_per_series(
    sink: CloudWatchSink, settings: Settings
) -> None:
    telemetry = Telemetry(sink)
    for seconds in (0.1, 0.2, 0.8, 0.9, 1.2):
        telemetry.request(operation="upload", traffic="user", outcome="success", seconds=seconds)
    # One series per metric name and dimension set, however many events: 1 request + 1 latency
    # + 4 thresholds = 6 series, in a single PutMetricData call.
    assert sink.flush() == 1
    assert sink.flush() == 0  # nothing left pending

    latency = stats(settings, "Latency", UPLOAD_USER)
    assert latency["SampleCount"] == 5
    assert latency["Sum"] == pytest.approx(3200)
    assert latency["Minimum"] == pytest.approx(100)
    assert latency["Maximum"] == pytest.approx(1200)
    requests = {**UPLOAD_USER, "Outcome": "success"}
    assert metric(settings, "Requests", requests) == 5
    # Share over a threshold = Sum / SampleCount; exactly 800 ms is not over 800 ms.
    over = {t: stats(settings, f"LatencyOver{t}ms", UPLOAD_USER) for t in LATENCY_THRESHOLDS_MS}
    assert {t: s["Sum"] for t, s in over.items()} == {250: 3, 500: 3, 800: 2, 1000: 1}
    assert all(s["SampleCount"] == 5 for s in over.values())


def test_many_series_are_sent_in_batches(settings: Settings) -> None:
    # botocore gzips PutMetricData bodies over 10 KB, as production does (moto >= 5.2.5 reads them).
    client = aws.client("cloudwatch", settings)
    sink = CloudWatchSink(client, settings.metrics_namespace, interval=3600)
    try:
        for n in range(1100):
            sink.publish([Datum("BatchProbe", float(n), "Count", (("Series", f"s{n}"),))])
        assert sink.flush() == 3  # 500 + 500 + 100 series
        assert sink.calls == 3
    finally:
        client.close()
    for n in (0, 499, 500, 1099):
        assert metric(settings, "BatchProbe", {"Series": f"s{n}"}) == n


def test_close_flushes_what_is_pending(settings: Settings) -> None:
    client = aws.client("cloudwatch", settings)
    try:
        sink = CloudWatchSink(client, settings.metrics_namespace, interval=3600)
        sink.start()
        Telemetry(sink).cold_start()
        sink.close()
        assert sink.calls == 1
    finally:
        client.close()
    assert metric(settings, "ColdStarts", {}) == 1


def test_a_failed_flush_is_dropped_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    # A real client to a closed port, one attempt: PutMetricData fails at once.
    client = boto3.client(
        "cloudwatch",
        endpoint_url=f"http://127.0.0.1:{servers.free_port()}",
        config=Config(retries={"mode": "standard", "max_attempts": 1}, connect_timeout=1),
    )
    try:
        sink = CloudWatchSink(client, "Nowhere", interval=3600)
        Telemetry(sink).cold_start()
        assert sink.flush() == 0
        assert sink.flush() == 0  # dropped, not kept to be retried forever
        assert "PutMetricData" in caplog.text and "1 metrics dropped" in caplog.text
    finally:
        client.close()


# -- the request path -----------------------------------------------------------------------------


@pytest.fixture
def components(make_components: Callable[..., Components], settings: Settings) -> Components:
    return make_components(
        metrics_namespace=settings.metrics_namespace, synthetic_user_ids=(PROBE,)
    )


@pytest.fixture
def client(components: Components) -> FlaskClient:
    return create_app(components=components).test_client()


def post(client: FlaskClient, headers: dict[str, str]) -> Any:
    return client.post(
        "/images",
        headers={"X-User-Id": "erin", **headers},
        data={"file": (io.BytesIO(image_bytes()), "photo.jpg", "image/jpeg")},
        content_type="multipart/form-data",
    )


def flushed(components: Components) -> Settings:
    components.telemetry._sink.flush()  # type: ignore[attr-defined]
    return components.settings


def test_every_operation_records_requests_latency_and_thresholds(
    client: FlaskClient, components: Components
) -> None:
    image_id = post(client, {}).json["id"]
    client.get(f"/images/{image_id}", headers={"X-User-Id": "erin"})
    client.get("/images", headers={"X-User-Id": "erin"})
    client.delete(f"/images/{image_id}", headers={"X-User-Id": "erin"})
    client.get("/healthz")  # not an operation: not recorded
    settings = flushed(components)

    for operation in ("upload", "get", "list", "delete"):
        dims = {"Operation": operation, "Traffic": "user"}
        assert metric(settings, "Requests", {**dims, "Outcome": "success"}) == 1, operation
        assert metric(settings, "Latency", dims, "SampleCount") == 1, operation
        assert (metric(settings, "Latency", dims, "Sum") or 0) > 0, operation
        for t in LATENCY_THRESHOLDS_MS:
            assert metric(settings, f"LatencyOver{t}ms", dims, "SampleCount") == 1, (operation, t)


def test_the_configured_latency_thresholds_are_the_ones_published(
    make_components: Callable[..., Components], settings: Settings
) -> None:
    # IMAGE_LATENCY_THRESHOLDS_MS=250,500,847,1000: an objective of 847 ms can be judged.
    components = make_components(
        metrics_namespace="TelemetryThresholds", latency_thresholds_ms=(250, 500, 847, 1000)
    )
    client = create_app(components=components).test_client()
    assert post(client, {}).status_code == 201
    published = flushed(components)
    for t in (250, 500, 847, 1000):
        assert metric(published, f"LatencyOver{t}ms", UPLOAD_USER, "SampleCount") == 1, t
    assert metric(published, "LatencyOver800ms", UPLOAD_USER, "SampleCount") is None


def test_a_request_counts_over_each_configured_threshold() -> None:
    stream = io.StringIO()
    telemetry = Telemetry(
        EmfSink("EmfTest", "image-core", stream=stream), latency_thresholds_ms=(100, 847)
    )
    telemetry.request(operation="get", traffic="user", outcome="success", seconds=0.5)
    (timing,) = [d for d in emf_documents_of(stream) if "Latency" in d]
    names = [m["Name"] for m in timing["_aws"]["CloudWatchMetrics"][0]["Metrics"]]
    assert names == ["Latency", "LatencyOver100ms", "LatencyOver847ms"]
    assert timing["LatencyOver100ms"] == [1.0] and timing["LatencyOver847ms"] == [0.0]


def test_errors_are_counted_by_outcome_and_reason(
    client: FlaskClient, components: Components
) -> None:
    client.get(f"/images/{'f' * 32}", headers={"X-User-Id": "erin"})
    client.get("/images")  # no identity
    settings = flushed(components)
    get = {"Operation": "get", "Traffic": "user"}
    assert metric(settings, "Requests", {**get, "Outcome": "client_error"}) == 1
    assert metric(settings, "Requests", {**get, "Outcome": "success"}) is None
    assert metric(settings, "Errors", {"Operation": "get", "Reason": "image_not_found"}) == 1
    assert metric(settings, "Errors", {"Operation": "list", "Reason": "unauthenticated"}) == 1


def test_synthetic_traffic_is_marked_apart_from_users(
    client: FlaskClient, components: Components
) -> None:
    synthetic = post(client, {"X-User-Id": PROBE, "X-Synthetic-Traffic": "1"}).json["id"]
    user = post(client, {}).json["id"]
    settings = flushed(components)
    probe = {"Operation": "upload", "Traffic": "synthetic"}
    assert metric(settings, "Requests", {**probe, "Outcome": "success"}) == 1
    assert metric(settings, "Requests", {**UPLOAD_USER, "Outcome": "success"}) == 1
    assert metric(settings, "LatencyOver800ms", probe, "SampleCount") == 1
    # The record remembers it too, so a synthetic image can be told apart later.
    flags = {i["image_id"]["S"]: i["synthetic"]["BOOL"] for i in image_items(components)}
    assert flags == {synthetic: True, user: False}


# -- EMF ------------------------------------------------------------------------------------------


def emf_documents(data: list[list[Datum]]) -> list[dict[str, Any]]:
    stream = io.StringIO()
    sink = EmfSink("EmfTest", "image-core", stream=stream, clock=lambda: 1_700_000_000.5)
    for event in data:
        sink.publish(event)
    text = stream.getvalue()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def emf_documents_of(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_emf_lines_are_valid_embedded_metric_format() -> None:
    stream = io.StringIO()
    sink = EmfSink("EmfTest", "image-core", stream=stream, clock=lambda: 1_700_000_000.5)
    Telemetry(sink).request(
        operation="upload", traffic="synthetic", outcome="server_error", seconds=0.9, reason="x"
    )
    docs = [json.loads(line) for line in stream.getvalue().splitlines()]
    # One line per dimension set: (Operation, Traffic, Outcome), (Operation, Traffic), and
    # (Operation, Reason).
    assert len(docs) == 3
    for doc in docs:
        meta = doc["_aws"]
        assert meta["Timestamp"] == 1_700_000_000_500
        (directive,) = meta["CloudWatchMetrics"]
        assert directive["Namespace"] == "EmfTest"
        (dimension_set,) = directive["Dimensions"]
        for key in dimension_set:  # every dimension is a top-level string member
            assert isinstance(doc[key], str)
        for m in directive["Metrics"]:
            assert set(m) == {"Name", "Unit"}
            values = doc[m["Name"]]
            assert isinstance(values, list) and all(isinstance(v, int | float) for v in values)
        assert doc["service"] == "image-core"

    by_dims = {tuple(d["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]): d for d in docs}
    timing = by_dims[("Operation", "Traffic")]
    assert timing["Operation"] == "upload" and timing["Traffic"] == "synthetic"
    names = [m["Name"] for m in timing["_aws"]["CloudWatchMetrics"][0]["Metrics"]]
    assert names == ["Latency", *(f"LatencyOver{t}ms" for t in LATENCY_THRESHOLDS_MS)]
    assert timing["Latency"] == [pytest.approx(900)]
    assert timing["LatencyOver800ms"] == [1.0] and timing["LatencyOver1000ms"] == [0.0]
    assert by_dims[("Operation", "Traffic", "Outcome")]["Requests"] == [1]
    assert by_dims[("Operation", "Reason")]["Errors"] == [1]


def test_emf_metric_without_dimensions() -> None:
    (doc,) = emf_documents([[Datum("ColdStarts", 1, "Count")]])
    assert doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [[]]
    assert doc["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [
        {"Name": "ColdStarts", "Unit": "Count"}
    ]
    assert doc["ColdStarts"] == [1]
