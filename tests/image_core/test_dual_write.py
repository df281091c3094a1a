"""The legacy PostgreSQL dual-write (Story 6.1), against a real PostgreSQL."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from typing import Any

import psycopg
from flask.testing import FlaskClient

from image_core.api import create_app
from image_core.app import Components, build
from image_core.config import Settings
from tests.helpers import image_bytes
from tests.image_core.readback import image_items, metric
from watchtower.sandbox import servers

ALICE = {"X-User-Id": "alice"}


def upload(client: FlaskClient, data: bytes, headers: dict[str, str] | None = None) -> Any:
    return client.post(
        "/images",
        headers={**ALICE, **(headers or {})},
        data={"file": (io.BytesIO(data), "photo.jpg", "image/jpeg")},
        content_type="multipart/form-data",
    )


def rows(legacy_url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(legacy_url, autocommit=True) as conn:
        return conn.execute(
            "SELECT id, user_id, original_key, thumbnail_key, content_type, width, height,"
            " size_bytes FROM gallery_images ORDER BY inserted_at"
        ).fetchall()


def table_exists(legacy_url: str) -> bool:
    with psycopg.connect(legacy_url, autocommit=True) as conn:
        found = conn.execute("SELECT to_regclass('public.gallery_images')").fetchone()
    return found is not None and found[0] is not None


def dual_writes(components: Components, outcome: str) -> float | None:
    components.telemetry._sink.flush()  # type: ignore[attr-defined]
    return metric(components.settings, "DualWrites", {"Outcome": outcome})


def test_bootstrap_creates_gallery_images(
    make_components: Callable[..., Components], legacy_url: str
) -> None:
    assert not table_exists(legacy_url)
    make_components(dual_write=True, legacy_database_url=legacy_url)
    assert table_exists(legacy_url)
    make_components(dual_write=True, legacy_database_url=legacy_url)  # idempotent
    assert rows(legacy_url) == []


def test_upload_inserts_one_row_replay_adds_none_delete_removes_it(
    make_components: Callable[..., Components], legacy_url: str
) -> None:
    components = make_components(dual_write=True, legacy_database_url=legacy_url)
    client = create_app(components=components).test_client()
    data, key = image_bytes("JPEG", (1000, 500)), {"Idempotency-Key": "dw-1"}

    created = upload(client, data, key)
    assert created.status_code == 201
    image_id = created.json["id"]
    assert rows(legacy_url) == [
        (
            image_id,
            "alice",
            f"originals/alice/{image_id}.jpg",
            f"thumbnails/alice/{image_id}.jpg",
            "image/jpeg",
            1000,
            500,
            len(data),
        )
    ]

    assert upload(client, data, key).status_code == 200
    # Even a second insert of the same record (a retried mirror) is absorbed by the key.
    record = components.metadata.get_image(image_id)
    assert record is not None
    components.legacy.insert(record)
    assert [r[0] for r in rows(legacy_url)] == [image_id]
    assert dual_writes(components, "success") == 1

    assert client.delete(f"/images/{image_id}", headers=ALICE).status_code == 204
    assert rows(legacy_url) == []
    assert dual_writes(components, "success") == 2  # the insert, then the delete
    assert dual_writes(components, "failure") is None


def test_postgres_down_never_fails_an_upload_and_is_counted(
    make_components: Callable[..., Components], make_settings: Callable[..., Settings]
) -> None:
    make_components()  # table and bucket; the legacy database is never reachable below
    closed = f"postgresql://postgres@127.0.0.1:{servers.free_port()}/gallery?connect_timeout=1"
    components = build(make_settings(dual_write=True, legacy_database_url=closed))
    try:
        client = create_app(components=components).test_client()
        created = upload(client, image_bytes())
        assert created.status_code == 201
        assert [i["image_id"]["S"] for i in image_items(components)] == [created.json["id"]]
        assert client.get(f"/images/{created.json['id']}", headers=ALICE).status_code == 200

        assert dual_writes(components, "failure") == 1
        assert dual_writes(components, "success") is None
        failures = metric(components.settings, "DualWriteFailures", {"Reason": "postgresql"})
        assert failures == 1
    finally:
        components.close()


def test_a_killed_connection_is_retried_once_on_a_fresh_one(
    make_components: Callable[..., Components], legacy_url: str
) -> None:
    components = make_components(dual_write=True, legacy_database_url=legacy_url)
    client = create_app(components=components).test_client()
    first = upload(client, image_bytes(color=(1, 1, 1))).json["id"]
    with psycopg.connect(legacy_url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    second = upload(client, image_bytes(color=(2, 2, 2))).json["id"]
    third = upload(client, image_bytes(color=(3, 3, 3))).json["id"]
    # The insert is idempotent, so the write that met the dead connection was retried, not lost.
    assert sorted(r[0] for r in rows(legacy_url)) == sorted([first, second, third])
    assert dual_writes(components, "success") == 3
    assert dual_writes(components, "failure") is None


def test_flag_off_writes_nothing_to_postgres(
    make_components: Callable[..., Components], legacy_url: str
) -> None:
    # The URL is configured, the flag is off: bootstrap and uploads leave PostgreSQL alone.
    components = make_components(dual_write=False, legacy_database_url=legacy_url)
    assert components.legacy is None
    client = create_app(components=components).test_client()
    assert upload(client, image_bytes()).status_code == 201
    assert not table_exists(legacy_url)
    assert dual_writes(components, "success") is None


def test_flag_off_never_imports_psycopg(
    make_components: Callable[..., Components], legacy_url: str
) -> None:
    components = make_components()
    settings = components.settings
    code = textwrap.dedent(
        """
        import io, sys
        sys.modules["psycopg"] = None  # as if not installed: importing it raises ImportError
        from image_core.api import create_app
        from image_core.app import build
        from image_core.config import Settings

        components = build(Settings.from_env())
        try:
            client = create_app(components=components).test_client()
            answer = client.post(
                "/images", headers={"X-User-Id": "dora"},
                data={"file": (io.BytesIO(sys.stdin.buffer.read()), "a.png")},
                content_type="multipart/form-data",
            )
            assert answer.status_code == 201, answer.json
        finally:
            components.close()
        assert "image_core.legacy" not in sys.modules
        print("uploaded without psycopg")
        """
    )
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": str(settings.aws_endpoint_url),
        "IMAGE_TABLE": settings.table,
        "IMAGE_BUCKET": settings.bucket,
        "IMAGE_TRUST_USER_HEADER": "1",
        "IMAGE_METRICS_SINK": "none",
        "IMAGE_LEGACY_DATABASE_URL": legacy_url,
        "ENABLE_DYNAMODB_DUAL_WRITE": "false",
    }
    done = subprocess.run(
        [sys.executable, "-c", code],
        input=image_bytes("PNG"),
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().strip() == "uploaded without psycopg"
    assert [i["user_id"]["S"] for i in image_items(components)] == ["dora"]
    assert not table_exists(legacy_url)


def test_bootstrap_with_dual_write_creates_gallery_images(
    moto: servers.MotoServer, legacy_url: str
) -> None:
    """(From test_cli: every legacy test lives in this one module, deleted with legacy.py.)"""
    from tests.image_core.test_cli import CLEARED, run

    env = {
        **CLEARED,
        "AWS_ENDPOINT_URL": moto.url,
        "IMAGE_METRICS_SINK": "none",
        "ENABLE_DYNAMODB_DUAL_WRITE": "true",
        "IMAGE_LEGACY_DATABASE_URL": legacy_url,
    }
    for _ in range(2):  # idempotent
        code, out, _ = run(["bootstrap"], env)
        assert code == 0, out
        assert out.splitlines()[-1] == "table gallery_images: ready"
    with psycopg.connect(legacy_url, autocommit=True) as conn:
        found = conn.execute("SELECT to_regclass('public.gallery_images')").fetchone()
    assert found is not None and found[0] == "gallery_images"
