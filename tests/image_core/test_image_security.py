"""Issue 12, findings 9-11, each replayed through HTTP against the image API (moto S3, DynamoDB).

9. small uploads that decode big; many decodes at once
10. X-Synthetic-Traffic believed from anyone
11. originals keeping their EXIF GPS position
"""

from __future__ import annotations

import hashlib
import io
import logging
import random
import struct
import threading
import time
import zlib
from collections.abc import Callable
from typing import Any

import pytest
import urllib3
from PIL import Image, features

from image_core.api import create_app
from image_core.app import Components
from image_core.location import strip_location
from tests.helpers import image_bytes
from tests.image_core.readback import half_written, idempotency_items, image_items, metric, objects

MakeComponents = Callable[..., Components]
ALICE = {"X-User-Id": "alice"}
PROBE = "watchtower-probe"
ORIENTATION, MAKE, GPS_IFD = 0x0112, 0x010F, 0x8825
PLACE = b"Amsterdam, 12 Home Street"  # GPSAreaInformation: easy to look for in the bytes


def upload(client: Any, data: bytes, headers: dict[str, str] | None = None) -> Any:
    return client.post(
        "/images",
        headers={**ALICE, **(headers or {})},
        data={"file": (io.BytesIO(data), "photo", "application/octet-stream")},
        content_type="multipart/form-data",
    )


def client_for(components: Components) -> Any:
    return create_app(components=components).test_client()


# -- 9. decoding budgeted -------------------------------------------------------------------------


def png_of_zeros(width: int, height: int, color_type: int = 6) -> bytes:
    """A valid, fully decodable PNG of `width`x`height` transparent black, compressed small."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload)
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    bands = {0: 1, 2: 3, 6: 4}[color_type]
    compressor = zlib.compressobj(9)
    row = bytes(1 + width * bands)  # filter byte 0, then zeros
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def decompression_png() -> bytes:
    data = png_of_zeros(7000, 7000)  # the finding's file: 7000x7000 RGBA, ~190 KiB
    assert len(data) < 256 * 1024
    return data


def test_a_small_png_that_decodes_big_is_413_from_the_header(
    make_components: MakeComponents, decompression_png: bytes
) -> None:
    components = make_components(decode_concurrency=1, decode_queue=0)
    client = client_for(components)
    # Every decode slot is taken: had the upload reached the decoder it would be 503. A 413
    # proves it was judged from the header alone, before any pixel was decoded.
    with components.service.gate.slot():  # type: ignore[union-attr]
        answer = upload(client, decompression_png, {"Idempotency-Key": "bomb"})
    assert answer.status_code == 413, answer.json
    error = answer.json["error"]
    assert set(answer.json) == {"error"} and set(error) == {"code", "message"}
    assert error["code"] == "decode_too_large"
    assert "196000000 bytes" in error["message"] and "134217728 bytes" in error["message"]
    # Nothing half-written, and the key is free again.
    assert objects(components) == [] and image_items(components) == []
    assert idempotency_items(components) == [] and half_written(components) == []


def test_the_budget_is_pixels_times_bytes_a_pixel(make_components: MakeComponents) -> None:
    client = client_for(make_components(max_decode_bytes=4_000_000))
    cases = [
        (image_bytes("PNG", (1000, 1000), (1, 2, 3, 4)), 201),  # RGBA: 4 bytes a pixel, at 4 MB
        (image_bytes("PNG", (1001, 1000), (1, 2, 3, 4)), 413),
        (image_bytes("PNG", (1001, 1000), (1, 2, 3)), 413),  # RGB is held in 4 bytes too
        (png_of_zeros(2000, 2000, color_type=0), 201),  # greyscale: 1 byte a pixel
        # A baseline JPEG decodes at a reduced DCT scale (here 1000x750), so a 12 MP photo fits;
        # a progressive one keeps every coefficient of the full size while it decodes.
        (image_bytes("JPEG", (4000, 3000)), 201),
        (image_bytes("JPEG", (4000, 3000), progressive=True), 413),
    ]
    for data, status in cases:
        answer = upload(client, data)
        assert answer.status_code == status, (status, answer.json)
        if status == 413:
            assert answer.json["error"]["code"] == "decode_too_large"


def post_in_background(base: str, key: str) -> tuple[threading.Thread, list[Any]]:
    answers: list[Any] = []

    def post() -> None:
        answers.append(
            urllib3.request(
                "POST",
                f"{base}/images",
                headers={**ALICE, "Idempotency-Key": key},
                fields={"file": ("a.png", image_bytes("PNG", (300, 200)), "image/png")},
                timeout=30,
            )
        )

    thread = threading.Thread(target=post)
    thread.start()
    return thread, answers


def test_decodes_beyond_the_queue_are_503_with_retry_after(
    make_components: MakeComponents, serve_api: Callable[[Components], str]
) -> None:
    components = make_components(decode_concurrency=1, decode_queue=1, decode_wait_seconds=20)
    gate = components.service.gate
    assert gate is not None
    base = serve_api(components)
    with gate.slot():  # another upload is decoding
        queued, queued_answers = post_in_background(base, "queued")
        deadline = time.monotonic() + 10
        while gate.waiting < 1:
            assert time.monotonic() < deadline, "the first upload never queued"
            time.sleep(0.01)
        started = time.monotonic()
        refused = urllib3.request(
            "POST",
            f"{base}/images",
            headers={**ALICE, "Idempotency-Key": "refused"},
            fields={"file": ("b.png", image_bytes("PNG", (300, 200)), "image/png")},
            timeout=30,
        )
        assert time.monotonic() - started < 5  # refused at once, not after the wait
        assert refused.status == 503
        assert refused.json()["error"]["code"] == "busy"
        assert int(refused.headers["Retry-After"]) >= 1
        assert objects(components) == []  # nothing stored while the slot is held
    queued.join(timeout=30)
    assert [a.status for a in queued_answers] == [201]  # the queued one went through
    # The refused upload released its key: the same request now succeeds.
    retried = urllib3.request(
        "POST",
        f"{base}/images",
        headers={**ALICE, "Idempotency-Key": "refused"},
        fields={"file": ("b.png", image_bytes("PNG", (300, 200)), "image/png")},
        timeout=30,
    )
    assert retried.status == 201
    assert len(image_items(components)) == 2 and half_written(components) == []


def test_a_wait_past_the_bound_is_503(make_components: MakeComponents) -> None:
    components = make_components(decode_concurrency=1, decode_queue=4, decode_wait_seconds=0.2)
    client = client_for(components)
    with components.service.gate.slot():  # type: ignore[union-attr]
        answer = upload(client, image_bytes("PNG", (300, 200)))
    assert answer.status_code == 503 and answer.json["error"]["code"] == "busy"
    assert "0.2 s" in answer.json["error"]["message"] and answer.headers["Retry-After"] == "1"
    assert objects(components) == [] and image_items(components) == []
    assert upload(client, image_bytes("PNG", (300, 200))).status_code == 201  # slot free again


# -- 10. the synthetic marker only from the probe ------------------------------------------------


def traffic_of_uploads(components: Components) -> dict[str, float | None]:
    components.telemetry._sink.flush()  # type: ignore[attr-defined]
    return {
        traffic: metric(
            components.settings,
            "Requests",
            {"Operation": "upload", "Traffic": traffic, "Outcome": "success"},
        )
        for traffic in ("user", "synthetic")
    }


def test_the_synthetic_marker_from_a_user_is_ignored_and_logged(
    make_components: MakeComponents, caplog: pytest.LogCaptureFixture
) -> None:
    components = make_components(synthetic_user_ids=(PROBE,))
    client = client_for(components)
    marker = {"X-Synthetic-Traffic": "1"}
    with caplog.at_level(logging.WARNING, logger="image_core.api"):
        mallory = upload(client, image_bytes(), {"X-User-Id": "mallory", **marker})
        probe = upload(client, image_bytes(), {"X-User-Id": PROBE, **marker})
    assert mallory.status_code == 201 and probe.status_code == 201  # nobody is refused

    # Mallory's upload stays in the user traffic the upload_success check reads.
    assert traffic_of_uploads(components) == {"user": 1, "synthetic": 1}
    flags = {i["image_id"]["S"]: i["synthetic"]["BOOL"] for i in image_items(components)}
    assert flags == {mallory.json["id"]: False, probe.json["id"]: True}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "X-Synthetic-Traffic" in warnings[0] and "'mallory'" in warnings[0]


def test_by_default_the_marker_is_believed_from_nobody(make_components: MakeComponents) -> None:
    components = make_components()
    client = client_for(components)
    answer = upload(client, image_bytes(), {"X-User-Id": PROBE, "X-Synthetic-Traffic": "true"})
    assert answer.status_code == 201
    assert traffic_of_uploads(components) == {"user": 1, "synthetic": None}


# -- 11. no location in stored originals ---------------------------------------------------------


def located_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    exif[MAKE] = "Example Camera Co"
    gps = exif.get_ifd(GPS_IFD)
    gps.update(
        {1: "N", 2: (52.0, 22.0, 31.25), 3: "E", 4: (4.0, 53.0, 30.5), 27: b"ASCII\0\0\0" + PLACE}
    )
    return exif


def turned_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[ORIENTATION] = 3
    return exif


def photo(fmt: str, **save: Any) -> bytes:
    image = Image.new("RGB", (640, 480), (30, 120, 200))
    for x in range(0, 640, 9):
        image.putpixel((x, x % 480), (255, 255, 0))
    out = io.BytesIO()
    image.save(out, format=fmt, **save)
    return out.getvalue()


def stored_original(components: Components, body: dict[str, Any]) -> bytes:
    (key,) = [k for k in objects(components, "originals/") if body["id"] in k]
    s3 = components.storage._client
    data: bytes = s3.get_object(Bucket=components.settings.bucket, Key=key)["Body"].read()
    return data


def pixels(data: bytes) -> bytes:
    return Image.open(io.BytesIO(data)).tobytes()


def scan_data(jpeg: bytes) -> bytes:
    """Everything from the first start-of-scan marker on, found by walking the segments."""
    pos = 2
    while jpeg[pos + 1] != 0xDA:
        pos += 2 + struct.unpack_from(">H", jpeg, pos + 2)[0]
    return jpeg[pos:]


def test_gps_is_removed_from_a_stored_jpeg_without_re_encoding(
    client: Any, components: Components
) -> None:
    sent = photo("JPEG", quality=90, exif=located_exif())
    assert Image.open(io.BytesIO(sent)).getexif().get_ifd(GPS_IFD) and PLACE in sent

    answer = upload(client, sent)
    assert answer.status_code == 201, answer.json
    stored = stored_original(components, answer.json)

    exif = Image.open(io.BytesIO(stored)).getexif()
    assert GPS_IFD not in exif and exif.get_ifd(GPS_IFD) == {}
    assert PLACE not in stored and b"GPS" not in stored
    assert exif[ORIENTATION] == 6 and exif[MAKE] == "Example Camera Co"  # harmless tags kept
    assert scan_data(stored) == scan_data(sent)  # the entropy-coded data, byte for byte
    assert pixels(stored) == pixels(sent)
    assert len(stored) == len(sent)  # an edit in place: no segment grew or moved
    # What the API describes is what is stored and served.
    assert answer.json["size_bytes"] == len(stored)
    assert answer.json["sha256"] == hashlib.sha256(stored).hexdigest()
    assert (answer.json["width"], answer.json["height"]) == (480, 640)  # orientation still read


@pytest.mark.parametrize(
    "fmt",
    [
        "PNG",
        pytest.param(
            "WEBP",
            marks=pytest.mark.skipif(not features.check("webp"), reason="Pillow without WebP"),
        ),
    ],
)
def test_gps_is_removed_from_stored_png_and_webp(
    client: Any, components: Components, fmt: str
) -> None:
    save: dict[str, Any] = {"lossless": True} if fmt == "WEBP" else {}
    sent = photo(fmt, exif=located_exif(), **save)
    answer = upload(client, sent)
    assert answer.status_code == 201, answer.json
    stored = stored_original(components, answer.json)
    exif = Image.open(io.BytesIO(stored)).getexif()
    assert GPS_IFD not in exif and PLACE not in stored
    assert exif[ORIENTATION] == 6 and exif[MAKE] == "Example Camera Co"
    assert pixels(stored) == pixels(sent)


def test_xmp_and_iptc_that_can_name_the_place_are_dropped(
    client: Any, components: Components
) -> None:
    xmp = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description '
        b'exif:GPSLatitude="52,22.5N" photoshop:City="Amsterdam"/></rdf:RDF></x:xmpmeta>'
    )
    sent = photo("JPEG", exif=located_exif())
    iptc = b"Photoshop 3.0\x008BIM\x04\x04\x00\x00\x00\x00\x00\x0c\x1c\x02\x5a\x00\x07Utrecht\x00"
    segments = (
        (
            b"\xff\xe1"
            + struct.pack(">H", 2 + 29 + len(xmp))
            + b"http://ns.adobe.com/xap/1.0/\0"
            + xmp
        )
        + b"\xff\xed"
        + struct.pack(">H", 2 + len(iptc))
        + iptc
    )
    sent = sent[:2] + segments + sent[2:]
    answer = upload(client, sent)
    assert answer.status_code == 201, answer.json
    stored = stored_original(components, answer.json)
    assert b"Amsterdam" not in stored and b"Utrecht" not in stored and PLACE not in stored
    assert scan_data(stored) == scan_data(sent) and pixels(stored) == pixels(sent)
    assert Image.open(io.BytesIO(stored)).getexif()[ORIENTATION] == 6


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")  # Pillow's, while reading the header
def test_malformed_exif_is_dropped_whole_rather_than_kept(
    client: Any, components: Components
) -> None:
    exif = b"Exif\0\0MM\0\x2a\xff\xff\xff\xf0" + PLACE  # IFD0 points outside the block
    sent = photo("JPEG")
    sent = sent[:2] + b"\xff\xe1" + struct.pack(">H", 2 + len(exif)) + exif + sent[2:]
    answer = upload(client, sent)
    assert answer.status_code == 201, answer.json
    stored = stored_original(components, answer.json)
    assert PLACE not in stored and b"Exif\0\0" not in stored
    assert scan_data(stored) == scan_data(sent)


def test_originals_without_location_are_stored_as_sent(
    make_components: MakeComponents, client: Any, components: Components
) -> None:
    for sent in (
        photo("JPEG", exif=turned_exif()),  # EXIF without GPS
        photo("PNG"),
        image_bytes("GIF", (300, 200)),
    ):
        answer = upload(client, sent)
        assert stored_original(components, answer.json) == sent
    # And with IMAGE_STRIP_LOCATION=false, even a located original is kept as it came.
    off = make_components(strip_location=False)
    sent = photo("JPEG", exif=located_exif())
    answer = upload(client_for(off), sent)
    assert stored_original(off, answer.json) == sent


def test_damaged_exif_never_breaks_the_edit() -> None:
    sent = photo("JPEG", exif=located_exif())
    start = sent.index(b"Exif\0\0")
    rng = random.Random(12)
    for _ in range(300):
        damaged = bytearray(sent)
        for _ in range(rng.randint(1, 8)):
            damaged[rng.randrange(start, start + 200)] = rng.randrange(256)
        stripped = strip_location(bytes(damaged), "image/jpeg")
        assert scan_data(stripped) == scan_data(bytes(damaged))
