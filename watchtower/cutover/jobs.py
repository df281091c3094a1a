"""The cutover's scheduled job: one evidence sample per slot while a window is open.

`schedule_cutover(wt, scheduler)` is what `Watchtower.scheduler()` calls; the job is slot-locked
like every other, so one replica samples each slot (the samples table's unique key backs that up).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from watchtower.cutover.config import CutoverSettings
from watchtower.cutover.service import CutoverService, build

if TYPE_CHECKING:
    from watchtower.runtime import Watchtower
    from watchtower.scheduler import Scheduler

log = logging.getLogger(__name__)

JOB = "cutover"


def schedule_cutover(
    wt: Watchtower, scheduler: Scheduler, cutover: CutoverSettings | None = None
) -> CutoverService:
    service = build(wt, cutover)
    scheduler.add(JOB, service.cutover.sample_interval, lambda: service.tick(now=wt.now()))
    return service
