"""The pre-flight dual-write report and its gate, against moto (CloudWatch, DynamoDB) and the
real PostgreSQL: pass, fail, override, and the runbook action that shows it before approval."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import boto3
import pytest

from tests.watchtower.checks.conftest import World
from tests.watchtower.cutover.conftest import Images, Legacy
from watchtower.config import Settings
from watchtower.cutover.gate import Override
from watchtower.cutover.markdown import preflight_markdown
from watchtower.cutover.render import preflight_html
from watchtower.cutover.service import CutoverService
from watchtower.runbook.actions import registry
from watchtower.runbook.actions.base import ActionContext
from watchtower.runbook.errors import ActionError


def healthy_week(world: World, *, successes: float = 4000, failures: float = 1) -> None:
    """Dual-writes on each of the last 7 days, and one failure (PostgreSQL) on day 3."""
    for day in range(7):
        at = world.ago(day * 86400 + 3600)
        world.dual_writes(successes / 7, failures if day == 3 else 0, at=at)
        world.requests("success", successes / 7, at=at)
    if failures:
        world.metric(
            "DualWriteFailures", failures, at=world.ago(3 * 86400 + 3600), Reason="postgresql"
        )


def same_images(images: Images, legacy: Legacy, now: datetime, n: int = 3) -> None:
    for k in range(n):
        at = now - timedelta(days=k + 1)
        image_id = images.put(created=at)
        legacy.insert(at=at, image_id=image_id)
    images.claim("not-an-image")
    # Outside the window, on both sides: not counted.
    old = now - timedelta(days=9)
    legacy.insert(at=old, image_id=images.put(created=old))


def test_a_healthy_week_passes_the_gate_in_one_get_metric_data_call(
    service: CutoverService, world: World, images: Images, legacy: Legacy, now: datetime
) -> None:
    healthy_week(world)
    same_images(images, legacy, now)
    calls = service.evidence_ports.metrics.calls  # type: ignore[attr-defined]
    result = service.preflight(now=now)
    assert service.evidence_ports.metrics.calls - calls == 1  # type: ignore[attr-defined]
    report, doc = result.report, result.document
    assert result.gate.passed, result.gate.failures
    assert report.attempts == pytest.approx(4001)
    assert report.failures == 1
    assert report.failures_by_reason == {"postgresql": 1}
    assert report.success_ratio == pytest.approx(4000 / 4001)
    assert len(report.daily) == 7
    assert sum(d.failures for d in report.daily) == 1
    failing_day = next(d for d in report.daily if d.failures)
    assert failing_day.start <= world.ago(3 * 86400 + 3600) < failing_day.end
    rec = report.reconciliation
    assert (rec.dynamodb_images, rec.postgres_rows, rec.difference) == (3, 3, 0)
    assert rec.upload_requests == pytest.approx(4000)
    assert "they agree" in doc["gate"]["checks"][1]["text"]
    assert len(doc["sha256"]) == 64
    md = preflight_markdown(doc)
    assert "**Gate PASSED**" in md and "| 4,001 | 4,000 | 1 | 99.975% |" in md
    html = preflight_html(doc)
    assert "gate passed" in html and "<script" not in html and "style=" not in html


def test_under_99_9_percent_fails_and_says_why(
    service: CutoverService, world: World, images: Images, legacy: Legacy, now: datetime
) -> None:
    healthy_week(world, successes=700, failures=3)
    same_images(images, legacy, now)
    result = service.preflight(now=now)
    assert not result.gate.passed
    assert result.gate.failures == [
        "dual-write success 99.57% of 703 attempts (3 failed) in 7 days: not above 99.9%"
    ]


def test_missing_rows_in_postgresql_fail_the_reconciliation(
    service: CutoverService, world: World, images: Images, legacy: Legacy, now: datetime
) -> None:
    healthy_week(world)
    same_images(images, legacy, now)
    images.put(created=now - timedelta(hours=5))  # a dual-write that never landed
    result = service.preflight(now=now)
    assert not result.gate.passed
    assert "1 missing from PostgreSQL (at most 0 allowed)" in result.gate.failures[0]


def test_no_dual_writes_at_all_cannot_pass(
    service: CutoverService, images: Images, legacy: Legacy, now: datetime
) -> None:
    result = service.preflight(now=now)
    assert not result.gate.passed
    assert "no dual-write was attempted in 7 days" in result.gate.failures[0]


def test_an_unreadable_legacy_database_fails_the_gate(
    settings: Settings, world: World, images: Images, now: datetime, cutover_settings: Any
) -> None:
    from dataclasses import replace

    from tests.watchtower.cutover.conftest import running_cutover

    healthy_week(world)
    broken = replace(settings, legacy_database_url="postgresql://nobody@127.0.0.1:9/none")
    with running_cutover(broken, cutover=cutover_settings) as service:
        result = service.preflight(now=now)
    assert not result.gate.passed
    assert "could not be reconciled: PostgreSQL could not be read" in result.gate.failures[0]


def test_an_override_is_recorded_in_the_audit_log_with_who_and_why(
    service: CutoverService, world: World, images: Images, legacy: Legacy, now: datetime
) -> None:
    healthy_week(world, successes=700, failures=3)
    same_images(images, legacy, now)
    result = service.preflight(now=now)
    refused = service.record_preflight(result, actor="olive", now=now)
    assert not refused.proceed and "refusing to turn dual-write off" in refused.text
    too_short = service.record_preflight(
        result, actor="olive", now=now, override=Override(by="olive", reason="because")
    )
    assert not too_short.proceed
    decision = service.record_preflight(
        result,
        actor="olive",
        now=now,
        override=Override(by="Olive Ops", reason="the 3 failures were the PG failover on Tuesday"),
    )
    assert decision.proceed and decision.overridden
    entries = service.store.audit()
    assert [e.action for e in entries] == ["preflight", "preflight", "override"]
    override = entries[-1]
    assert override.actor == "Olive Ops"
    assert override.detail["override"] == {
        "by": "Olive Ops",
        "reason": "the 3 failures were the PG failover on Tuesday",
    }
    assert override.detail["summary"]["sha256"] == result.document["sha256"]
    assert override.detail["summary"]["gate"]["passed"] is False
    assert service.audit_problems() == []


# -- the runbook action -------------------------------------------------------------------------


def _context(
    settings: Settings, moto_url: str, now: datetime, records: list, cutover: CutoverService
) -> ActionContext:
    def aws(service: str) -> Any:
        return boto3.client(service, endpoint_url=moto_url, region_name="us-east-1")

    return ActionContext(
        settings=settings,
        aws=aws,
        redis=None,
        cutover=cutover,
        now=now,
        execution_id="run-1",
        step_id="preflight",
        record=lambda kind, detail: records.append((kind, dict(detail))),
    )


def test_the_runbook_action_refuses_a_failed_gate_unless_overridden(
    settings: Settings,
    world: World,
    images: Images,
    legacy: Legacy,
    now: datetime,
    moto: Any,
    service: CutoverService,
) -> None:
    healthy_week(world, successes=700, failures=3)
    same_images(images, legacy, now)
    action = registry()["cutover.preflight"]
    records: list = []
    ctx = _context(settings, moto.url, now, records, service)
    assert [c.service for c in action.plan(action.validate({}), ctx)] == [
        "cloudwatch",
        "dynamodb",
        "postgresql",
    ]
    with pytest.raises(ActionError, match=r"pre-flight gate failed .*not above 99\.9%"):
        action.run(action.validate({}), ctx)
    with pytest.raises(Exception, match="both who and why"):
        action.validate({"override_by": "Olive"})
    outputs = action.run(
        action.validate(
            {"override_by": "Olive", "override_reason": "known PostgreSQL failover on Tuesday"}
        ),
        ctx,
    )
    assert outputs["gate"] == "overridden"
    assert outputs["figures"]["dual-write failures"] == 3
    assert "overridden by Olive" in outputs["reason"]
    assert records == [
        (
            "cutover.preflight_overridden",
            {"by": "Olive", "reason": "known PostgreSQL failover on Tuesday"},
        )
    ]
    actions = [(e.action, e.actor) for e in service.store.audit()]
    assert actions == [("preflight", "runbook run run-1"), ("override", "Olive")]


def test_the_runbook_action_passes_a_healthy_week(
    settings: Settings,
    world: World,
    images: Images,
    legacy: Legacy,
    now: datetime,
    moto: Any,
    service: CutoverService,
) -> None:
    healthy_week(world)
    same_images(images, legacy, now)
    action = registry()["cutover.preflight"]
    ctx = _context(settings, moto.url, now, [], service)
    outputs = action.run(action.validate({"days": 7}), ctx)
    assert outputs["gate"] == "passed"
    assert outputs["reconciliation"]["difference"] == 0
    assert outputs["report_url"].endswith("/cutover/preflight?days=7")
