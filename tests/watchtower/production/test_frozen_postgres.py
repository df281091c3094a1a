"""PostgreSQL frozen (SIGSTOP, then SIGCONT) under a running Watchtower, over a sandbox of its
own: the legacy check names it on time, and the status page, whose history store is frozen too,
answers with its last good view, frozen. Moto and Redis are test_frozen_sources.py.
"""

from __future__ import annotations

import time

import pytest

from tests.watchtower.production.processes import Frozen, Running, wait_for
from tests.watchtower.production.test_frozen_sources import ON_TIME, page_answers, running  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.timed]


def test_postgresql_frozen_is_named_and_the_page_stays_up(running: Running) -> None:  # noqa: F811
    assert running.stack.postgres is not None
    running.wait_all_ok("before the freeze")
    with Frozen(running.stack.postgres) as stopped:
        wait_for(
            "the legacy inserts check to go unknown",
            lambda: running.legacy_unknown(stopped),
            ON_TIME + 10,
        )
        assert time.time() - stopped <= ON_TIME + 10
        # The history store is frozen too: the page serves its last good view, frozen.
        page_answers(running)
        body = running.watchtower.json("/api/v1/status", running.operator)
        assert body["watchtower"]["state"] == "degraded", body["watchtower"]
        assert body["frozen"] is not None
    took = running.wait_all_ok("after PostgreSQL ran again")
    print(f"\nPostgreSQL frozen: every result ok {took:.1f} s after it ran again")
    page = running.watchtower.json("/api/v1/status", running.operator)
    assert page["frozen"] is None or wait_for(
        "the page to be current again",
        lambda: running.watchtower.json("/api/v1/status", running.operator)["frozen"] is None,
        20,
    )
    running.alive()
