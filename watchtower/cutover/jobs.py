"""The cutover's scheduled job: one evidence sample per slot while a window is open.

The composition root's `Watchtower.scheduler()` adds it; the job is slot-locked like every other,
so one replica samples each slot (the samples table's unique key backs that up).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from watchtower.cutover.service import CutoverService

if TYPE_CHECKING:
    from watchtower.scheduler import Scheduler

JOB = "cutover"


def schedule_cutover(
    scheduler: Scheduler, service: CutoverService, now: Callable[[], datetime]
) -> None:
    scheduler.add(JOB, service.cutover.sample_interval, lambda: service.tick(now=now()))
