"""Uploads and listings with whatever a client may send, through the image API over the moto
server: arbitrary bytes (and real images, whole, cut short or with bytes flipped), file names,
declared and request content types, Idempotency-Key and X-User-Id values, limits and cursors.

Never a 5xx, every error a JSON body with a code, and after every request nothing half-written:
each image record has both of its S3 objects, each object has its record, and no
Idempotency-Key claim is left in progress.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import event, example, given
from hypothesis import strategies as st

from image_core.api import create_app
from image_core.app import Components
from tests.helpers import image_bytes
from tests.image_core import readback
from tests.image_core.fuzz.common import (
    assert_error_body,
    assert_nothing_half_written,
    fuzz_settings,
)

MAX_BYTES = 16 * 1024
REAL = [
    image_bytes("JPEG", (64, 48)),
    image_bytes("PNG", (90, 30), (1, 2, 3, 4)),
    image_bytes("GIF", (20, 20)),
    image_bytes("WEBP", (40, 10)),
    image_bytes("PNG", (160, 160), compress_level=0),  # over MAX_BYTES: 413
]

# Header values as an HTTP client can send them (latin-1, no line breaks).
header_text = st.text(
    alphabet=st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=300
)


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    """Arbitrary bytes, real images, and real images cut short or with some bytes changed."""
    kind = draw(st.sampled_from(["bytes", "real", "cut", "flipped", "padded"]))
    if kind == "bytes":
        return draw(st.binary(max_size=2048))
    real = draw(st.sampled_from(REAL))
    if kind == "real":
        return real
    if kind == "cut":
        return real[: draw(st.integers(0, len(real) - 1))]
    if kind == "padded":
        return real + draw(st.binary(min_size=1, max_size=512))
    data = bytearray(real)
    for _ in range(draw(st.integers(1, 8))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


def mostly(usual: st.SearchStrategy[Any], *unusual: st.SearchStrategy[Any]) -> Any:
    """`usual` most of the time, so that most requests get past the first check."""
    return st.integers(0, 4).flatmap(lambda n: st.one_of(*unusual) if n == 0 else usual)


user_ids = mostly(st.sampled_from(["alice", "alice", "bob"]), st.none(), header_text)
idempotency_keys = mostly(
    st.one_of(st.none(), st.sampled_from(["k-1", "k-2"])),  # reused: replays and 422s
    header_text,
    st.text(min_size=250, max_size=260, alphabet="ab"),  # around the 255 limit
)


@pytest.fixture
def components(make_components: Callable[..., Components]) -> Components:
    return make_components(max_bytes=MAX_BYTES)


@pytest.fixture
def client(components: Components) -> FlaskClient:
    return create_app(components=components).test_client()


def _headers(user: str | None, key: str | None) -> dict[str, str]:
    headers = {}
    if user is not None:
        headers["X-User-Id"] = user
    if key is not None:
        headers["Idempotency-Key"] = key
    return headers


def _judge(answer: Any, components: Components) -> None:
    error = (answer.get_json(silent=True) or {}).get("error") or {}
    event(f"{answer.status_code} {error.get('code', '')}")  # --hypothesis-show-statistics
    assert answer.status_code < 500, answer.get_data()[:300]
    if answer.status_code >= 400:
        assert_error_body(answer)
    assert_nothing_half_written(components)


@fuzz_settings(max_examples=120)
@given(
    data=payloads(),
    filename=st.one_of(st.text(max_size=200), st.sampled_from(["", "a.jpg", "../../etc/passwd"])),
    part_type=st.one_of(
        st.sampled_from(["image/jpeg", "image/png", "text/plain", "application/octet-stream"]),
        st.text(alphabet=st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=80),
    ),
    user=user_ids,
    key=idempotency_keys,
)
def test_multipart_uploads_never_fail_the_server_nor_half_write(
    client: FlaskClient,
    components: Components,
    data: bytes,
    filename: str,
    part_type: str,
    user: str | None,
    key: str | None,
) -> None:
    answer = client.post(
        "/images",
        headers=_headers(user, key),
        data={"file": (io.BytesIO(data), filename, part_type)},
        content_type="multipart/form-data",
    )
    _judge(answer, components)
    if answer.status_code in (200, 201):
        stored = readback.objects(components, prefix=f"originals/{user}/")
        assert f"originals/{user}/{answer.json['id']}" in {k.rsplit(".", 1)[0] for k in stored}


@fuzz_settings(max_examples=60)
@given(
    body=st.one_of(st.binary(max_size=2048), st.sampled_from(REAL)),
    content_type=st.one_of(
        st.sampled_from(
            [
                "multipart/form-data",  # no boundary
                "multipart/form-data; boundary=x",  # a boundary the body does not use
                "multipart/form-data; boundary=",
                "application/json",
                "image/jpeg",
                "application/x-www-form-urlencoded",
            ]
        ),
        header_text,
    ),
    user=user_ids,
    key=idempotency_keys,
)
def test_raw_bodies_of_any_content_type_are_refused_cleanly(
    client: FlaskClient,
    components: Components,
    body: bytes,
    content_type: str,
    user: str | None,
    key: str | None,
) -> None:
    headers = {**_headers(user, key), "Content-Type": content_type}
    answer = client.post("/images", headers=headers, data=body)
    _judge(answer, components)
    assert answer.status_code >= 400  # no file part, nothing stored
    assert readback.image_items(components) == []


def _forged_cursor(fields: Any) -> str:
    raw = json.dumps(fields).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


cursors = st.one_of(
    st.none(),
    st.text(max_size=300),
    st.binary(max_size=200).map(lambda b: base64.urlsafe_b64encode(b).decode()),
    # Well-formed cursors the API never issued: any id and position, any JSON.
    st.fixed_dictionaries({"id": st.text(max_size=80), "at": st.text(max_size=300)}).map(
        _forged_cursor
    ),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
        max_leaves=8,
    ).map(_forged_cursor),
)


@pytest.fixture
def gallery(client: FlaskClient) -> tuple[list[str], list[str]]:
    """Three images of alice's, and the cursors the API gives for her gallery."""
    ids = []
    for n in range(3):
        answer = client.post(
            "/images",
            headers={"X-User-Id": "alice"},
            data={"file": (io.BytesIO(image_bytes("PNG", (8, 8), (n, 0, 0))), "a.png")},
            content_type="multipart/form-data",
        )
        assert answer.status_code == 201
        ids.append(answer.json["id"])
    issued = [
        client.get("/images", headers={"X-User-Id": "alice"}, query_string={"limit": n}).json[
            "next_cursor"
        ]
        for n in (1, 2)
    ]
    return ids, issued


@fuzz_settings(max_examples=120)
@given(
    limit=mostly(
        st.one_of(st.none(), st.integers(1, 100).map(str)),
        st.integers(-5, 105).map(str),
        st.text(max_size=30),
        st.sampled_from(["1e2", "0x10", " 5", "5 ", "+5", "\u0663", "\u00b2", "9" * 20]),
    ),
    cursor=st.one_of(st.integers(0, 1), cursors),  # a number: that cursor the API issued
    user=user_ids,
)
@example(limit="\u00b2", cursor=None, user="alice")  # found by this test: int("²") raised, a 500
def test_listing_with_any_limit_and_cursor(
    client: FlaskClient,
    components: Components,
    gallery: tuple[list[str], list[str]],
    limit: str | None,
    cursor: int | str | None,
    user: str | None,
) -> None:
    ids, issued = gallery
    sent = issued[cursor] if isinstance(cursor, int) else cursor
    query = {k: v for k, v in (("limit", limit), ("cursor", sent)) if v is not None}
    answer = client.get("/images", headers=_headers(user, None), query_string=query)
    _judge(answer, components)
    if answer.status_code == 200:
        assert set(answer.json) == {"items", "next_cursor"}
        mine = set(ids) if user == "alice" else set()
        assert {i["id"] for i in answer.json["items"]} <= mine  # never another user's image
    else:
        assert answer.status_code in (400, 401), answer.json
    if user in ("alice", "bob") and (
        limit is None or (limit.isascii() and limit.isdigit() and 1 <= int(limit) <= 100)
    ):
        if isinstance(cursor, str) and cursor:
            # A cursor the API did not issue is refused, whatever it holds.
            assert answer.json["error"]["code"] == "invalid_cursor", answer.json
        else:
            assert answer.status_code == 200, answer.json
