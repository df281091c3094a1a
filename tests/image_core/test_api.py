"""The HTTP API against the moto server: every status code of the upload contract and more."""

from __future__ import annotations

import io
import time
import uuid
from typing import Any

import pytest
import urllib3

from image_core.app import Components
from image_core.idempotency import new_claim
from tests.helpers import image_bytes

ALICE = {"X-User-Id": "alice"}
BOB = {"X-User-Id": "bob"}


def upload(
    client: Any,
    data: bytes,
    headers: dict[str, str] | None = None,
    filename: str = "photo.jpg",
    content_type: str = "image/jpeg",
) -> Any:
    return client.post(
        "/images",
        headers={**ALICE, **(headers or {})},
        data={"file": (io.BytesIO(data), filename, content_type)},
        content_type="multipart/form-data",
    )


def objects(components: Components) -> list[str]:
    s3 = components.storage._client
    answer = s3.list_objects_v2(Bucket=components.settings.bucket)
    return sorted(o["Key"] for o in answer.get("Contents", []))


def image_items(components: Components) -> list[dict[str, Any]]:
    db = components.metadata._client
    items = db.scan(TableName=components.settings.table)["Items"]
    return [i for i in items if i["pk"]["S"].startswith("IMAGE#")]


def test_upload_then_get_list_and_delete(client: Any, components: Components) -> None:
    created = upload(client, image_bytes("JPEG", (1600, 1200)))
    assert created.status_code == 201, created.json
    body = created.json
    assert body["content_type"] == "image/jpeg"
    assert (body["width"], body["height"]) == (1600, 1200)
    assert (body["thumbnail"]["width"], body["thumbnail"]["height"]) == (400, 300)
    assert created.headers["Location"] == f"/images/{body['id']}"
    assert len(objects(components)) == 2

    got = client.get(f"/images/{body['id']}", headers=ALICE)
    assert got.status_code == 200 and got.json["id"] == body["id"]
    listed = client.get("/images", headers=ALICE)
    assert [i["id"] for i in listed.json["items"]] == [body["id"]]

    assert client.delete(f"/images/{body['id']}", headers=ALICE).status_code == 204
    assert client.get(f"/images/{body['id']}", headers=ALICE).status_code == 404
    assert objects(components) == []
    assert image_items(components) == []


def test_thumbnail_url_serves_a_decodable_thumbnail(client: Any, components: Components) -> None:
    from PIL import Image

    body = upload(client, image_bytes("PNG", (900, 300), (10, 20, 30, 128))).json
    answer = urllib3.request("GET", body["thumbnail"]["url"], timeout=5)
    assert answer.status == 200
    thumb = Image.open(io.BytesIO(answer.data))
    assert thumb.format == "PNG" and thumb.size == (400, 133) and thumb.mode == "RGBA"


@pytest.mark.parametrize("headers", [{}, {"X-User-Id": ""}])
def test_no_identity_is_401(client: Any, headers: dict[str, str]) -> None:
    answer = client.get("/images", headers=headers)
    assert answer.status_code == 401
    assert answer.json["error"]["code"] == "unauthenticated"


def test_user_header_is_ignored_unless_trusted(make_components: Any) -> None:
    from image_core.api import create_app

    client = create_app(components=make_components(trust_user_header=False)).test_client()
    assert client.get("/images", headers=ALICE).status_code == 401


def test_a_user_never_sees_or_deletes_another_users_image(client: Any) -> None:
    image_id = upload(client, image_bytes()).json["id"]
    assert client.get(f"/images/{image_id}", headers=BOB).status_code == 404
    assert client.delete(f"/images/{image_id}", headers=BOB).status_code == 404
    assert client.get("/images", headers=BOB).json["items"] == []
    assert client.get(f"/images/{image_id}", headers=ALICE).status_code == 200


def test_list_is_newest_first_and_cursor_paginated(client: Any) -> None:
    ids = [upload(client, image_bytes(color=(i, 0, 0))).json["id"] for i in range(5)]
    first = client.get("/images?limit=2", headers=ALICE).json
    second = client.get(f"/images?limit=2&cursor={first['next_cursor']}", headers=ALICE).json
    third = client.get(f"/images?limit=2&cursor={second['next_cursor']}", headers=ALICE).json
    seen = [i["id"] for page in (first, second, third) for i in page["items"]]
    assert seen == list(reversed(ids))
    # Bob cannot walk Alice's gallery with her cursor: it is bound to the caller.
    assert client.get(f"/images?cursor={first['next_cursor']}", headers=BOB).json["items"] == []


@pytest.mark.parametrize(
    "query, code",
    [
        ("limit=0", "invalid_limit"),
        ("limit=101", "invalid_limit"),
        ("limit=x", "invalid_limit"),
        ("cursor=%25%25%25", "invalid_cursor"),
        ("cursor=e30", "invalid_cursor"),
    ],
)
def test_bad_list_parameters_are_400(client: Any, query: str, code: str) -> None:
    answer = client.get(f"/images?{query}", headers=ALICE)
    assert answer.status_code == 400 and answer.json["error"]["code"] == code


def test_unsupported_type_is_judged_by_content_not_declared_type(
    client: Any, components: Components
) -> None:
    answer = upload(client, b"%PDF-1.4 not an image", content_type="image/jpeg")
    assert answer.status_code == 415
    assert answer.json["error"]["code"] == "unsupported_media_type"
    # A real PNG declared as text is accepted, as a PNG.
    accepted = upload(client, image_bytes("PNG"), filename="x.txt", content_type="text/plain")
    assert accepted.status_code == 201 and accepted.json["content_type"] == "image/png"
    assert len(objects(components)) == 2


@pytest.mark.parametrize("size", [(100, 100), (600, 600)])
def test_over_max_bytes_is_413(make_components: Any, serve_api: Any, size: tuple[int, int]) -> None:
    # Over real HTTP: a small excess is caught reading the part, a large one from Content-Length.
    components = make_components(max_bytes=20_000)
    base = serve_api(components)
    data = image_bytes("PNG", size, compress_level=0)
    assert len(data) > 20_000
    answer = urllib3.request(
        "POST",
        f"{base}/images",
        headers=ALICE,
        timeout=10,
        fields={"file": ("big.png", data, "image/png")},
    )
    assert answer.status == 413
    assert answer.json()["error"]["code"] == "payload_too_large"
    assert "20000" in answer.json()["error"]["message"]
    assert objects(components) == []


def test_too_many_pixels_is_rejected_from_the_header(make_components: Any) -> None:
    from image_core.api import create_app

    client = create_app(components=make_components(max_pixels=1_000_000)).test_client()
    answer = upload(client, image_bytes("JPEG", (1200, 1000)))
    assert answer.status_code == 413
    assert answer.json["error"]["code"] == "too_many_pixels"


def test_truncated_image_is_400_and_nothing_is_stored(client: Any, components: Components) -> None:
    data = image_bytes("JPEG", (1600, 1200), quality=95)
    answer = upload(client, data[: len(data) * 2 // 3])
    assert answer.status_code == 400
    assert answer.json["error"]["code"] == "corrupt_image"
    assert objects(components) == [] and image_items(components) == []


def test_missing_file_field_is_400(client: Any) -> None:
    answer = client.post(
        "/images", headers=ALICE, data={"other": "x"}, content_type="multipart/form-data"
    )
    assert answer.status_code == 400 and answer.json["error"]["code"] == "missing_file"


# -- Idempotency-Key -----------------------------------------------------------------------------


def test_replay_with_same_key_and_payload_is_200_with_the_same_body(
    client: Any, components: Components
) -> None:
    data, key = image_bytes(), {"Idempotency-Key": str(uuid.uuid4())}
    first = upload(client, data, key)
    again = upload(client, data, key)
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json == first.json
    assert len(objects(components)) == 2 and len(image_items(components)) == 1


def test_same_key_with_a_different_payload_is_422(client: Any) -> None:
    key = {"Idempotency-Key": "k-1"}
    assert upload(client, image_bytes(color=(1, 2, 3)), key).status_code == 201
    answer = upload(client, image_bytes(color=(4, 5, 6)), key)
    assert answer.status_code == 422
    assert answer.json["error"]["code"] == "idempotency_key_reused"


def test_keys_are_scoped_per_user(client: Any) -> None:
    data, key = image_bytes(), {"Idempotency-Key": "shared"}
    alice = upload(client, data, key)
    bob = upload(client, data, {**key, **BOB})
    assert alice.status_code == bob.status_code == 201
    assert alice.json["id"] != bob.json["id"]


def test_same_key_while_in_flight_is_409_with_retry_after(
    client: Any, components: Components
) -> None:
    data = image_bytes()
    from image_core.idempotency import fingerprint

    now = time.time()
    claim = new_claim(
        user_id="alice",
        key="busy",
        fingerprint=fingerprint(data),
        token="other",
        now=now,
        ttl_seconds=86400,
        in_progress_seconds=20,
    )
    assert components.metadata.claim(claim, now=now) is None
    answer = upload(client, data, {"Idempotency-Key": "busy"})
    assert answer.status_code == 409
    assert answer.json["error"]["code"] == "idempotency_key_in_use"
    assert 1 <= int(answer.headers["Retry-After"]) <= 20


def test_a_claim_left_by_a_crashed_request_lapses(client: Any, components: Components) -> None:
    data = image_bytes()
    from image_core.idempotency import fingerprint

    past = time.time() - 120  # the crashed request claimed two minutes ago (timeout 30 s)
    claim = new_claim(
        user_id="alice",
        key="crashed",
        fingerprint=fingerprint(data),
        token="dead",
        now=past,
        ttl_seconds=86400,
        in_progress_seconds=30,
    )
    assert components.metadata.claim(claim, now=past) is None
    answer = upload(client, data, {"Idempotency-Key": "crashed"})
    assert answer.status_code == 201


def test_an_expired_key_can_be_used_again(client: Any, components: Components) -> None:
    data = image_bytes()
    from image_core.idempotency import fingerprint

    past = time.time() - 2 * 86400  # completed two days ago; TTL 24 h; not swept yet
    claim = new_claim(
        user_id="alice",
        key="old",
        fingerprint=fingerprint(b"other"),
        token="t",
        now=past,
        ttl_seconds=86400,
        in_progress_seconds=30,
    )
    assert components.metadata.claim(claim, now=past) is None
    assert upload(client, data, {"Idempotency-Key": "old"}).status_code == 201


def test_a_failed_upload_releases_its_key(client: Any) -> None:
    key = {"Idempotency-Key": "retry-me"}
    good = image_bytes("JPEG", (800, 600), quality=95)
    assert upload(client, good[: len(good) // 2], key).status_code == 400
    # Same key, now with the whole file: the failed attempt did not hold it.
    assert upload(client, good, key).status_code == 201


@pytest.mark.parametrize("raw", ["", " ", "x" * 256, "caf\u00e9"])
def test_malformed_key_is_400(client: Any, raw: str) -> None:
    answer = upload(client, image_bytes(), {"Idempotency-Key": raw})
    assert answer.status_code == 400
    assert answer.json["error"]["code"] == "invalid_idempotency_key"


def test_key_can_be_required(make_components: Any) -> None:
    from image_core.api import create_app

    client = create_app(components=make_components(require_idempotency_key=True)).test_client()
    answer = upload(client, image_bytes())
    assert answer.status_code == 400
    assert answer.json["error"]["code"] == "idempotency_key_required"
    assert upload(client, image_bytes(), {"Idempotency-Key": "k"}).status_code == 201


def test_openapi_and_health(client: Any) -> None:
    doc = client.get("/openapi.json").json
    assert doc["openapi"].startswith("3.") and "/images/{image_id}" in doc["paths"]
    assert client.get("/healthz").json == {"status": "ok"}


def test_unknown_route_is_json_404(client: Any) -> None:
    answer = client.get("/nope")
    assert answer.status_code == 404 and answer.json["error"]["code"] == "not_found"
