from __future__ import annotations

from datetime import datetime, timedelta

import psycopg
import pytest

from tests.watchtower.checks.conftest import LEGACY_SCHEMA as SCHEMA
from tests.watchtower.checks.conftest import World, run, settings_for
from watchtower.checks.postgres_inserts import judge
from watchtower.model import Status
from watchtower.sandbox.servers import MotoServer, free_port

PARAMS = {"window_seconds": 300}


def insert_rows(url: str, *inserted_at: datetime) -> None:
    """Rows as the image core's dual-write leaves them, inserted at the given times."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SCHEMA)
        for n, at in enumerate(inserted_at):
            conn.execute(
                "INSERT INTO gallery_images (id, user_id, original_key, thumbnail_key, "
                "content_type, width, height, size_bytes, created_at, inserted_at) "
                "VALUES (%s, 'u-1', 'o', 't', 'image/jpeg', 10, 10, 100, %s, %s)",
                (f"img-{n}", at, at),
            )
        conn.execute("SELECT pg_stat_force_next_flush()")


def test_judge_rows_after_dual_write_was_turned_off_are_critical() -> None:
    status, reason = judge(3, False, PARAMS, flag_note="ENABLE_DYNAMODB_DUAL_WRITE=false")
    assert status is Status.CRITICAL
    assert reason.startswith(
        "3 rows inserted into gallery_images in 5 min after dual-write was turned off"
    )


def test_judge_no_rows_with_dual_write_off_is_ok() -> None:
    assert judge(0, False, PARAMS) == (
        Status.OK,
        "no rows inserted into gallery_images in 5 min; dual-write is off",
    )


def test_judge_rows_with_dual_write_on_are_ok() -> None:
    assert judge(12, True, PARAMS) == (
        Status.OK,
        "12 rows inserted into gallery_images in 5 min; dual-write is on",
    )


def test_judge_rows_with_an_unreadable_flag_are_unknown() -> None:
    status, reason = judge(2, None, PARAMS, flag_note="endpoint down")
    assert status is Status.UNKNOWN
    assert "flag could not be read (endpoint down)" in reason


def test_judge_no_rows_with_an_unreadable_flag_is_ok() -> None:
    # 0 is the number that must hold once dual-write is off, whatever the flag says.
    assert judge(0, None, PARAMS, flag_note="endpoint down")[0] is Status.OK


@pytest.mark.parametrize(("flag", "status"), [("false", Status.CRITICAL), ("true", Status.OK)])
def test_rows_in_the_window_judged_against_the_deployed_flag(
    world: World,
    moto: MotoServer,
    legacy_url: str,
    now: datetime,
    flag: str,
    status: Status,
) -> None:
    world.function({"ENABLE_DYNAMODB_DUAL_WRITE": flag})
    insert_rows(
        legacy_url,
        now - timedelta(seconds=30),
        now - timedelta(seconds=200),
        now - timedelta(hours=2),
    )  # the last one is before the window
    settings = settings_for(moto.url, legacy_database_url=legacy_url)

    result = run(settings, "postgres_inserts", now=now)["postgres_inserts"]

    assert result.status is status, result.reason
    assert result.figures["inserted_rows"] == 2
    assert result.figures["inserted_rows_since_stats_reset"] == 3
    assert result.figures["flag"] == (1.0 if flag == "true" else 0.0)
    assert "2 rows inserted into gallery_images in 5 min" in result.reason


def test_no_rows_after_the_flag_is_off_is_ok(
    world: World, moto: MotoServer, legacy_url: str, now: datetime
) -> None:
    world.function({"ENABLE_DYNAMODB_DUAL_WRITE": "false"})
    insert_rows(legacy_url, now - timedelta(hours=1))
    settings = settings_for(moto.url, legacy_database_url=legacy_url)

    result = run(settings, "postgres_inserts", now=now)["postgres_inserts"]

    assert result.status is Status.OK, result.reason
    assert result.figures["inserted_rows"] == 0


def test_rows_with_the_function_missing_are_unknown(
    moto: MotoServer, legacy_url: str, now: datetime
) -> None:
    insert_rows(legacy_url, now - timedelta(seconds=10))
    settings = settings_for(moto.url, legacy_database_url=legacy_url)

    result = run(settings, "postgres_inserts", now=now)["postgres_inserts"]

    assert result.status is Status.UNKNOWN
    assert "Lambda function 'image-api' configuration could not be read" in result.reason
    assert result.figures["inserted_rows"] == 1


def test_legacy_database_not_configured_is_unknown(moto: MotoServer, now: datetime) -> None:
    result = run(settings_for(moto.url), "postgres_inserts", now=now)["postgres_inserts"]

    assert result.status is Status.UNKNOWN
    assert result.reason == (
        "the legacy database is not configured (WATCHTOWER_LEGACY_DATABASE_URL)"
    )


def test_missing_table_is_unknown(
    world: World, moto: MotoServer, legacy_url: str, now: datetime
) -> None:
    world.function({"ENABLE_DYNAMODB_DUAL_WRITE": "false"})
    settings = settings_for(moto.url, legacy_database_url=legacy_url)

    result = run(settings, "postgres_inserts", now=now)["postgres_inserts"]

    assert result.status is Status.UNKNOWN
    assert "gallery_images" in result.reason


def test_postgres_down_is_unknown(moto: MotoServer, now: datetime) -> None:
    down = f"postgresql://postgres@127.0.0.1:{free_port()}/gallery"

    result = run(settings_for(moto.url, legacy_database_url=down), "postgres_inserts", now=now)[
        "postgres_inserts"
    ]

    assert result.status is Status.UNKNOWN
    assert result.reason.startswith("PostgreSQL could not be read")
    assert "\n" not in result.reason  # a reason is one line


NO_INSERTED_AT = (
    "CREATE TABLE gallery_images (id text PRIMARY KEY, user_id text NOT NULL, thumbnail_key text)"
)


def test_updates_and_deletes_without_inserted_at_are_critical_once_dual_write_is_off(
    world: World, moto: MotoServer, legacy_url: str, now: datetime
) -> None:
    """Issue 13: every write, from PostgreSQL's statistics, on a table with no inserted_at."""
    world.function({"ENABLE_DYNAMODB_DUAL_WRITE": "false"})
    with psycopg.connect(legacy_url, autocommit=True) as conn:
        conn.execute(NO_INSERTED_AT)
        conn.execute("INSERT INTO gallery_images (id, user_id) VALUES ('a', 'u'), ('b', 'u')")
        conn.execute("SELECT pg_stat_force_next_flush()")
    settings = settings_for(moto.url, legacy_database_url=legacy_url)
    first = run(settings, "postgres_inserts", now=now)["postgres_inserts"]
    assert first.status is Status.OK, first.reason  # the first reading starts the count
    assert "first reading" in first.reason
    with psycopg.connect(legacy_url, autocommit=True) as conn:
        conn.execute("UPDATE gallery_images SET thumbnail_key = 'x' WHERE id = 'a'")
        conn.execute("DELETE FROM gallery_images WHERE id = 'b'")
        conn.execute("SELECT pg_stat_force_next_flush()")
    later = now + timedelta(minutes=1)
    result = run(settings, "postgres_inserts", now=later)["postgres_inserts"]
    assert result.status is Status.CRITICAL, result.reason
    assert result.reason.startswith(
        "0 inserted, 1 updated and 1 deleted rows of gallery_images in 5 min after dual-write "
        "was turned off"
    )
    assert (result.figures["updates"], result.figures["deletes"]) == (1.0, 1.0)
    quiet = run(settings, "postgres_inserts", now=later + timedelta(minutes=1))
    assert quiet["postgres_inserts"].status is Status.OK


def test_writes_in_flight_at_the_flip_are_counted_apart_and_later_ones_are_critical(
    world: World, moto: MotoServer, legacy_url: str, now: datetime
) -> None:
    """Requests in flight when the flag goes off still write for a moment: seen on, then off,
    the rows until flip_grace_seconds after the first reading with it off are shown, not
    failing (LegacyInsertsAfterCutover fired after every cutover before); one after is not."""
    world.function({"ENABLE_DYNAMODB_DUAL_WRITE": "true"})
    settings = settings_for(moto.url, legacy_database_url=legacy_url)
    insert_rows(legacy_url, now - timedelta(seconds=30))
    on = run(settings, "postgres_inserts", now=now)["postgres_inserts"]
    assert on.status is Status.OK and on.figures["flag"] == 1.0, on.reason

    world.set_environment({"ENABLE_DYNAMODB_DUAL_WRITE": "false"})
    off_at = now + timedelta(minutes=1)
    with psycopg.connect(legacy_url, autocommit=True) as conn:  # two requests in flight
        for n, seconds in enumerate((50, 70)):
            at = now + timedelta(seconds=seconds)
            conn.execute(
                "INSERT INTO gallery_images (id, user_id, original_key, thumbnail_key, "
                "content_type, width, height, size_bytes, created_at, inserted_at) "
                "VALUES (%s, 'u-1', 'o', 't', 'image/jpeg', 10, 10, 100, %s, %s)",
                (f"flight-{n}", at, at),
            )
    off = run(settings, "postgres_inserts", now=off_at)["postgres_inserts"]
    assert off.status is Status.OK, off.reason
    assert off.figures["inserted_rows"] == 0
    assert off.figures["rows_at_the_flip"] == 3  # the one before the flip and the two in flight
    assert "3 rows written before the flip or up to 120 s after it was seen" in off.reason

    stray = off_at + timedelta(seconds=150)  # after the grace: a writer that should not be
    with psycopg.connect(legacy_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO gallery_images (id, user_id, original_key, thumbnail_key, content_type,"
            " width, height, size_bytes, created_at, inserted_at) VALUES ('stray', 'u-1', 'o',"
            " 't', 'image/jpeg', 10, 10, 100, %s, %s)",
            (stray, stray),
        )
    later = run(settings, "postgres_inserts", now=stray + timedelta(seconds=10))
    result = later["postgres_inserts"]
    assert result.status is Status.CRITICAL, result.reason
    assert result.figures["inserted_rows"] == 1
    assert result.figures["rows_at_the_flip"] == 3


def test_a_process_that_never_saw_the_flag_on_counts_every_write(
    world: World, moto: MotoServer, legacy_url: str, now: datetime
) -> None:
    """No flip seen (started after it, or the flag unreadable before): nothing is excused."""
    world.function({"ENABLE_DYNAMODB_DUAL_WRITE": "false"})
    settings = settings_for(moto.url, legacy_database_url=legacy_url)
    insert_rows(legacy_url, now - timedelta(seconds=5))
    first = run(settings, "postgres_inserts", now=now)["postgres_inserts"]
    assert first.status is Status.CRITICAL, first.reason
    assert first.figures["rows_at_the_flip"] == 0


def test_statistics_across_the_flip_are_counted_apart_without_inserted_at(
    world: World, moto: MotoServer, legacy_url: str, now: datetime
) -> None:
    """A table with no inserted_at: the statistics' deltas read within the grace are counted
    apart; a delta read after it is judged whole."""
    world.function({"ENABLE_DYNAMODB_DUAL_WRITE": "true"})
    with psycopg.connect(legacy_url, autocommit=True) as conn:
        conn.execute(NO_INSERTED_AT)
    settings = settings_for(moto.url, legacy_database_url=legacy_url)

    def write(*ids: str) -> None:
        with psycopg.connect(legacy_url, autocommit=True) as conn:
            for id_ in ids:
                conn.execute("INSERT INTO gallery_images (id, user_id) VALUES (%s, 'u')", (id_,))
            conn.execute("SELECT pg_stat_force_next_flush()")

    assert run(settings, "postgres_inserts", now=now)["postgres_inserts"].status is Status.OK
    world.set_environment({"ENABLE_DYNAMODB_DUAL_WRITE": "false"})
    write("in-flight-1", "in-flight-2")
    off = run(settings, "postgres_inserts", now=now + timedelta(minutes=1))["postgres_inserts"]
    assert off.status is Status.OK, off.reason
    assert off.figures["rows_at_the_flip"] == 2 and off.figures["inserts"] == 0
    write("late-in-flight")
    within = run(settings, "postgres_inserts", now=now + timedelta(minutes=3))["postgres_inserts"]
    assert within.status is Status.OK and within.figures["rows_at_the_flip"] == 1, within.reason
    write("stray")
    judged = run(settings, "postgres_inserts", now=now + timedelta(minutes=4))
    assert judged["postgres_inserts"].status is Status.CRITICAL, judged["postgres_inserts"].reason
    assert judged["postgres_inserts"].figures["inserts"] == 1
