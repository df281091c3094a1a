"""Silences through a real Alertmanager's API v2, as runbook actions: created with matchers, a
duration, the creator and a comment linking the execution; read back by the post-check; expired
by the compensation when the post-check fails."""

from __future__ import annotations

import dataclasses
import textwrap
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import _start
from tests.watchtower.alerts.servers import HttpServer, start_alertmanager
from tests.watchtower.runbook.conftest import MakeHarness
from watchtower.runbook.model import ExecutionStatus
from watchtower.runtime import Watchtower
from watchtower.status.history import Hour, uptime
from watchtower.status.maintenance import HOUR, Window, exclude
from watchtower.web import create_app

RUNBOOK = """
---
id: planned-invalidation
title: A change that makes things worse for a while
lock: cdn
---
# Planned

```step
id: silence
title: Silence the hit-rate alert while the cache refills
action: alertmanager.create_silence
with:
  matchers: [alertname=ImageCloudFrontHitRateLow, severity=warning]
  minutes: 45
  comment: the cache refills after an invalidation
post_check:
  action: alertmanager.get_silence
  with: {silence_id: "${this.silence_id}"}
  expect: "EXPECT"
compensate:
  action: alertmanager.expire_silence
  with: {silence_id: "${this.silence_id}"}
```
"""

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def alertmanager() -> Iterator[HttpServer]:
    server = _start(
        lambda: start_alertmanager(webhook_url="http://127.0.0.1:9/none", token="t" * 20)
    )
    yield server
    server.stop()


def write(tmp_path: Path, expect: str) -> Path:
    folder = tmp_path / expect.replace(" ", "").replace("'", "").replace("=", "")[:20]
    folder.mkdir()
    text = textwrap.dedent(RUNBOOK).lstrip().replace("EXPECT", expect)
    (folder / "planned-invalidation.md").write_text(text)
    return folder


def silence(alertmanager: HttpServer, silence_id: str) -> dict[str, Any]:
    found: dict[str, Any] = alertmanager.get_json(f"/api/v2/silence/{silence_id}")
    return found


def test_a_runbook_silences_alerts_and_says_which_execution_did(
    make_harness: MakeHarness, alertmanager: HttpServer, tmp_path: Path
) -> None:
    h = make_harness(
        runbooks=write(tmp_path, "state == 'active'"),
        alertmanager_url=alertmanager.url,
        public_url="https://watchtower.example.com",
    )
    dry = h.engine.start("planned-invalidation", params={}, started_by="olive", dry_run=True)
    h.run()
    assert h.status(dry) is ExecutionStatus.SUCCEEDED
    assert alertmanager.get_json("/api/v2/silences") == []  # a dry run only plans
    (call,) = h.get(dry).steps[0].plan
    assert call["operation"] == "POST /api/v2/silences"
    assert call["parameters"]["createdBy"] == "watchtower"

    run_id = h.engine.start("planned-invalidation", params={}, started_by="olive")
    h.run()
    run = h.get(run_id)
    assert run.status is ExecutionStatus.SUCCEEDED, run.reason
    outputs = run.steps[0].outputs
    made = silence(alertmanager, outputs["silence_id"])
    assert made["status"]["state"] == "active"
    assert made["createdBy"] == "watchtower"
    assert f"https://watchtower.example.com/executions/{run_id}" in made["comment"]
    assert {(m["name"], m["value"], m["isEqual"]) for m in made["matchers"]} == {
        ("alertname", "ImageCloudFrontHitRateLow", True),
        ("severity", "warning", True),
    }
    assert outputs["post_check"]["held"] is True


def test_the_compensation_expires_the_silence(
    make_harness: MakeHarness, alertmanager: HttpServer, tmp_path: Path
) -> None:
    h = make_harness(
        runbooks=write(tmp_path, "state == 'never'"), alertmanager_url=alertmanager.url
    )
    run_id = h.engine.start("planned-invalidation", params={}, started_by="olive")
    h.run()
    run = h.get(run_id)
    assert run.status is ExecutionStatus.FAILED
    compensated = [a for a in h.engine.audit(run_id) if a.action == "compensated"]
    assert compensated, [a.action for a in h.engine.audit(run_id)]
    silences = [s for s in alertmanager.get_json("/api/v2/silences") if run_id in s["comment"]]
    assert [s["status"]["state"] for s in silences] == ["expired"]


def test_without_alertmanager_the_silence_step_fails_saying_so(
    make_harness: MakeHarness, tmp_path: Path
) -> None:
    h = make_harness(runbooks=write(tmp_path, "state == 'active'"))
    run_id = h.engine.start("planned-invalidation", params={}, started_by="olive")
    h.run()
    run = h.get(run_id)
    assert run.status is ExecutionStatus.FAILED
    assert "WATCHTOWER_ALERTMANAGER_URL" in run.steps[0].error


# -- maintenance on the status page --------------------------------------------------------------

T0 = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)


def test_maintenance_seconds_leave_uptime_down_first() -> None:
    hours = {T0: Hour(observed=3600, down=1200), T0 + HOUR: Hour(observed=3600, down=0)}
    window = Window(
        component="cloudfront",
        starts_at=T0 + timedelta(minutes=30),
        ends_at=T0 + timedelta(minutes=70),
        execution_id="e",
    )
    # Overlapping windows count once.
    twice = [window, dataclasses.replace(window, ends_at=T0 + timedelta(minutes=50))]
    out = exclude(hours, twice, now=T0 + timedelta(hours=2))
    assert out[T0] == Hour(observed=1800, down=0)  # 30 min of maintenance, taken from down first
    assert out[T0 + HOUR] == Hour(observed=3000, down=0)
    assert uptime(hours, T0 + timedelta(hours=2), 24) == pytest.approx(1 - 1200 / 7200)
    assert uptime(out, T0 + timedelta(hours=2), 24) == 1.0
    assert exclude(hours, [], now=T0) == hours


def test_a_runbook_silence_naming_a_component_puts_it_under_maintenance_on_the_status_page(
    alertmanager: HttpServer,
    tmp_path: Path,
    moto: Any,
    make_watchtower: Callable[..., Watchtower],
) -> None:
    folder = write(tmp_path, "state == 'active'")
    text = (folder / "planned-invalidation.md").read_text()
    (folder / "planned-invalidation.md").write_text(
        text.replace("  minutes: 45\n", "  minutes: 45\n  component: cloudfront\n")
    )
    wt = make_watchtower(
        clock=time.time,
        aws_endpoint_url=moto.url,
        runbooks_dir=str(folder),
        alertmanager_url=alertmanager.url,
        users=(("vic", "viewer", "viewer-secret-5d1e"),),
        anonymous_role=None,
        secret_key="k" * 32,
    )
    client = create_app(wt).test_client()
    viewer = {"Authorization": "Bearer viewer-secret-5d1e"}
    assert client.get("/api/v1/status", headers=viewer).json["maintenance"] == []
    run_id = wt.runbooks.start("planned-invalidation", params={}, started_by="olive")
    wt.runbooks.run_pending()
    assert wt.runbooks.get(run_id).status is ExecutionStatus.SUCCEEDED
    (shown,) = client.get("/api/v1/status", headers=viewer).json["maintenance"]
    assert (shown["component"], shown["execution"]) == ("cloudfront", run_id)
    page = client.get("/", headers=viewer).get_data(as_text=True)
    assert "Under maintenance" in page and run_id in page
    # Today's figures leave it out too (and say so), not only the 24 h uptime.
    body = client.get("/api/v1/status", headers=viewer).json
    (cdn,) = [c for c in body["components"] if c["id"] == "cloudfront"]
    assert cdn["days"][-1]["maintenance_seconds"] > 0
    assert all(d["maintenance_seconds"] == 0 for d in cdn["days"][:-1])
    # The page finds the window with a bounded query: runs with a step started lately.
    now = datetime.now(UTC)
    recent = wt.runbooks.list(10, step_started_since=now - timedelta(hours=1))
    assert [e.id for e in recent] == [run_id]
    assert wt.runbooks.list(10, step_started_since=now + timedelta(minutes=5)) == []
