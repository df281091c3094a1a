"""A failure midway through an upload leaves nothing behind: no orphan objects, no record."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask.testing import FlaskClient

from image_core.api import create_app
from image_core.app import Components, build
from image_core.config import Settings
from image_core.errors import StorageError
from image_core.service import ImageService
from image_core.storage import S3Storage
from tests.helpers import image_bytes
from tests.image_core.readback import idempotency_items, image_items, metric, objects
from watchtower.sandbox.servers import free_port

ALICE = {"X-User-Id": "alice"}


def upload(client: FlaskClient, data: bytes, headers: dict[str, str] | None = None) -> Any:
    return client.post(
        "/images",
        headers={**ALICE, **(headers or {})},
        data={"file": (io.BytesIO(data), "photo.jpg", "image/jpeg")},
        content_type="multipart/form-data",
    )


class FaultyStorage:
    """The real S3Storage, except that writes or deletes of keys under `prefix` fail.

    Fault injection: moto cannot be made to fail one object write and not another, so this thin
    wrapper raises StorageError for the chosen keys and delegates everything else to the real one.
    """

    def __init__(self, real: S3Storage, *, prefix: str, fail_puts: bool = True) -> None:
        self._real = real
        self.prefix = prefix
        self.fail_puts = fail_puts
        self.fail_deletes = False
        self.failed: list[str] = []

    def put(self, key: str, data: bytes, content_type: str) -> None:
        if self.fail_puts and key.startswith(self.prefix):
            self.failed.append(key)
            raise StorageError(f"injected: cannot write object {key!r}")
        self._real.put(key, data, content_type)

    def delete(self, keys: list[str]) -> None:
        if self.fail_deletes:
            raise StorageError(f"injected: cannot delete {keys!r}")
        self._real.delete(keys)


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="test-s3") as pool:
        yield pool


def with_storage(
    components: Components, objects_store: Any, executor: ThreadPoolExecutor, *, parallel: bool
) -> FlaskClient:
    """An app whose service is wired by hand as image_core/app.py does, over `objects_store`."""
    service = ImageService(
        objects=objects_store,
        metadata=components.metadata,
        claims=components.metadata,
        executor=executor,
        telemetry=components.telemetry,
        url_for=components.storage.presigned_url,
        limits=components.service.limits,
        parallel_writes=parallel,
    )
    # The original components own (and close) the clients; this copy only swaps the service.
    wired = dataclasses.replace(components, service=service, closers=[])
    return create_app(components=wired).test_client()


# -- (a) an S3 write fails ------------------------------------------------------------------------


@pytest.mark.parametrize("parallel", [True, False], ids=["parallel", "sequential"])
@pytest.mark.parametrize("prefix", ["thumbnails/", "originals/"])
def test_a_failed_object_write_leaves_nothing_and_releases_the_key(
    components: Components, executor: ThreadPoolExecutor, prefix: str, parallel: bool
) -> None:
    faulty = FaultyStorage(components.storage, prefix=prefix)
    client = with_storage(components, faulty, executor, parallel=parallel)
    data, key = image_bytes("JPEG", (1200, 900)), {"Idempotency-Key": "upload-1"}

    answer = upload(client, data, key)
    assert answer.status_code == 503
    assert answer.json["error"]["code"] == "storage_unavailable"
    assert answer.headers["Retry-After"] == "1"
    assert faulty.failed and faulty.failed[0].startswith(prefix)
    assert objects(components) == []
    assert image_items(components) == []
    assert idempotency_items(components) == []  # released, not left in flight

    # The fault is gone: a retry with the same key runs again and succeeds.
    faulty.fail_puts = False
    retried = upload(client, data, key)
    assert retried.status_code == 201, retried.json
    image_id = retried.json["id"]
    assert objects(components) == [
        f"originals/alice/{image_id}.jpg",
        f"thumbnails/alice/{image_id}.jpg",
    ]
    assert [i["image_id"]["S"] for i in image_items(components)] == [image_id]


def test_a_failed_object_delete_after_delete_is_counted(
    components: Components, executor: ThreadPoolExecutor
) -> None:
    faulty = FaultyStorage(components.storage, prefix="", fail_puts=False)
    client = with_storage(components, faulty, executor, parallel=True)
    image_id = upload(client, image_bytes()).json["id"]
    faulty.fail_deletes = True

    assert client.delete(f"/images/{image_id}", headers=ALICE).status_code == 204
    # The record goes first, so the image is gone for the user; the files are left for clean-up.
    assert client.get(f"/images/{image_id}", headers=ALICE).status_code == 404
    assert image_items(components) == []
    assert len(objects(components)) == 2
    components.telemetry._sink.flush()  # type: ignore[attr-defined]
    assert metric(components.settings, "OrphanCleanupFailures", {}) == 1


# -- (b) the metadata write fails -----------------------------------------------------------------


def test_a_failed_metadata_write_removes_both_objects(
    components: Components, make_settings: Callable[..., Settings]
) -> None:
    # The bucket exists (bootstrapped above); the table this build points at never was.
    broken = build(make_settings(table="never-bootstrapped", metrics_sink="none"))
    try:
        client = create_app(components=broken).test_client()
        answer = upload(client, image_bytes("PNG", (800, 600)))
        assert answer.status_code == 503
        assert answer.json["error"]["code"] == "metadata_unavailable"
        assert objects(components) == []
        assert image_items(components) == []

        # With a key, the claim itself fails first: nothing is written at all.
        keyed = upload(client, image_bytes("PNG", (800, 600)), {"Idempotency-Key": "k"})
        assert keyed.status_code == 503
        assert keyed.json["error"]["code"] == "metadata_unavailable"
        assert objects(components) == []
    finally:
        broken.close()


# -- (c) the AWS endpoint is unreachable ----------------------------------------------------------


@pytest.fixture
def unreachable(make_settings: Callable[..., Settings]) -> Iterator[FlaskClient]:
    """An app whose AWS endpoint is a closed loopback port: every call is refused at once."""
    settings = make_settings(
        aws_endpoint_url=f"http://127.0.0.1:{free_port()}", metrics_sink="none"
    )
    components = build(settings)
    try:
        yield create_app(components=components).test_client()
    finally:
        components.close()


@pytest.mark.parametrize(
    "request_kind, code",
    [
        ("upload", "storage_unavailable"),
        ("upload-with-key", "metadata_unavailable"),
        ("list", "metadata_unavailable"),
        ("get", "metadata_unavailable"),
    ],
)
def test_unreachable_aws_is_503_with_a_json_error(
    unreachable: FlaskClient, request_kind: str, code: str
) -> None:
    if request_kind == "upload":
        answer = upload(unreachable, image_bytes())
    elif request_kind == "upload-with-key":
        answer = upload(unreachable, image_bytes(), {"Idempotency-Key": "k"})
    elif request_kind == "list":
        answer = unreachable.get("/images", headers=ALICE)
    else:
        answer = unreachable.get(f"/images/{'a' * 32}", headers=ALICE)
    assert answer.status_code == 503
    assert answer.is_json
    assert answer.json["error"]["code"] == code
    assert "retry later" in answer.json["error"]["message"]
    assert answer.headers["Retry-After"] == "1"
