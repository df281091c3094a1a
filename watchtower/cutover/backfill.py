"""Backfill: the slots of an open window the sampler missed, read back from the sources' history.

When Watchtower was down, its slots have no sample. CloudWatch keeps one-minute datapoints for 15
days, the legacy table keeps its rows and the alert store its alerts, so after a restart the
sampler reads those slots back (`backfill_sample`): each sample is marked backfilled
(its `backfill` reading says when, and from which source each reading came), coverage counts it,
and the report lists it. Slots older than `backfill_max_age_seconds` stay gaps, named as such.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta

from watchtower.config import Settings
from watchtower.cutover import evidence
from watchtower.cutover.config import CutoverSettings
from watchtower.cutover.coverage import slot_at, slots
from watchtower.cutover.model import BACKFILL, Reading, Sample, Window, iso
from watchtower.cutover.ports import EvidencePorts
from watchtower.cutover.store import CutoverStore

log = logging.getLogger(__name__)


BACKFILL_SOURCES = {
    "dynamodb_writes": "CloudWatch's retained datapoints (AWS/DynamoDB)",
    "upload_success": "CloudWatch's retained datapoints (image core Requests) and the probe's "
    "stored results",
    "upload_latency": "CloudWatch's retained datapoints (image core Latency)",
    "dual_write_errors": "CloudWatch's retained datapoints (DualWrites, Errors, AWS/Lambda)",
    "legacy_inserts": "the legacy table's rows (inserted_at); its write statistics are judged "
    "across the gap by the next live sample",
    "flag": "the function's configuration before and after the gap",
    "user_operations": "CloudWatch's retained datapoints (image core Requests and Latency)",
    "critical_alerts": "the alert store (alerts that started before the slot's end and still fire)",
}


def backfill_sample(
    window: Window,
    *,
    at: datetime,
    taken_at: datetime,
    before: Sample | None,
    settings: Settings,
    cutover: CutoverSettings,
    ports: EvidencePorts,
) -> Sample:
    """The sample of a slot Watchtower missed, read back now from what the sources still hold.

    CloudWatch keeps one-minute datapoints for 15 days and the legacy table keeps its rows, so
    those readings are what a live sample would have read. What only exists now is re-read with
    care: the legacy table's write counters are dropped (the next live sample's delta spans the
    gap), the flag is the function's configuration only when it reads the same as before the gap
    (`before`, or off at the flip), and alerts are those still firing that started by `at`.
    """
    sample = evidence.take_sample(
        window, at=at, taken_at=taken_at, settings=settings, cutover=cutover, ports=ports
    )
    readings = dict(sample.readings)
    legacy = readings["legacy_inserts"]
    if legacy.readable:
        readings["legacy_inserts"] = Reading(
            figures={
                k: v
                for k, v in legacy.figures.items()
                if k not in ("writes", "statements", "statements_note")
            }
        )
    readings["flag"] = _backfilled_flag(readings["flag"], before)
    alerts = readings["critical_alerts"]
    if alerts.readable:
        readings["critical_alerts"] = Reading(
            figures={
                "firing": [a for a in alerts.figures.get("firing", []) if a.get("since") <= iso(at)]
            }
        )
    readings[BACKFILL] = Reading(
        figures={
            "taken_at": iso(taken_at),
            "sources": {
                name: BACKFILL_SOURCES[name] for name in BACKFILL_SOURCES if readings[name].readable
            },
        }
    )
    return replace(sample, readings=readings)


def _backfilled_flag(now: Reading, before: Sample | None) -> Reading:
    if not now.readable:
        return now
    earlier = before.reading("flag") if before is not None else Reading(figures={"flag": 0.0})
    if not earlier.readable:
        return Reading(error="the flag during the gap cannot be read back: unknown before it")
    if earlier.figures.get("flag") != now.figures.get("flag"):
        return Reading(
            error="the flag during the gap cannot be read back: it changed during the gap"
        )
    return Reading(
        figures={
            "flag": now.figures.get("flag"),
            "note": f"{now.figures.get('note')} (the same before the gap and after it)",
        }
    )


def backfill(
    store: CutoverStore,
    window: Window,
    *,
    now: datetime,
    settings: Settings,
    cutover: CutoverSettings,
    ports: EvidencePorts,
) -> list[datetime]:
    """Try up to `backfill_slots_per_tick` missed slots before the last one, oldest first, and
    record those every source could give back (the others stay gaps, tried again next tick);
    returns their slot times. Each is recorded once (a replica racing us keeps its own)."""
    limit = cutover.backfill_slots_per_tick
    oldest = now - timedelta(seconds=cutover.backfill_max_age_seconds)
    taken = {s.at: s for s in store.samples(window.id)}
    last = slot_at(now, window.interval_seconds)
    done: list[datetime] = []
    tried = 0
    before = None
    for slot in slots(window):
        if slot.at >= last or tried >= limit:
            break
        if slot.at in taken:
            before = taken[slot.at]
            continue
        if slot.at < oldest:
            continue
        sample = backfill_sample(
            window,
            at=slot.at,
            taken_at=now,
            before=before,
            settings=settings,
            cutover=cutover,
            ports=ports,
        )
        tried += 1
        if not all(r.readable for r in sample.readings.values()):
            # A source that cannot give this slot back now: left a gap, tried again next tick.
            continue
        if store.add_sample(sample):
            done.append(slot.at)
            before = sample
    if done:
        store.append(
            at=now,
            actor="watchtower",
            action="slots-backfilled",
            window_id=window.id,
            detail={"slots": [iso(at) for at in done], "sources": BACKFILL_SOURCES},
        )
        log.info("cutover window %s: %d missed slots backfilled", window.id, len(done))
    return done
