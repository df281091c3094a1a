"""`watchtower demo rehearse --inject legacy-writes` end to end against a real `watchtower demo`
of its own: a window that fails half-way and is rolled back, the draft report marked REHEARSAL.
(The signed rehearsal is test_rehearsal.py; each has its own demo, so they run side by side.)
"""

from __future__ import annotations

import json

import pytest
import urllib3

from tests.watchtower.sandbox.test_demo import Demo
from tests.watchtower.sandbox.test_rehearsal import demo, rehearse, report  # noqa: F401


@pytest.mark.slow
def test_an_injected_scenario_fails_the_rehearsal_and_it_is_rolled_back(demo: Demo) -> None:  # noqa: F811
    done = rehearse(demo, "--inject", "legacy-writes")
    print(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "scenario legacy-writes half-way through the window" in done.stdout
    outcome = json.loads(done.stdout.rsplit("REHEARSAL done: ", 1)[1])
    assert outcome["verdict"] == "rolled_back" and outcome["rollback"] == "succeeded"
    draft = report(demo, outcome["window"], "json")
    assert draft["frozen"] is False and draft["document"]["kind"] == "cutover-rehearsal"
    try:
        status, _ = demo.get("/api/v1/sandbox")
    except urllib3.exceptions.HTTPError:
        status = 0
    assert status == 200
