"""The status page's closed periods sealed ahead of the page: at start-up, then hourly, one
replica's scheduler (the job is slot-locked like every other) seals the closed days of the 90-day
bars and the closed hours of the 24 h uptime (watchtower.sealed), so no render sums them, not even
the fleet's first after a deploy. A render that comes first still seals what it finds missing.
"""

from __future__ import annotations

from functools import partial

from watchtower.runtime import Watchtower
from watchtower.scheduler import Scheduler
from watchtower.web.status import PageCache, feeds

INTERVAL = 3600  # seconds: an hour closes every hour


def schedule_sealing(scheduler: Scheduler, wt: Watchtower) -> None:
    scheduler.add("seal", INTERVAL, partial(seal_closed, wt))


def seal_closed(wt: Watchtower) -> None:
    """What a first render would seal, sealed now: reading the closed periods through a page
    cache of its own seals those missing."""
    cache, now = PageCache(), wt.now()
    known = tuple(feeds(wt))
    cache.hours(wt, known, now)
    cache.days(wt, known, now)
