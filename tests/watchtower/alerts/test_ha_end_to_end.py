"""Exactly once per alert episode, for real: Prometheus fires one alert to two Alertmanagers
clustered on loopback (gossip), each posting to its own Watchtower replica, both replicas on one
PostgreSQL. Every third webhook call is shed with 503 so the senders retry, and a 1 s
`repeat_interval` re-sends the still-firing alert. What the pair sent is then posted again,
verbatim, to both replicas (the pair's next repeats and retries, without waiting for them) up
to 40 deliveries of one episode (one fingerprint, one `startsAt`), before and after its run ends.
One run starts; the deliveries after it ended are shown on it (`still_firing`) and counted in
watchtower_alerts_still_firing_total. Then the alert resolves, and the resolution is recorded
on the finished run.
"""

from __future__ import annotations

import io
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
import urllib3

from tests.conftest import _start
from tests.watchtower.alerts.servers import HttpServer, start_alertmanager, start_prometheus
from tests.watchtower.alerts.test_end_to_end import Served, wait_for
from watchtower.runtime import Watchtower
from watchtower.sandbox.servers import LOOPBACK, PostgresServer, free_port
from watchtower.web import create_app

TOKEN = "ha-webhook-token-" + secrets.token_hex(8)
VIEWER = {"Authorization": "Bearer ha-viewer-token-7b1f"}
WEBHOOK = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
DELIVERIES = 40

pytestmark = pytest.mark.slow

RULES = {
    "groups": [
        {
            "name": "ha",
            "rules": [
                {
                    # Always firing: the episode lasts as long as the test wants it to.
                    "alert": "ImageUploadProbeFailing",
                    "expr": 'vector(1) * on() group_left() (absent(nothing_to_see{x="y"}))',
                    "for": "0s",
                    "labels": {"probe": "upload_get", "severity": "page"},
                }
            ],
        }
    ]
}


class Shedding:
    """A replica's WSGI app that answers every third webhook call 503 (the sender retries)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.posts = 0
        self.shed = 0
        self.bodies: list[bytes] = []  # what the Alertmanagers sent, verbatim

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ["REQUEST_METHOD"] == "POST" and environ["PATH_INFO"] == "/api/v1/alerts":
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(body)
            with self.lock:
                self.posts += 1
                shed = self.posts % 3 == 0
                self.shed += shed
                if environ.get("HTTP_USER_AGENT", "").startswith("Alertmanager"):
                    self.bodies.append(body)
            if shed:
                start_response("503 Service Unavailable", [("Retry-After", "1")])
                return [b'{"error": {"code": "busy", "message": "shed by the test"}}']
        return self.app(environ, start_response)


@pytest.fixture
def database(postgres_server: PostgresServer) -> str:
    name = f"ha_{secrets.token_hex(4)}"
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"postgresql://postgres@{LOOPBACK}:{postgres_server.port}/{name}"


@pytest.fixture
def replicas(
    database: str, moto: Any, make_watchtower: Callable[..., Watchtower]
) -> Iterator[list[Watchtower]]:
    made = []
    for _ in range(2):
        wt = make_watchtower(
            clock=time.time,
            database_url=database,
            image_api_url=f"http://{LOOPBACK}:{free_port()}",  # nothing there: fails fast
            aws_endpoint_url=moto.url,
            probe_timeout_seconds=1,
            webhook_token=TOKEN,
            users=(("vic", "viewer", VIEWER["Authorization"].split()[1]),),
            anonymous_role=None,
            secret_key=secrets.token_hex(16),
        )
        wt.runbooks.start_worker()
        made.append(wt)
    yield made
    for wt in made:
        wt.runbooks.stop_worker()


def test_one_episode_delivered_dozens_of_times_by_an_ha_pair_to_two_replicas_runs_once(
    replicas: list[Watchtower],
) -> None:
    apps = [Shedding(create_app(wt)) for wt in replicas]
    webs = [Served(app) for app in apps]
    http = urllib3.PoolManager(retries=False, timeout=5)
    managers: list[HttpServer] = []
    prometheus = None
    try:
        gossip = [free_port(), free_port()]
        for n, web in enumerate(webs):
            managers.append(
                _start(
                    lambda web=web, n=n: start_alertmanager(
                        webhook_url=f"{web.url}/api/v1/alerts",
                        token=TOKEN,
                        repeat_interval="1s",
                        cluster_port=gossip[n],
                        peers=(gossip[1 - n],),
                    )
                )
            )
        wait_for(
            "the Alertmanagers to gossip",
            lambda: all(
                len(m.get_json("/api/v2/status")["cluster"].get("peers") or []) == 2
                for m in managers
            ),
        )
        prometheus = _start(
            lambda: start_prometheus(
                scrape=f"{LOOPBACK}:{webs[0].port}",
                alertmanager=[f"{LOOPBACK}:{m.port}" for m in managers],
                rules=RULES,
                resend_delay="1s",  # the first send may precede discovering the managers
            )
        )

        def runs() -> list[dict[str, Any]]:
            answer = http.request("GET", f"{webs[1].url}/api/v1/executions", headers=VIEWER)
            assert answer.status == 200, answer.data
            found: list[dict[str, Any]] = answer.json()["executions"]
            return found

        wait_for(
            "deliveries from both Alertmanagers, and the run to end",
            lambda: (
                all(len(a.bodies) >= 2 for a in apps)
                and any(r["status"] in ("succeeded", "failed") for r in runs())
            ),
            timeout=60,
            state=lambda: (
                f"posts {[a.posts for a in apps]}, from the managers "
                f"{[len(a.bodies) for a in apps]}, runs {[r['status'] for r in runs()]}"
            ),
        )
        # More of the same episode, spread over time and both replicas, as the pair's next
        # repeat_intervals and retries would send them: the bodies they sent, verbatim, each
        # posted until it is accepted (every third is shed), up to DELIVERIES in all.
        sent = [body for a in apps for body in a.bodies]
        n = 0
        while sum(a.posts for a in apps) < DELIVERIES:
            web = webs[n % 2]
            body = sent[n % len(sent)]
            n += 1
            for _attempt in range(3):
                answer = http.request(
                    "POST", f"{web.url}/api/v1/alerts", body=body, headers=WEBHOOK
                )
                if answer.status != 503:
                    break
            assert answer.status == 202, answer.data
            time.sleep(0.05)
        print(
            "\ndeliveries per replica:",
            [a.posts for a in apps],
            "from the Alertmanagers:",
            [len(a.bodies) for a in apps],
            "shed with 503:",
            [a.shed for a in apps],
        )
        (run,) = runs()  # one run for dozens of deliveries of one episode
        assert run["runbook"] == "image-upload-failures"
        assert run["status"] in ("succeeded", "failed"), run
        assert run["still_firing"] is True, run
        assert run["repeats_after_finish"] >= 3, run

        def counted() -> float:
            return sum(
                wt.metrics.alerts_still_firing.labels("image-upload-failures")._value.get()
                for wt in replicas
            )

        # The real Alertmanagers keep delivering meanwhile, and a delivery is stored before it
        # is counted: read the counter first, the run after, and wait for a quiet moment.
        def agree() -> bool:
            before = counted()
            repeats = runs()[0]["repeats_after_finish"]
            assert repeats >= before  # never counted without being recorded on the run
            return repeats == before

        wait_for(
            "the counter to agree with the run",
            agree,
            timeout=30,
            state=lambda: f"counted {counted()}, run {runs()[0]['repeats_after_finish']}",
        )
        assert all(a.shed for a in apps)  # both replicas shed some, and retries came back

        # The alert resolves: posted as Alertmanager would (waiting for Prometheus to stop
        # sending and Alertmanager's resolve_timeout is not what this test is about).
        (alert,) = replicas[0].store.firing_alerts()
        body = resolved_body(alert.fingerprint, alert.labels, alert.starts_at.isoformat())
        answer = http.request("POST", f"{webs[0].url}/api/v1/alerts", body=body, headers=WEBHOOK)
        if answer.status == 503:  # the test's own shedding
            answer = http.request(
                "POST", f"{webs[0].url}/api/v1/alerts", body=body, headers=WEBHOOK
            )
        assert answer.status == 202, answer.data
        (after,) = runs()
        assert after["id"] == run["id"] and after["resolved_at"] is not None
        assert after["still_firing"] is False
    finally:
        for server in [prometheus, *managers]:
            if server is not None:
                server.stop()
        for web in webs:
            web.stop()
        http.clear()


def resolved_body(fingerprint: str, labels: dict[str, str], starts_at: str) -> bytes:
    return json.dumps(
        {
            "version": "4",
            "receiver": "watchtower",
            "status": "resolved",
            "groupKey": "{}:{}",
            "alerts": [
                {
                    "status": "resolved",
                    "labels": labels,
                    "annotations": {},
                    "startsAt": starts_at.replace("+00:00", "Z"),
                    "endsAt": "2026-01-01T00:00:00Z",
                    "fingerprint": fingerprint,
                }
            ],
        }
    ).encode()
