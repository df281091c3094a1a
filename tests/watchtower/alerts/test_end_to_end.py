"""The whole alert path, for real: the image API goes down, Watchtower's probe fails,
Prometheus (scraping Watchtower's /metrics) fires ImageUploadProbeFailing, Alertmanager posts
the webhook with its bearer token, and the routed runbook's execution appears in
GET /api/v1/executions with its steps run by the real engine's worker (one of them queries this
same Prometheus). Then the API comes back and the resolved notification reaches Watchtower too.

Prometheus and Alertmanager are the Debian binaries, on loopback, with a test copy of the rules
whose `for:` is 0s, 1 s scrape and evaluation intervals and a 1 s group_wait. The figures
printed (run with -s) are measured from the moment the probe's failure is in the metrics.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import urllib3
import yaml
from sqlalchemy import select
from werkzeug.serving import BaseWSGIServer, make_server

from image_core.api import create_app as create_image_api
from image_core.app import Components
from tests.conftest import _start  # a missing binary skips, or fails in CI
from tests.watchtower.alerts.servers import start_alertmanager, start_prometheus
from watchtower.runtime import Watchtower
from watchtower.sandbox.servers import LOOPBACK, free_port
from watchtower.store import alerts
from watchtower.web import create_app

RULES = Path(__file__).parents[3] / "alerts" / "watchtower.rules.yml"
TOKEN = "e2e-webhook-token"
VIEWER = {"Authorization": "Bearer e2e-viewer"}
WAIT = 30.0  # seconds: every wait here is bounded

pytestmark = pytest.mark.slow


class Served:
    """A WSGI app on a loopback port, stopped and started again on the same port."""

    def __init__(self, app: Any, port: int = 0) -> None:
        self.app = app
        self.server: BaseWSGIServer | None = None
        self.thread: threading.Thread | None = None
        self.port = port
        self.start()

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> None:
        self.server = make_server(LOOPBACK, self.port, self.app, threaded=True)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.server is not None and self.thread is not None:
            self.server.shutdown()
            self.thread.join(timeout=5)
            self.server.server_close()
            self.server = None


def wait_for(
    what: str,
    found: Callable[[], Any],
    timeout: float = WAIT,
    state: Callable[[], str] | None = None,
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        time.sleep(0.02)
    seen = f" ({state()})" if state is not None else ""
    raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what}{seen}")


def rules_with_short_for() -> dict[str, Any]:
    """The shipped rules, each with `for: 0s`: the test measures the path, not the patience."""
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["for"] = "0s"
    return rules


@pytest.fixture
def image_api(components: Components) -> Iterator[Served]:
    served = Served(create_image_api(components=components))
    yield served
    served.stop()


@pytest.fixture
def prometheus_port() -> int:
    return free_port()


@pytest.fixture
def watchtower(
    image_api: Served, moto: Any, prometheus_port: int, make_watchtower: Callable[..., Watchtower]
) -> Iterator[Watchtower]:
    wt = make_watchtower(
        clock=time.time,
        image_api_url=image_api.url,
        aws_endpoint_url=moto.url,
        probe_timeout_seconds=2,
        prometheus_url=f"http://{LOOPBACK}:{prometheus_port}",
        webhook_token=TOKEN,
        users=(("vic", "viewer", "e2e-viewer"),),
        anonymous_role=None,
        secret_key="k",
    )
    wt.runbooks.start_worker()
    yield wt
    wt.runbooks.stop_worker()


def test_a_failing_probe_starts_its_runbook_through_prometheus_and_alertmanager(
    watchtower: Watchtower, image_api: Served, prometheus_port: int
) -> None:
    web = Served(create_app(watchtower))
    http = urllib3.PoolManager(retries=False, timeout=5)
    alertmanager = prometheus = None

    def executions() -> list[dict[str, Any]]:
        answer = http.request("GET", f"{web.url}/api/v1/executions", headers=VIEWER)
        assert answer.status == 200, answer.data
        runs: list[dict[str, Any]] = answer.json()["executions"]
        return runs

    try:
        # A passing probe first: the metric exists, at 1, before Prometheus starts.
        assert watchtower.run_probe("upload_get")[-1].status.value == "ok"
        alertmanager = _start(
            lambda: start_alertmanager(webhook_url=f"{web.url}/api/v1/alerts", token=TOKEN)
        )
        prometheus = _start(
            lambda: start_prometheus(
                scrape=f"{LOOPBACK}:{web.port}",
                alertmanager=f"{LOOPBACK}:{alertmanager.port}",
                rules=rules_with_short_for(),
                port=prometheus_port,
            )
        )
        scraped = "/api/v1/query?query=watchtower_probe_success"
        wait_for(
            "Prometheus to scrape Watchtower",
            lambda: prometheus.get_json(scraped)["data"]["result"],
        )

        # The image API goes down; the probe fails, confirmed by its retry.
        image_api.stop()
        results = watchtower.run_probe("upload_get")
        changed = time.time()
        assert [r.status.value for r in results] == ["critical", "critical"]

        (run,) = wait_for("the execution to be listed", executions)
        listed = time.time()
        (alert,) = watchtower.store.firing_alerts()
        received = alert_received_at(watchtower, alert.fingerprint)
        assert alert.labels["alertname"] == "ImageUploadProbeFailing"
        assert alert.labels["probe"] == "upload_get"
        assert alert.annotations["runbook_url"].endswith("/runbooks/image-upload-failures")
        assert (run["runbook"], run["mode"]) == ("image-upload-failures", "automatic")
        assert run["alert"] == {"fingerprint": alert.fingerprint, "name": alert.name}

        def finished() -> dict[str, Any] | None:
            (current,) = executions()
            return current if current["status"] in ("succeeded", "failed") else None

        run = wait_for("the runbook's steps to run", finished)
        done = time.time()
        print(
            f"\nmetric changed -> webhook received {received - changed:.2f} s"
            f" -> execution listed {listed - changed:.2f} s"
            f" -> its steps run {done - changed:.2f} s"
        )
        steps = {s["id"]: s for s in run["steps"]}
        assert all(s["status"] in ("succeeded", "failed", "skipped") for s in steps.values()), steps
        # The runbook read the alert's own evidence from this Prometheus: the failed upload step.
        assert steps["probe-history"]["status"] == "succeeded", steps["probe-history"]
        (history,) = [
            s for s in watchtower.runbooks.get(run["id"]).steps if s.step_id == "probe-history"
        ]
        assert 0 <= history.outputs["value"] < 1  # the upload step was failing when it looked
        assert steps["s3-bucket"]["status"] == "succeeded", steps["s3-bucket"]  # moto's bucket
        assert listed - changed < WAIT

        # The API is back: the next probe passes and the resolution reaches Watchtower.
        image_api.start()
        assert watchtower.run_probe("upload_get")[-1].status.value == "ok"
        recovered = time.time()
        wait_for(
            "the resolved notification",
            lambda: watchtower.store.alert(alert.fingerprint).status == "resolved",  # type: ignore[union-attr]
        )
        print(f"metric recovered -> resolved notification received {time.time() - recovered:.2f} s")
        assert watchtower.store.firing_alerts() == []
        # The run had finished: it stays as it ended (the engine records a resolution on runs
        # still open, and closes those that wait).
        (after,) = executions()
        assert (after["id"], after["status"]) == (run["id"], run["status"])
    finally:
        for server in (prometheus, alertmanager):
            if server is not None:
                server.stop()
        web.stop()
        http.clear()


def alert_received_at(wt: Watchtower, fingerprint: str) -> float:
    """When Watchtower's webhook stored the alert (its own clock, like `time.time()`)."""
    query = select(alerts.c.received_at).where(alerts.c.fingerprint == fingerprint)
    with wt.store.engine.connect() as conn:
        moment: datetime = conn.execute(query).scalar_one()
    return moment.replace(tzinfo=moment.tzinfo or UTC).timestamp()
