"""Evidence sampling against the moto server and the real PostgreSQL: what one sample reads, a
row inserted after the flip failing the window with the insert's time, gaps from a source that
cannot be read, and the runbooks' cutover events opening and closing windows."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from tests.watchtower.checks.conftest import World
from tests.watchtower.cutover.conftest import Legacy, running_cutover
from watchtower.config import Settings
from watchtower.cutover.config import CutoverSettings
from watchtower.cutover.judge import CriterionStatus, State, slot_at
from watchtower.cutover.model import CloseReason
from watchtower.cutover.service import CutoverService
from watchtower.model import Alert, Result, Status
from watchtower.runbook.model import AuditEntry as RunbookAuditEntry
from watchtower.runbook.store import RunbookStore
from watchtower.store import HistoryStore

FIVE = timedelta(minutes=5)


def flip_before(now: datetime, slots: int = 3) -> datetime:
    """A flip time `slots` slots before the last boundary, off the boundary."""
    return slot_at(now, 300) - slots * FIVE + timedelta(seconds=7)


def busy_platform(world: World, at: datetime) -> None:
    """What a healthy image service reports for the slot ending at `at`."""
    inside = at - timedelta(minutes=2)
    world.requests("success", 40, at=inside)
    world.requests("success", 5, traffic="synthetic", at=inside)
    world.latency(40, {250: 8, 500: 2, 800: 1}, at=inside)
    world.table_writes(225, at=inside)


def test_a_sample_reads_every_source(
    service: CutoverService, world: World, legacy: Legacy, now: datetime
) -> None:
    world.function({"ENABLE_DYNAMODB_DUAL_WRITE": "false"})
    flip = flip_before(now)
    window = service.open_window(flipped_by="olive", at=flip, now=now, via="cli")
    at = slot_at(now, 300)
    busy_platform(world, at)
    HistoryStore(service.store.engine).add(
        [
            Result(
                name="upload_get",
                kind="probe",
                status=s,
                reason="",
                observed_at=at - timedelta(minutes=m),
            )
            for s, m in ((Status.OK, 1), (Status.CRITICAL, 2), (Status.UNKNOWN, 3))
        ]
    )
    HistoryStore(service.store.engine).record_alert(
        Alert(
            fingerprint="f1",
            status="firing",
            labels={"alertname": "ImageUploadErrors", "severity": "critical"},
            annotations={},
            starts_at=at - FIVE,
        ),
        received_at=at,
    )
    sample = service.tick(now=now)
    assert sample is not None and sample.at == at and sample.window_id == window.id
    r = {name: reading.figures for name, reading in sample.readings.items()}
    assert all(reading.readable for reading in sample.readings.values()), sample.readings
    assert r["flag"]["flag"] == 0.0
    assert r["legacy_inserts"]["rows_since_flip"] == 0
    assert r["legacy_inserts"]["rows_after_grace"] == 0
    assert r["legacy_inserts"]["grace_until"] == (flip + timedelta(minutes=2)).isoformat().replace(
        "+00:00", "Z"
    )
    assert r["dynamodb_writes"] == {"write_units": 225.0, "uploads": 45.0}
    assert r["upload_success"] == {
        "uploads": 40.0,
        "server_errors": 0.0,
        "probe_runs": 2.0,  # the unknown run is not judged
        "probe_failures": 1.0,
    }
    assert r["upload_latency"]["samples"] == 40.0
    assert r["upload_latency"]["over"]["800"] == 1.0
    assert r["critical_alerts"]["firing"][0]["name"] == "ImageUploadErrors"
    assert service.tick(now=now) is None  # one sample per slot


def test_a_row_inserted_after_the_flip_fails_the_window_with_the_inserts_time(
    service: CutoverService, world: World, legacy: Legacy, now: datetime
) -> None:
    world.function({"ENABLE_DYNAMODB_DUAL_WRITE": "false"})
    flip = flip_before(now)
    legacy.insert(at=flip - timedelta(minutes=1))  # before the flip: dual-write was still on
    service.open_window(flipped_by="olive", at=flip, now=now, via="cli")
    service.tick(now=now - 2 * FIVE)
    clean = service.verdict(now=now - 2 * FIVE)
    assert clean.criterion("legacy_inserts").status is CriterionStatus.OK
    in_flight = flip + timedelta(seconds=40)  # a request that was running at the flip
    legacy.insert(at=in_flight)
    insert = (flip + timedelta(minutes=6, seconds=13)).replace(microsecond=250000)
    legacy.insert(at=insert)
    service.tick(now=now - FIVE)
    service.tick(now=now)
    verdict = service.verdict(now=now)
    legacy_inserts = verdict.criterion("legacy_inserts")
    assert legacy_inserts.status is CriterionStatus.FAILED
    assert legacy_inserts.failed_at == insert
    assert insert.strftime("%Y-%m-%d %H:%M:%S UTC") in legacy_inserts.detail
    assert "6 min after the flip" in legacy_inserts.detail
    assert "1 row inserted into gallery_images" in legacy_inserts.detail
    assert any(
        e.text == "first row inserted into gallery_images" and e.at == in_flight
        for e in legacy_inserts.events
    )
    assert verdict.state is State.FAILED
    assert insert.strftime("%H:%M:%S") in verdict.headline


def test_an_unreadable_source_is_recorded_as_such(
    settings: Settings, cutover_settings: CutoverSettings, world: World, now: datetime
) -> None:
    broken = replace(settings, legacy_database_url="postgresql://nobody@127.0.0.1:9/none")
    with running_cutover(broken, cutover=cutover_settings) as service:
        service.open_window(flipped_by="olive", at=flip_before(now), now=now, via="cli")
        sample = service.tick(now=now)
        assert sample is not None
        reading = sample.reading("legacy_inserts")
        assert not reading.readable and "PostgreSQL could not be read" in reading.error
        flag = sample.reading("flag")  # no function in moto
        assert not flag.readable and "configuration could not be read" in flag.error
        verdict = service.verdict(now=now)
        reasons = [g.reason for g in verdict.coverage.gaps]
        assert reasons[0].startswith("no sample")  # the slots before the first sample
        assert "legacy_inserts: PostgreSQL could not be read" in reasons[-1]


def test_the_baseline_is_fetched_when_the_window_opens(
    service: CutoverService, world: World, now: datetime
) -> None:
    flip = flip_before(now)
    hour = flip.replace(minute=0, second=0, microsecond=0)
    for day in range(1, 8):
        world.table_writes(700, at=hour - timedelta(days=day, minutes=-10))
        world.latency(100, {250: 30, 500: 5, 800: 1}, at=hour - timedelta(days=day, minutes=-20))
    window = service.open_window(flipped_by="olive", at=flip, now=now, via="cli")
    baseline = window.baseline
    assert baseline is not None and baseline.error is None
    assert baseline.end == hour and baseline.start == hour - timedelta(days=7)
    assert baseline.writes_by_hour[hour.hour] == pytest.approx(700)
    assert sum(baseline.writes_by_hour) == pytest.approx(700)
    assert baseline.latency is not None and baseline.latency.samples == 700
    assert baseline.latency.over[800] == 7


def test_runbook_events_open_and_close_windows(
    service: CutoverService, world: World, now: datetime
) -> None:
    runs = RunbookStore(service.store.engine)
    flipped = now - timedelta(minutes=20)

    def event(kind: str, at: datetime, execution: str) -> None:
        runs.audit(
            RunbookAuditEntry(
                at=at,
                execution_id=execution,
                runbook_id="disable-dual-write"
                if kind == "window_started"
                else "rollback-dual-write",
                actor="system",
                action=f"cutover.{kind}",
                step_id="start-monitoring",
                comment=f"event={kind}, function=image-api, at={at.isoformat()}, hours=24",
            )
        )

    event("window_started", flipped, "e" * 32)
    service.tick(now=now)
    window = service.store.open_window()
    assert window is not None and window.opened_at == flipped and window.via == "runbook"
    assert "runbook disable-dual-write, run eeeeeeee" in window.opened_by
    service.tick(now=now)  # the same event is not acted on twice
    assert len(service.store.windows()) == 1
    event("window_started", flipped + FIVE, "f" * 32)  # while a window is open: skipped, said why
    event("rolled_back", now - timedelta(minutes=2), "a" * 32)
    service.tick(now=now)
    closed = service.store.window(window.id)
    assert closed.close_reason is CloseReason.ROLLED_BACK
    assert closed.closed_at == now - timedelta(minutes=2)
    assert service.verdict(window.id, now=now).state is State.ROLLED_BACK
    # (the tick also read back the slots between the flip and the window's opening)
    actions = [e.action for e in service.store.audit() if e.action != "slots-backfilled"]
    assert actions == ["window-opened", "runbook-event-skipped", "rolled-back"]
    assert "is still open" in service.store.audit()[1].detail["why"]


def test_a_flip_seen_by_the_dual_write_check_waits_for_an_operator(
    service: CutoverService, now: datetime
) -> None:
    history = HistoryStore(service.store.engine)
    history.add(
        [
            Result(
                name="dual_write",
                kind="check",
                status=Status.OK,
                reason="",
                observed_at=now - timedelta(minutes=m),
                figures={"flag": 1.0 if m > 10 else 0.0},
            )
            for m in range(30, 0, -1)
        ]
    )
    detected = service.detected_flip(now=now)
    assert detected is not None
    assert detected.last_on == now - timedelta(minutes=11)
    assert detected.first_off == now - timedelta(minutes=10)
    service.open_window(
        flipped_by="unknown", at=detected.first_off, now=now, via="detected", confirmed_by="olive"
    )
    assert service.detected_flip(now=now) is None  # covered by the window now


def test_the_scheduler_runs_the_cutover_job(settings: Settings) -> None:
    from watchtower.runtime import build

    wt = build(settings)
    try:
        scheduler = wt.scheduler()
        jobs = {job.id for job in scheduler._scheduler.get_jobs()}
        assert "cutover" in jobs
    finally:
        wt.close()


def test_times_are_utc_everywhere(service: CutoverService, now: datetime) -> None:
    window = service.open_window(flipped_by="olive", at=flip_before(now), now=now, via="cli")
    stored = service.store.window(window.id)
    assert stored.opened_at.tzinfo is not None and stored.opened_at.utcoffset() == timedelta(0)
    assert stored.opened_at == window.opened_at.astimezone(UTC)
