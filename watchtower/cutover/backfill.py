"""Backfill: the slots of an open window the sampler missed, read back from the sources' history.

When Watchtower was down, its slots have no sample. CloudWatch keeps one-minute datapoints for 15
days, the legacy table keeps its rows and the alert store its alerts, so after a restart the
sampler reads those slots back (`evidence.backfill_sample`): each sample is marked backfilled
(its `backfill` reading says when, and from which source each reading came), coverage counts it,
and the report lists it. Slots older than `backfill_max_age_seconds` stay gaps, named as such.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from watchtower.config import Settings
from watchtower.cutover import evidence
from watchtower.cutover.config import CutoverSettings
from watchtower.cutover.coverage import slot_at, slots
from watchtower.cutover.model import Window, iso
from watchtower.cutover.ports import EvidencePorts
from watchtower.cutover.store import CutoverStore

log = logging.getLogger(__name__)


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
        sample = evidence.backfill_sample(
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
            detail={"slots": [iso(at) for at in done], "sources": evidence.BACKFILL_SOURCES},
        )
        log.info("cutover window %s: %d missed slots backfilled", window.id, len(done))
    return done
