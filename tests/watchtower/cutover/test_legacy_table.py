"""Issue 14: the legacy table is one setting on each side (IMAGE_LEGACY_TABLE,
WATCHTOWER_LEGACY_TABLE), end to end with a schema-qualified, mixed-case name (so that only a
quoted identifier reaches it): the image core dual-writes into it; Watchtower's postgres_inserts
check, the cutover's evidence and `watchtower doctor` read it (the runbooks' SQL:
tests/watchtower/runbook/test_legacy_table_query.py). A name that is
not an SQL name is refused at start-up, naming the variable."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from image_core.api import create_app
from image_core.app import Components
from image_core.config import Settings as ImageSettings
from image_core.errors import ConfigError as ImageConfigError
from tests.helpers import image_bytes
from tests.watchtower.checks.conftest import World, run, settings_for
from tests.watchtower.cutover.conftest import running_cutover
from watchtower.config import Settings
from watchtower.cutover.config import CutoverSettings
from watchtower.doctor.run import diagnose
from watchtower.errors import ConfigError
from watchtower.model import Status
from watchtower.runtime import Watchtower
from watchtower.sandbox.servers import MotoServer
from watchtower.sources import PostgresSql

SCHEMA = "legacy_e2e"
TABLE = f"{SCHEMA}.Gallery_V1"  # mixed case: unquoted, PostgreSQL would fold it to gallery_v1
HOSTILE = [
    "gallery_images; DROP TABLE images",
    'gallery"images',
    "gallery_images--",
    "a.b.c",
    "1gallery",
    "gallery images",
    "g" * 64,
    ".gallery",
]


@pytest.fixture
def legacy_schema(legacy_url: str) -> Iterator[str]:
    with psycopg.connect(legacy_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        conn.execute(f"CREATE SCHEMA {SCHEMA}")
    yield legacy_url
    with psycopg.connect(legacy_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


def upload(components: Components) -> str:
    client = create_app(components=components).test_client()
    created = client.post(
        "/images",
        headers={"X-User-Id": "alice"},
        data={"file": (io.BytesIO(image_bytes()), "photo.jpg", "image/jpeg")},
        content_type="multipart/form-data",
    )
    assert created.status_code == 201, created.json
    return str(created.json["id"])


def wait_for_inserts(url: str, n: int) -> None:
    """PostgreSQL publishes a backend's table statistics when it ends: wait until it has."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT n_tup_ins FROM pg_stat_user_tables "
                "WHERE relid = to_regclass('legacy_e2e.\"Gallery_V1\"')"
            ).fetchone()
        if row is not None and row[0] >= n:
            return
        time.sleep(0.2)
    pytest.fail(f"the statistics never showed {n} inserts")


@pytest.mark.parametrize("name", HOSTILE)
def test_a_table_name_that_is_not_an_sql_name_is_refused_at_start_up(name: str) -> None:
    with pytest.raises(ImageConfigError, match="IMAGE_LEGACY_TABLE"):
        ImageSettings.from_env({"IMAGE_LEGACY_TABLE": name})
    with pytest.raises(ConfigError, match="WATCHTOWER_LEGACY_TABLE"):
        Settings.from_env({"WATCHTOWER_LEGACY_TABLE": name})
    with pytest.raises(ConfigError):  # the adapter checks again, whoever builds it
        PostgresSql("postgresql://nobody@127.0.0.1:9/x", table=name)


def test_valid_names_are_kept_as_given() -> None:
    assert ImageSettings.from_env({"IMAGE_LEGACY_TABLE": f" {TABLE} "}).legacy_table == TABLE
    assert Settings.from_env({"WATCHTOWER_LEGACY_TABLE": TABLE}).legacy_table == TABLE
    assert Settings.from_env({}).legacy_table == "gallery_images"


def test_the_image_core_writes_the_configured_table_and_watchtower_reads_it(
    make_components: Callable[..., Components],
    legacy_schema: str,
    moto: MotoServer,
    tmp_path: Path,
) -> None:
    url = legacy_schema
    components = make_components(dual_write=True, legacy_database_url=url, legacy_table=TABLE)
    flip = datetime.now(UTC) - timedelta(minutes=3)  # so the upload lands after the grace
    image_id = upload(components)
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute(f'SELECT id FROM {SCHEMA}."Gallery_V1"').fetchall() == [(image_id,)]
        # Nothing went to a case-folded or to the default table.
        folded = conn.execute(
            "SELECT to_regclass('legacy_e2e.gallery_v1'), to_regclass('public.gallery_images')"
        ).fetchone()
    assert folded == (None, None)
    wait_for_inserts(url, 1)

    # The check reads the configured table (rows by inserted_at, and its statistics).
    now = datetime.now(UTC) + timedelta(seconds=1)
    world = World(moto.url, now)
    world.function({"ENABLE_DYNAMODB_DUAL_WRITE": "true"})
    settings = settings_for(
        moto.url,
        legacy_database_url=url,
        legacy_table=TABLE,
        database_url=f"sqlite:///{tmp_path / 'w.sqlite'}",
    )
    result = run(settings, "postgres_inserts", now=now)["postgres_inserts"]
    assert result.status is Status.OK, result.reason
    assert result.reason.startswith(f"1 row inserted into {TABLE} in 5 min; dual-write is on")
    assert result.figures["inserted_rows_since_stats_reset"] == 1

    # The cutover's evidence reads it too: the row after the flip fails the window, by name.
    world.set_environment({"ENABLE_DYNAMODB_DUAL_WRITE": "false"})
    with running_cutover(settings, cutover=CutoverSettings(metrics_lag_seconds=0)) as service:
        service.open_window(flipped_by="olive", at=flip, now=flip, via="cli")
        later = now + timedelta(minutes=5)
        sample = service.tick(now=later)
        assert sample is not None
        reading = sample.reading("legacy_inserts")
        assert reading.readable, reading.error
        assert reading.figures["table"] == TABLE
        assert reading.figures["rows_since_flip"] == 1
        assert reading.figures["writes"]["ins"] == 1
        verdict = service.verdict(now=later).criterion("legacy_inserts")
    assert f"1 row inserted into {TABLE} after the flip" in verdict.detail


def test_doctor_says_whether_the_configured_table_exists_and_is_readable(
    make_watchtower: Callable[..., Watchtower], legacy_schema: str, moto: MotoServer
) -> None:
    wt = make_watchtower(
        aws_endpoint_url=moto.url, legacy_database_url=legacy_schema, legacy_table=TABLE
    )
    source = f"legacy table {TABLE} (WATCHTOWER_LEGACY_TABLE) and pg_stat_user_tables"

    def finding() -> tuple[str, str, str]:
        found = [f for f in diagnose(wt)[0] if f.source == source]
        assert found, "no finding for the legacy table"
        return found[0].state, found[0].detail, found[0].fix

    state, detail, fix = finding()
    assert state == "missing"
    assert detail == f"no table {TABLE} in the legacy database (on its search_path)"
    assert "WATCHTOWER_LEGACY_TABLE" in fix
    with psycopg.connect(legacy_schema, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE {SCHEMA}."Gallery_V1" (id text PRIMARY KEY)')
    assert finding()[:2] == ("ok", "table and statistics read")
