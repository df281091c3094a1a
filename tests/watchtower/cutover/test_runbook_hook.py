"""The disable-dual-write runbook's pre-flight gate, run by the real engine: a failed gate stops
the run before the approval; an override with who and why lets it reach the approval, and is in
the audit log."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.watchtower.checks.conftest import World
from tests.watchtower.cutover.conftest import Images, Legacy
from tests.watchtower.cutover.test_preflight import healthy_week, same_images
from watchtower.config import Settings
from watchtower.cutover.store import CutoverStore
from watchtower.runbook.model import ExecutionStatus
from watchtower.runtime import Watchtower, build

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def wt(settings: Settings, tmp_path: Path, world: World) -> Iterator[Watchtower]:
    world.function({"ENABLE_DYNAMODB_DUAL_WRITE": "true"})
    built = build(replace(settings, runbooks_dir=str(ROOT / "runbooks")))
    assert not built.runbooks.problems, built.runbooks.problems
    yield built
    built.close()


def test_a_failed_gate_stops_the_run_and_an_override_reaches_the_approval(
    wt: Watchtower, world: World, images: Images, legacy: Legacy, now: datetime
) -> None:
    healthy_week(world)
    same_images(images, legacy, now)
    images.put(created=now - timedelta(hours=2))  # a dual-write that never reached PostgreSQL
    engine = wt.runbooks

    refused = engine.start("disable-dual-write", params={}, started_by="olive")
    engine.run_pending()
    run = engine.get(refused)
    assert run.status is ExecutionStatus.FAILED
    step = next(s for s in run.steps if s.step_id == "preflight-report")
    assert "pre-flight gate failed" in step.error and "1 missing from PostgreSQL" in step.error

    overridden = engine.start(
        "disable-dual-write",
        params={
            "override_by": "Olive Ops",
            "override_reason": "the missing row is a known test image",
        },
        started_by="olive",
    )
    engine.run_pending()
    run = engine.get(overridden)
    assert run.waiting_step is not None and run.waiting_step.step_id == "flip"
    evidence = {s.step_id: s for s in run.evidence()}
    assert evidence["preflight-report"].outputs["gate"] == "overridden"
    assert "overridden by Olive Ops" in evidence["preflight-report"].outputs["reason"]
    audit = CutoverStore(wt.store.engine).audit()
    assert [e.action for e in audit] == ["preflight", "override"]
    assert audit[-1].detail["override"]["reason"] == "the missing row is a known test image"
    assert audit[-1].detail["execution_id"] == overridden
    assert any(e.action == "cutover.preflight_overridden" for e in engine.audit(overridden))
