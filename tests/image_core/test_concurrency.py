"""Many concurrent uploads over real HTTP: one Idempotency-Key holds across threads."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import urllib3

from image_core.app import Components
from tests.helpers import image_bytes
from tests.image_core.readback import idempotency_items, image_items, objects

THREADS = 16


def upload_all_at_once(base: str, data: bytes, keys: list[str]) -> list[urllib3.BaseHTTPResponse]:
    """POST `data` once per key, every request released at the same moment by a barrier."""
    barrier = threading.Barrier(len(keys))
    http = urllib3.PoolManager(maxsize=len(keys), retries=False)

    def post(key: str) -> urllib3.BaseHTTPResponse:
        barrier.wait(timeout=30)
        return http.request(
            "POST",
            f"{base}/images",
            headers={"X-User-Id": "carol", "Idempotency-Key": key},
            fields={"file": ("photo.jpg", data, "image/jpeg")},
            timeout=30,
        )

    try:
        with ThreadPoolExecutor(max_workers=len(keys)) as pool:
            return list(pool.map(post, keys))
    finally:
        http.clear()


def test_one_key_many_threads_stores_one_image(
    make_components: Callable[..., Components], serve_api: Callable[[Components], str]
) -> None:
    components = make_components()
    base = serve_api(components)
    answers = upload_all_at_once(base, image_bytes("JPEG", (1200, 900)), ["same-key"] * THREADS)

    statuses = sorted(a.status for a in answers)
    assert statuses.count(201) == 1, statuses
    assert set(statuses) <= {200, 201, 409}, statuses
    created = next(a.json() for a in answers if a.status == 201)
    for answer in answers:
        if answer.status == 200:
            assert answer.headers["Idempotent-Replayed"] == "true"
            assert answer.json() == created
        elif answer.status == 409:
            assert answer.json()["error"]["code"] == "idempotency_key_in_use"
            assert int(answer.headers["Retry-After"]) >= 1

    image_id = created["id"]
    assert objects(components, "originals/carol/") == [f"originals/carol/{image_id}.jpg"]
    assert objects(components, "thumbnails/carol/") == [f"thumbnails/carol/{image_id}.jpg"]
    assert [i["image_id"]["S"] for i in image_items(components)] == [image_id]
    claims = idempotency_items(components)
    assert len(claims) == 1 and claims[0]["status"]["S"] == "completed"

    # Once the first has finished, every later request with the key is a replay.
    late = upload_all_at_once(base, image_bytes("JPEG", (1200, 900)), ["same-key"] * 4)
    assert [a.status for a in late] == [200] * 4
    assert all(a.json()["id"] == image_id for a in late)
    assert len(objects(components)) == 2 and len(image_items(components)) == 1


def test_distinct_keys_many_threads_store_distinct_images(
    make_components: Callable[..., Components], serve_api: Callable[[Components], str]
) -> None:
    components = make_components()
    base = serve_api(components)
    keys = [f"key-{n}" for n in range(THREADS)]
    answers: list[Any] = upload_all_at_once(base, image_bytes("PNG", (600, 600)), keys)

    assert [a.status for a in answers] == [201] * THREADS
    ids = {a.json()["id"] for a in answers}
    assert len(ids) == THREADS
    assert len(objects(components, "originals/carol/")) == THREADS
    assert len(objects(components, "thumbnails/carol/")) == THREADS
    assert {i["image_id"]["S"] for i in image_items(components)} == ids
