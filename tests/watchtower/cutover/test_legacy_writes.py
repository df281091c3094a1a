"""Issue 13, item 3: every write to the legacy table is seen, from PostgreSQL's own statistics
(n_tup_ins, n_tup_upd, n_tup_del deltas between samples), in frozen time through the service the
scheduler runs: an UPDATE at hour 12 fails the window with its time, a table without
`inserted_at` is still judged, and a statistics reset is survived and reported."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from tests.watchtower.checks.conftest import World
from tests.watchtower.cutover.conftest import Legacy, running_cutover
from tests.watchtower.cutover.evidence import samples, window
from watchtower.config import Settings
from watchtower.cutover.config import CutoverSettings
from watchtower.cutover.criteria.base import hm
from watchtower.cutover.judge import CriterionStatus, State, judge, slot_at
from watchtower.cutover.service import CutoverService

NO_INSERTED_AT = """
CREATE TABLE gallery_images (
    id text PRIMARY KEY, user_id text NOT NULL, original_key text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
)
"""


def execute(url: str, sql: str, *params: object) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql, params or None)


def wait_for_stats(url: str, **expected: int) -> None:
    """PostgreSQL publishes a backend's table statistics when it ends: wait until it has."""
    query = (
        "SELECT n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables "
        "WHERE relid = to_regclass('gallery_images')"
    )
    deadline = time.monotonic() + 15
    while True:
        with psycopg.connect(url) as conn:
            row = conn.execute(query).fetchone()
        seen = dict(zip(("ins", "upd", "del"), row or (0, 0, 0), strict=True))
        if all(seen[k] == v for k, v in expected.items()):
            return
        assert time.monotonic() < deadline, f"statistics never reached {expected}: {seen}"
        time.sleep(0.2)


@pytest.fixture
def frozen() -> datetime:
    """The flip, 13 hours ago, off the slot boundary: every tick below is at a chosen moment."""
    return slot_at(datetime.now(UTC) - timedelta(hours=13), 300) + timedelta(seconds=7)


@pytest.fixture
def opened(
    settings: Settings, world: World, frozen: datetime
) -> Callable[[], Iterator[CutoverService]]:
    world.function({"ENABLE_DYNAMODB_DUAL_WRITE": "false"})

    def start() -> Iterator[CutoverService]:
        with running_cutover(settings, cutover=CutoverSettings(metrics_lag_seconds=0)) as service:
            service.open_window(flipped_by="olive", at=frozen, now=frozen, via="cli")
            yield service

    return start


def test_an_update_at_hour_12_fails_the_window_with_its_time(
    opened: Callable[[], Iterator[CutoverService]],
    legacy: Legacy,
    legacy_url: str,
    frozen: datetime,
) -> None:
    image = legacy.insert(at=frozen - timedelta(hours=1))  # dual-written before the flip
    wait_for_stats(legacy_url, ins=1)
    for service in opened():
        before = frozen + timedelta(hours=11, minutes=55)
        assert service.tick(now=before) is not None
        clean = service.verdict(now=before).criterion("legacy_inserts")
        assert clean.status is CriterionStatus.OK, clean.detail
        # Hour 12: a forgotten writer updates a row (inserted_at does not change).
        execute(legacy_url, "UPDATE gallery_images SET thumbnail_key = 'x' WHERE id = %s", image)
        wait_for_stats(legacy_url, upd=1)
        seen = frozen + timedelta(hours=12, minutes=5)
        sample = service.tick(now=seen)
        assert sample is not None and sample.reading("legacy_inserts").figures["writes"]["upd"] == 1
        verdict = service.verdict(now=seen)
        writes = verdict.criterion("legacy_inserts")
        assert writes.status is CriterionStatus.FAILED, writes.detail
        assert writes.failed_at == seen
        assert writes.detail.startswith("1 update on gallery_images after the flip")
        assert f"between {hm(before)} and {hm(seen)}" in writes.detail
        assert "pg_stat_statements" not in writes.detail  # not installed on the test server
        assert sample.reading("legacy_inserts").figures["statements_note"] == (
            "pg_stat_statements is not installed"
        )
        assert verdict.state is State.FAILED


def test_a_table_without_inserted_at_is_still_judged(
    opened: Callable[[], Iterator[CutoverService]], legacy_url: str, frozen: datetime
) -> None:
    execute(legacy_url, NO_INSERTED_AT)
    for service in opened():
        first = frozen + timedelta(hours=1)
        sample = service.tick(now=first)
        assert sample is not None
        reading = sample.reading("legacy_inserts")
        assert reading.readable, reading.error
        assert reading.figures["has_inserted_at"] is False
        clean = service.verdict(now=first).criterion("legacy_inserts")
        assert clean.status is CriterionStatus.OK
        assert "the table has no inserted_at" in clean.detail
        execute(
            legacy_url,
            "INSERT INTO gallery_images (id, user_id, original_key) VALUES ('a', 'u', 'k')",
        )
        execute(legacy_url, "DELETE FROM gallery_images WHERE id = 'a'")
        wait_for_stats(legacy_url, ins=1, **{"del": 1})
        later = frozen + timedelta(hours=2)
        service.tick(now=later)
        writes = service.verdict(now=later).criterion("legacy_inserts")
        assert writes.status is CriterionStatus.FAILED
        assert writes.detail.startswith("1 insert, 1 delete on gallery_images after the flip")


def test_a_statistics_reset_is_survived_and_reported(
    opened: Callable[[], Iterator[CutoverService]],
    legacy: Legacy,
    legacy_url: str,
    frozen: datetime,
) -> None:
    for _ in range(3):
        legacy.insert(at=frozen - timedelta(hours=2))
    wait_for_stats(legacy_url, ins=3)
    for service in opened():
        service.tick(now=frozen + timedelta(hours=3))
        execute(
            legacy_url, "SELECT pg_stat_reset_single_table_counters('gallery_images'::regclass)"
        )
        wait_for_stats(legacy_url, ins=0)
        quiet = frozen + timedelta(hours=4)
        service.tick(now=quiet)
        ok = service.verdict(now=quiet).criterion("legacy_inserts")
        assert ok.status is CriterionStatus.OK, ok.detail  # a reset is not a write
        assert any("statistics reset" in e.text for e in ok.events)
        execute(
            legacy_url,
            "DELETE FROM gallery_images WHERE ctid IN (SELECT ctid FROM gallery_images LIMIT 1)",
        )
        wait_for_stats(legacy_url, **{"del": 1})
        late = frozen + timedelta(hours=5)
        service.tick(now=late)
        failed = service.verdict(now=late).criterion("legacy_inserts")
        assert failed.status is CriterionStatus.FAILED
        assert failed.detail.startswith("1 delete on gallery_images after the flip")


def test_the_statements_that_wrote_are_named_when_pg_stat_statements_has_them() -> None:
    """Pure: the statement pg_stat_statements recorded is in the failure's detail."""
    w = window()

    def stats(at: datetime, figures: dict) -> dict:
        later = at >= w.opened_at + timedelta(hours=12)
        figures["legacy_inserts"]["writes"] = {
            "ins": 0,
            "upd": 2 if later else 0,
            "del": 0,
            "reset": None,
        }
        figures["legacy_inserts"]["statements"] = [
            {
                "query": "UPDATE gallery_images SET thumbnail_key = $1 WHERE id = $2",
                "calls": 2,
                "rows": 2,
                "role": "reporting_job",
            }
        ]
        return figures

    verdict = judge(
        w, samples(w, change=stats), now=w.ends_at, settings=CutoverSettings(), signoffs=[]
    )
    writes = verdict.criterion("legacy_inserts")
    assert writes.status is CriterionStatus.FAILED
    assert "2 updates on gallery_images" in writes.detail
    assert (
        "UPDATE gallery_images SET thumbnail_key = $1 WHERE id = $2 (2 calls by reporting_job)"
        in writes.detail
    )
