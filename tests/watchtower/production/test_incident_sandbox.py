"""An incident in the sandbox: the `upload-errors` scenario, then `healthy`, under a running
Watchtower; that day's incident page lists its critical readings, the alert that fired and
resolved (with its generatorURL) and the runbook execution the alert started."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.watchtower.alerts.test_alerting import am_alert
from tests.watchtower.production.processes import PROBE, Running, wait_for
from tests.watchtower.production.test_frozen_sources import ON_TIME, running  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.timed]


def notify(running: Running, status: str, starts: str, ends: str) -> Any:  # noqa: F811
    alert = am_alert(
        "ImageUploadProbeFailing",
        status=status,
        fingerprint="5a5a5a5a5a5a5a5a",
        starts_at=starts,
        ends_at=ends,
        probe=PROBE,
    )
    return running.send(alert)


def test_upload_errors_then_healthy_shows_on_that_days_page(
    running: Running,  # noqa: F811
) -> None:
    stack = running.stack
    running.wait_all_ok("before the scenario")
    stack.scenarios.switch("upload-errors")
    switched = time.time()
    try:

        def critical() -> Any:
            result = running.since(PROBE, switched)
            return result if result is not None and result["status"] == "critical" else None

        failed = wait_for("the probe to fail", critical, 4 * ON_TIME, every=0.5)
        started = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        fired = notify(running, "firing", started, "0001-01-01T00:00:00Z")
        assert fired.status == 202, fired.data
        run_id = json.loads(fired.data)["started"][0]["execution"]
    finally:
        stack.scenarios.switch("healthy")
    running.wait_all_ok("after the scenario")
    ended = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    assert notify(running, "resolved", started, ended).status == 202

    day = datetime.fromisoformat(failed["observed_at"]).astimezone(UTC).date().isoformat()
    listing = running.watchtower.get("/incidents", running.operator)
    assert listing.status == 200
    assert f'href="/incidents/upload_path/{day}"' in listing.data.decode()
    page = running.watchtower.get(f"/incidents/upload_path/{day}", running.operator)
    assert page.status == 200
    body = page.data.decode()
    assert "Readings that were not ok" in body and "state-critical" in body
    assert "503" in body, body[:2000]  # the uploads' answer, in the readings' reasons
    assert "ImageUploadProbeFailing" in body and ">resolved<" in body
    assert 'href="http://127.0.0.1:9090/graph?g0.expr=x"' in body
    assert f'href="/executions/{run_id}"' in body
    status_page = running.watchtower.get("/", running.operator).data.decode()
    assert f'<a href="/incidents/upload_path/{day}"><rect class="day day-down"' in status_page
