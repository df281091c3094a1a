"""`upload_get` against the real image API (the image core over HTTP, on the moto server)."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any

from flask import Response

from image_core.app import Components, build
from tests.image_core.readback import metric
from tests.watchtower.probes.conftest import PROBE_USER, Proxy, Seen, leftovers
from watchtower.model import Result, Status
from watchtower.probes import registry
from watchtower.probes.base import ProbeContext
from watchtower.probes.upload_get import STEPS, UploadGet

MakeCtx = Callable[..., ProbeContext]
MakeProxy = Callable[..., tuple[Proxy, str]]


def steps(result: Result) -> list[tuple[str, bool]]:
    return [(s.name, s.ok) for s in result.steps]


class StepClock:
    """A clock that moves `step` seconds each time it is read: timing without the wall clock."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 1000.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_registry_finds_upload_get() -> None:
    probe = registry()["upload_get"]
    assert isinstance(probe, UploadGet)
    assert probe.component and probe.title


def test_happy_path_walks_every_step_and_leaves_nothing_behind(
    image_api: str, components: Components, probe_ctx: MakeCtx
) -> None:
    result = UploadGet().run(probe_ctx(image_api))

    assert result.status is Status.OK, result.reason
    assert result.kind == "probe" and result.name == "upload_get" and result.attempt == 1
    assert steps(result) == [(name, True) for name in STEPS]
    assert result.reason.startswith("all 7 steps ok")
    for name in STEPS:
        assert result.figures[f"{name}_seconds"] is not None
    assert result.figures["cleanup_seconds"] is None  # nothing was left to clean
    assert result.figures["images_left_behind"] == 0
    assert result.figures["total_seconds"] == result.duration_seconds
    assert result.thresholds == {"warning_upload_seconds": 0.8, "warning_total_seconds": 4.0}
    assert leftovers(components) == []


def test_idempotency_is_verified_live_and_traffic_is_marked_synthetic(
    image_api: str, components: Components, probe_ctx: MakeCtx, make_proxy: MakeProxy
) -> None:
    proxy, url = make_proxy(image_api)
    assert UploadGet().run(probe_ctx(url)).status is Status.OK
    assert UploadGet().run(probe_ctx(url)).status is Status.OK

    posts = [s for s in proxy.seen if s.method == "POST"]
    assert len(posts) == 4  # upload and replay, twice
    first, replay, second, _ = posts
    # The replay repeats the upload exactly: the same key and the same image bytes.
    assert replay.headers["Idempotency-Key"] == first.headers["Idempotency-Key"]
    assert _file_part(replay) == _file_part(first)
    # Each run brings a fresh key and fresh bytes.
    assert second.headers["Idempotency-Key"] != first.headers["Idempotency-Key"]
    assert _file_part(second) != _file_part(first)
    api_calls = [s for s in proxy.seen if s.path.startswith("/images")]
    assert len(api_calls) == 2 * 6  # the thumbnail comes from S3 (presigned), not the API
    assert all(s.headers["X-User-Id"] == PROBE_USER for s in api_calls)
    assert all(s.headers["X-Synthetic-Traffic"] == "1" for s in api_calls)

    # The image core recorded the probe's requests as synthetic traffic, none as a user's.
    components.telemetry._sink.flush()  # type: ignore[attr-defined]
    upload = {"Operation": "upload", "Outcome": "success"}
    assert metric(components.settings, "Requests", {**upload, "Traffic": "synthetic"}) == 4
    assert metric(components.settings, "Requests", {**upload, "Traffic": "user"}) is None


def _file_part(seen: Seen) -> bytes:
    match = re.search(rb"\r\n\r\n(.*)\r\n--", seen.body, re.S)
    assert match is not None
    return match.group(1)


def test_image_api_down_is_critical_and_names_the_upload_step(
    closed_url: str, probe_ctx: MakeCtx
) -> None:
    result = UploadGet().run(probe_ctx(closed_url))

    assert result.status is Status.CRITICAL
    assert result.reason.startswith("image API unreachable: connection refused")
    assert closed_url in result.reason
    assert steps(result) == [("upload", False)]
    assert result.failed_step is not None and result.failed_step.name == "upload"
    assert result.figures["upload_seconds"] is not None
    assert result.figures["replay_seconds"] is None


def test_upload_refused_by_the_api_names_its_status_and_error_code(
    make_settings: Callable[..., Any],
    serve_api: Callable[[Components], str],
    probe_ctx: MakeCtx,
) -> None:
    # A table that was never created: the image core answers 503 for the upload.
    components = build(make_settings(table="never-created"))
    try:
        result = UploadGet().run(probe_ctx(serve_api(components)))
    finally:
        components.close()

    assert result.status is Status.CRITICAL
    assert result.reason.startswith(
        "upload failed: expected 201, got HTTP 503 "
        "metadata_unavailable: a backing service is unavailable"
    )
    assert steps(result) == [("upload", False)]


def test_broken_idempotency_fails_the_replay_and_both_images_are_cleaned_up(
    image_api: str, components: Components, probe_ctx: MakeCtx, make_proxy: MakeProxy
) -> None:
    def drop_key_on_replay(proxy: Proxy, seen: Seen) -> Response | None:
        if seen.method == "POST" and proxy.count("POST") == 2:
            return proxy.forward(seen, drop=("Idempotency-Key",))
        return None

    proxy, url = make_proxy(image_api, drop_key_on_replay)
    result = UploadGet().run(probe_ctx(url))

    assert result.status is Status.CRITICAL
    assert steps(result) == [("upload", True), ("replay", False), ("cleanup", True)]
    assert re.fullmatch(
        r"replay failed: expected 200 and image \w+, got HTTP 201 and a second "
        r"image \w+: the Idempotency-Key was not honoured",
        result.reason,
    )
    assert proxy.count("DELETE") == 2  # the probe's image and the duplicate
    assert result.figures["images_left_behind"] == 0
    assert leftovers(components) == []


def test_a_failure_midway_still_cleans_up(
    make_components: Callable[..., Components],
    serve_api: Callable[[Components], str],
    closed_url: str,
    probe_ctx: MakeCtx,
) -> None:
    # The API works but hands out thumbnail URLs on a CDN that is down.
    components = make_components(cdn_base_url=closed_url)
    result = UploadGet().run(probe_ctx(serve_api(components)))

    assert result.status is Status.CRITICAL
    assert steps(result) == [
        ("upload", True),
        ("replay", True),
        ("get", True),
        ("thumbnail", False),
        ("cleanup", True),
    ]
    assert result.reason.startswith("thumbnail failed: connection refused")
    assert not result.reason.startswith("image API unreachable")
    assert result.figures["list_seconds"] is None
    assert result.figures["cleanup_seconds"] is not None
    assert leftovers(components) == []


def test_a_delete_that_does_not_hold_is_caught_and_cleaned_up(
    image_api: str, components: Components, probe_ctx: MakeCtx, make_proxy: MakeProxy
) -> None:
    def swallow_first_delete(proxy: Proxy, seen: Seen) -> Response | None:
        if seen.method == "DELETE" and proxy.count("DELETE") == 1:
            return Response(status=204)
        return None

    _, url = make_proxy(image_api, swallow_first_delete)
    result = UploadGet().run(probe_ctx(url))

    assert result.status is Status.CRITICAL
    assert steps(result)[-3:] == [("delete", True), ("get_deleted", False), ("cleanup", True)]
    assert result.reason == (
        "get_deleted failed: expected 404, got HTTP 200: the deleted image is still served"
    )
    assert leftovers(components) == []


def test_the_api_error_is_named_and_a_cleanup_failure_is_reported(
    image_api: str, components: Components, probe_ctx: MakeCtx, make_proxy: MakeProxy
) -> None:
    def gallery_down_and_deletes_refused(proxy: Proxy, seen: Seen) -> Response | None:
        if seen.method == "GET" and seen.path.startswith("/images?"):
            return Response(
                '{"error": {"code": "cache_melted", "message": "try later"}}',
                status=500,
                content_type="application/json",
            )
        if seen.method == "DELETE":
            return Response("<html>bad gateway</html>", status=502, content_type="text/html")
        return None

    _, url = make_proxy(image_api, gallery_down_and_deletes_refused)
    result = UploadGet().run(probe_ctx(url))

    assert result.status is Status.CRITICAL
    image_id = result.reason.split("image ")[1].split(" ")[0]
    assert result.reason == (
        f"list failed: expected 200, got HTTP 500 cache_melted: try later; "
        f"cleanup failed: image {image_id} left behind: HTTP 502"
    )
    assert result.figures["images_left_behind"] == 1
    assert len(leftovers(components)) == 3  # really left: original, thumbnail, record


def test_a_lost_upload_answer_is_recovered_by_replaying_its_key_and_cleaned_up(
    image_api: str, components: Components, probe_ctx: MakeCtx, make_proxy: MakeProxy
) -> None:
    release = threading.Event()

    def lose_first_answer(proxy: Proxy, seen: Seen) -> Response | None:
        if seen.method == "POST" and proxy.count("POST") == 1:
            answer = proxy.forward(seen)  # the upload lands ...
            release.wait(10)  # ... but its answer comes after the probe gave up
            return answer
        return None

    proxy, url = make_proxy(image_api, lose_first_answer)
    try:
        result = UploadGet().run(probe_ctx(url, probe_timeout_seconds=1))
    finally:
        release.set()

    assert result.status is Status.CRITICAL
    assert result.reason.startswith("upload failed: timed out: no answer within 1 s")
    assert steps(result) == [("upload", False), ("cleanup", True)]
    assert proxy.count("POST") == 2 and proxy.count("DELETE") == 1
    assert leftovers(components) == []


def test_all_ok_but_slow_is_warning(image_api: str, probe_ctx: MakeCtx) -> None:
    # Every reading of the clock moves it by 0.5 s: each step "takes" 0.5 s.
    result = UploadGet().run(probe_ctx(image_api, clock=StepClock(0.5)))

    assert result.status is Status.WARNING
    assert result.reason == "slow: the walk took 7.50 s (warning over 4.00 s)"
    assert result.figures["upload_seconds"] == 0.5

    slow_upload = UploadGet().run(
        probe_ctx(
            image_api,
            clock=StepClock(0.5),
            params={"warning_upload_seconds": 0.25, "warning_total_seconds": 60},
        )
    )
    assert slow_upload.status is Status.WARNING
    assert slow_upload.reason == "slow: upload took 0.50 s (warning over 0.25 s)"
    assert slow_upload.thresholds["warning_total_seconds"] == 60
