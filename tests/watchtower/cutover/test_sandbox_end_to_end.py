"""End to end in the sandbox: the disable-dual-write runbook turns dual-write off and opens the
cutover window; the legacy-writes scenario (a stale deployment that keeps dual-writing) puts real
rows into gallery_images; the next sample fails the window and says when the first row landed;
the rollback-dual-write runbook then closes the window as rolled back.

Real parts: the image API process, moto, PostgreSQL, Redis, the runbook engine running the
repository's runbook with an approval, the flag follower, the cutover sampler. Slots are 5 s
instead of 5 min, so it takes under a minute.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import IN_CI
from watchtower.checks import tunables
from watchtower.config import Settings
from watchtower.cutover.config import CutoverSettings
from watchtower.cutover.judge import CriterionStatus, State
from watchtower.cutover.service import CutoverService
from watchtower.runbook.model import ExecutionStatus
from watchtower.runtime import Watchtower
from watchtower.runtime import build as build_watchtower
from watchtower.sandbox import demo
from watchtower.sandbox import stack as sandbox_stack
from watchtower.sandbox.gateway import FLAG
from watchtower.sandbox.servers import free_port, which

pytestmark = pytest.mark.slow

SLOT = 5  # seconds
GRACE = 10  # seconds after the flip in which a request in flight may still insert


def wait_for(what: str, condition: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.5)


def next_slot() -> None:
    """Sleep into the next slot, as the scheduler fires just after a boundary."""
    time.sleep(SLOT - time.time() % SLOT + 0.3)


@pytest.fixture
def stack() -> Iterator[sandbox_stack.Stack]:
    missing = [b for b in ("redis-server", "initdb", "postgres") if which(b) is None]
    if missing:
        message = f"the sandbox needs {', '.join(missing)} for gallery_images"
        pytest.fail(message) if IN_CI else pytest.skip(message)
    started = sandbox_stack.start(
        image_api_port=free_port(),
        traffic_rate=4.0,
        metrics_flush_seconds=1,
        flag_poll_seconds=0.5,
        telemetry_interval=2.0,
        log=lambda line: None,
    )
    yield started
    started.stop()


@pytest.fixture
def wt(stack: sandbox_stack.Stack, tmp_path: Path) -> Iterator[Watchtower]:
    env = demo.settings_environment(
        stack, port=free_port(), token=demo.new_token(), workdir=tmp_path, environ={}
    )
    built = build_watchtower(
        Settings.from_env(env, checks=tunables()),
        cutover=CutoverSettings(sample_interval=SLOT, metrics_lag_seconds=0, grace_seconds=GRACE),
    )
    yield built
    built.close()


def test_disable_dual_write_then_legacy_writes_fails_the_window_at_the_inserts_time(
    stack: sandbox_stack.Stack, wt: Watchtower
) -> None:
    cutover: CutoverService = wt.cutover
    legacy_url = stack.postgres.url  # type: ignore[union-attr]

    def dual_writing() -> bool:
        result = wt.run_checks(["dual_write"])[0]
        return bool(result.figures.get("attempts")) and result.figures.get("flag") == 1.0

    wait_for("dual-writes from the sandbox's traffic", dual_writing, 60)

    # The runbook: the pre-flight report (a sandbox has minutes of dual-write, not the 7 days
    # the gate asks for, so the operator overrides it, on the record), an approval by someone
    # else, the flip, the verification, and the event that opens the window.
    engine = wt.runbooks
    # A row only the legacy table has: the reconciliation (id for id) fails the gate, whatever
    # the sandbox's few minutes of dual-write metrics say, and nothing runs without an override.
    orphan = ("orphan-e2e", "nobody", "o.jpg", "t.jpg", "image/jpeg", 1, 1, 1)
    with psycopg.connect(legacy_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO gallery_images (id, user_id, original_key, thumbnail_key, content_type,"
            " width, height, size_bytes, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s,"
            " now() - interval '2 minutes')",  # inside the report's range, which ends on a minute
            orphan,
        )
    refused = engine.start("disable-dual-write", params={}, started_by="olive")
    engine.run_pending()
    assert engine.get(refused).status is ExecutionStatus.FAILED
    (gate,) = [s for s in engine.get(refused).steps if s.step_id == "preflight-report"]
    assert gate.error.startswith("the pre-flight gate failed"), gate.error
    assert "1 only in PostgreSQL (at most 0 allowed): orphan-e2e" in gate.error, gate.error
    with psycopg.connect(legacy_url, autocommit=True) as conn:
        conn.execute("DELETE FROM gallery_images WHERE id = %s", (orphan[0],))
    override = {"override_by": "olive", "override_reason": "sandbox: minutes of history only"}
    run = engine.start("disable-dual-write", params=override, started_by="olive")
    engine.run_pending()
    waiting = engine.get(run).waiting_step
    # The sandbox serves its function through the alias `live` (issue 14): the flip publishes
    # a version and moves the alias, after the approval.
    assert waiting is not None and waiting.step_id == "flip-alias", engine.get(run)
    engine.approve(run, by="ada", comment="pre-flight overridden: sandbox")
    engine.run_pending()
    execution = engine.get(run)
    assert execution.status is ExecutionStatus.SUCCEEDED, execution

    cutover.tick(now=wt.now())
    window = cutover.store.open_window()
    assert window is not None and window.via == "runbook"
    assert "olive" in window.opened_by and "ada" in window.opened_by
    assert "disable-dual-write" in window.opened_by

    # The flag follower restarts the image API without dual-write; past the grace, the
    # window's evidence is clean.
    wait_for(
        "the image API without dual-write",
        lambda: stack.image_api.environment.get(FLAG) == "false",
        30,
    )
    time.sleep(
        max(0.0, (window.opened_at + timedelta(seconds=GRACE) - datetime.now(UTC)).total_seconds())
    )
    next_slot()
    cutover.tick(now=wt.now())
    clean = cutover.verdict(now=wt.now())
    assert clean.criterion("legacy_inserts").status is CriterionStatus.OK, clean.criterion(
        "legacy_inserts"
    )
    assert clean.criterion("flag").status is CriterionStatus.OK

    # A stale deployment keeps dual-writing: real rows land in gallery_images.
    stack.scenarios.switch("legacy-writes")
    try:

        def first_row() -> datetime | None:
            with psycopg.connect(legacy_url) as conn:
                row = conn.execute(
                    "SELECT min(inserted_at) FROM gallery_images WHERE inserted_at > %s",
                    (window.opened_at + timedelta(seconds=GRACE),),
                ).fetchone()
            return row[0] if row else None

        inserted = wait_for("a row in gallery_images", first_row, 60)

        def failed_at_the_row() -> Any:
            # The statistics may see the write a sample before the rows do (then the failure
            # is at that sample's time); the row's own time wins once a sample reads it.
            next_slot()
            cutover.tick(now=wt.now())
            verdict = cutover.verdict(now=wt.now())
            legacy = verdict.criterion("legacy_inserts")
            return verdict if legacy.failed_at == inserted else None

        verdict = wait_for("the window failed at the row's time", failed_at_the_row, 4 * SLOT)
    finally:
        stack.scenarios.switch("healthy")

    legacy = verdict.criterion("legacy_inserts")
    assert legacy.status is CriterionStatus.FAILED, legacy
    assert legacy.failed_at == inserted
    assert inserted.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") in legacy.detail
    assert verdict.state is State.FAILED
    assert not verdict.can_sign

    # The rollback plan, one run of the rollback runbook: the window closes as rolled back.
    back = engine.start("rollback-dual-write", params={}, started_by="olive")
    engine.run_pending()
    for _ in range(5):  # whatever waits for an approval (the flag step)
        if engine.get(back).waiting_step is None:
            break
        engine.approve(back, by="ada", comment="roll back: legacy rows after the flip")
        engine.run_pending()
    assert engine.get(back).status is ExecutionStatus.SUCCEEDED, engine.get(back)
    # No hole: the images uploaded while the flag was off are backfilled, and the stores agree.
    steps = {s.step_id: s for s in engine.get(back).steps}
    assert steps["backfill"].status.value == "succeeded", steps["backfill"].error
    assert steps["reconcile"].status.value == "succeeded", steps["reconcile"].error
    assert steps["reconcile"].outputs["differences"] == 0
    cutover.tick(now=wt.now())
    closed = cutover.verdict(window.id, now=wt.now())
    assert closed.state is State.ROLLED_BACK
    assert "rollback-dual-write" in (closed.window.closed_by or "")
