"""`watchtower demo` closes the alert loop with real Prometheus and Alertmanager (the Debian
packages, as CI installs them): a scenario turns the upload path red, ImageUploadProbeFailing
fires from the repository's own rules, Alertmanager's example configuration posts it to the demo's
webhook, the route starts image-upload-failures, and `healthy` resolves the alert.

Run with -s to see the time from the scenario to the execution (the goal: under 90 s).
"""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import urllib3

from tests.conftest import IN_CI
from tests.watchtower.sandbox.processes import alive, descendants
from tests.watchtower.sandbox.test_demo import VIEWER_TOKEN, Demo, demo, wait_for
from tests.watchtower.web.test_browser import document_screenshot
from watchtower.sandbox import monitoring

pytestmark = pytest.mark.slow

__all__ = ["demo"]  # the module-scoped demo fixture: one `watchtower demo` for this module

LOOP_SECONDS = 150  # bounded wait; the figure printed is what matters
VIEWER = {"Authorization": f"Bearer {VIEWER_TOKEN}"}


@pytest.fixture(scope="module", autouse=True)
def _monitoring_installed() -> None:
    absent = monitoring.missing()
    if absent:
        message = f"the alert loop needs {', '.join(absent)}"
        pytest.fail(message) if IN_CI else pytest.skip(message)


def _status_page(demo: Demo) -> str:
    answer = demo.http.request("GET", demo.url + "/", timeout=10, retries=False)
    return answer.data.decode() if answer.status == 200 else ""


def _firing(demo: Demo) -> list[str]:
    try:
        status, body = demo.get("/api/v1/status")
    except (urllib3.exceptions.HTTPError, ValueError):
        return []
    return [a["name"] for a in body.get("alerts", [])] if status == 200 else []


def _executions(demo: Demo) -> list[dict[str, Any]]:
    status, body = demo.get("/api/v1/executions", headers=VIEWER)
    assert status == 200, body
    runs: list[dict[str, Any]] = body["executions"]
    return runs


def test_a_scenario_fires_its_alert_and_starts_its_runbook(demo: Demo, tmp_path: Path) -> None:
    def upload_ok() -> bool:
        try:
            return demo.results().get("upload_get", {}).get("status") == "ok"
        except (urllib3.exceptions.HTTPError, ValueError):
            return False

    wait_for("the upload probe ok", upload_ok, 120, demo)
    output = demo.output()
    # The banner: both UIs, and the demo's waits derived from the repository's files.
    prometheus = re.search(r"Prometheus\s+(http://127\.0\.0\.1:\d+)/alerts", output)
    alertmanager = re.search(r"Alertmanager\s+(http://127\.0\.0\.1:\d+)/", output)
    assert prometheus and alertmanager, output[-3000:]
    assert "watchtower.rules.yml: every rule's `for` divided by 8" in output
    assert "ImageUploadProbeFailing 2m -> 15s" in output
    assert "alertmanager.example.yml: group_wait 10s -> 2s" in output
    # Prometheus loaded the repository's rules, with the demo's `for`.
    rules = demo.http.request("GET", prometheus.group(1) + "/api/v1/rules", timeout=5).json()
    loaded = {r["name"]: r.get("duration") for g in rules["data"]["groups"] for r in g["rules"]}
    assert loaded["ImageUploadProbeFailing"] == 15
    assert _executions(demo) == []
    document_screenshot(demo.url + "/", "status-healthy.png", tmp_path / "p")

    assert demo.switch("upload-errors").status == 200
    switched = time.monotonic()
    wait_for(
        "ImageUploadProbeFailing on the status page",
        lambda: (
            "ImageUploadProbeFailing" in _firing(demo)
            and "ImageUploadProbeFailing" in _status_page(demo)
        ),
        LOOP_SECONDS,
        demo,
    )
    fired = time.monotonic() - switched
    (run, *_) = wait_for(
        "an image-upload-failures execution",
        lambda: [r for r in _executions(demo) if r["runbook"] == "image-upload-failures"],
        LOOP_SECONDS,
        demo,
    )
    listed = time.monotonic() - switched
    print(
        f"\nscenario upload-errors -> alert on the status page {fired:.1f} s"
        f" -> image-upload-failures execution listed {listed:.1f} s"
    )
    assert run["alert"]["name"] in ("ImageUploadProbeFailing", "ImageUploadErrors")
    assert run["mode"] == "automatic"
    assert f"/executions/{run['id']}" in _status_page(demo)
    document_screenshot(demo.url + "/", "status-upload-errors.png", tmp_path / "p")

    assert demo.switch("healthy").status == 200
    healed = time.monotonic()
    wait_for("the alerts resolved", lambda: not _firing(demo), LOOP_SECONDS, demo)
    print(f"scenario healthy -> alerts resolved {time.monotonic() - healed:.1f} s")
    assert "ImageUploadProbeFailing" not in _firing(demo)


def test_a_run_waiting_for_approval_is_on_its_page(demo: Demo, tmp_path: Path) -> None:
    """disable-dual-write stops at its flip for a second operator; the picture is in the docs."""
    operator = {"Authorization": f"Bearer {demo.token}"}
    started = demo.http.request(
        "POST",
        f"{demo.url}/runbooks/disable-dual-write/executions",
        fields={
            "param.override_by": "demo-operator",
            "param.override_reason": "sandbox: minutes of history only",
        },
        encode_multipart=False,
        headers=operator,
        redirect=False,
    )
    assert started.status == 303, started.data[:500]
    run_id = started.headers["Location"].rsplit("/", 1)[1]

    def waiting() -> bool:
        runs = {r["id"]: r for r in _executions(demo)}
        return runs.get(run_id, {}).get("status") == "waiting_for_approval"

    wait_for("the run to wait for approval", waiting, 60, demo)
    page = demo.http.request("GET", f"{demo.url}/executions/{run_id}", headers=VIEWER)
    assert "Waiting for approval" in page.data.decode()
    document_screenshot(
        f"{demo.url}/executions/{run_id}", "execution-waiting-for-approval.png", tmp_path / "p"
    )
    cancelled = demo.http.request(
        "POST", f"{demo.url}/executions/{run_id}/cancel", headers=operator, redirect=False
    )
    assert cancelled.status in (302, 303), cancelled.data[:500]


def test_sigterm_stops_prometheus_and_alertmanager(demo: Demo) -> None:
    children = descendants(demo.process.pid)
    for name in ("prometheus", "alertmanager"):
        assert any(name in cmd for cmd in children.values()), (name, children)
    demo.process.send_signal(signal.SIGTERM)
    assert demo.process.wait(timeout=30) == 0
    assert {pid: cmd for pid, cmd in children.items() if alive(pid, cmd)} == {}
