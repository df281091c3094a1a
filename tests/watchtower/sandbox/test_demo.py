"""`watchtower demo` end to end, as a real subprocess: all green within a minute, each scenario
turns its component red at run time, the Lambda flag is followed, and SIGTERM leaves no process.

One demo process serves the tests of this module, in order (starting it is most of the cost);
each test leaves it healthy for the next, and the last one stops it. Intervals are shortened
through the same WATCHTOWER_* variables a person would set.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
import urllib3

from tests.conftest import IN_CI
from tests.helpers import image_bytes
from tests.watchtower.sandbox.processes import ROOT, alive, descendants, sandbox_token
from watchtower.checks import registry
from watchtower.probes import registry as probe_registry
from watchtower.sandbox import demo as sandbox_demo
from watchtower.sandbox.servers import free_port, which

pytestmark = pytest.mark.slow

EVERY_RESULT = set(registry()) | set(probe_registry())
VIEWER_TOKEN = secrets.token_urlsafe(40)  # start-up refuses weak tokens
DEMO_ENV = {
    "WATCHTOWER_PROBE_INTERVAL": "5",
    "WATCHTOWER_CHECKS_INTERVAL": "5",
    "WATCHTOWER_CHECKS_TICK": "1",
    "WATCHTOWER_USERS": f"vic:viewer:{VIEWER_TOKEN}",  # the demo adds its operator beside
    # The hit rate is an average of datapoints: a shorter window lets misses dominate sooner.
    "WATCHTOWER_CHECK_CLOUDFRONT_HIT_RATE_WINDOW_SECONDS": "30",
}
SCENARIO_SECONDS = 40  # the most a scenario may take to turn its component red
DEMO_COMMAND = (sys.executable, "-m", "watchtower.cli", "demo")
CHILDREN = ("moto_server", "redis-server", "postgres", "image_core")


@dataclass
class Demo:
    process: subprocess.Popen[bytes]
    url: str
    image_api: str
    started: float  # time.monotonic() when the command was started
    log: Path
    http: urllib3.PoolManager = field(default_factory=urllib3.PoolManager)

    def get(self, path: str, **kw: Any) -> Any:
        answer = self.http.request("GET", self.url + path, timeout=10, retries=False, **kw)
        return answer.status, json.loads(answer.data)

    def results(self) -> dict[str, dict[str, Any]]:
        _, body = self.get("/api/v1/results")
        return {r["name"]: r for r in body["results"]}

    def sandbox(self) -> dict[str, Any]:
        return self.get("/api/v1/sandbox")[1]

    @property
    def token(self) -> str:
        state = sandbox_demo.read_state(int(self.url.rsplit(":", 1)[1]))
        assert state is not None, "the demo left no state file"
        return str(state["token"])

    def switch(self, scenario: str) -> Any:
        return self.http.request(
            "POST",
            f"{self.url}/api/v1/sandbox/scenario",
            json={"scenario": scenario},
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=60,
            retries=False,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def wait_for(what: str, condition: Callable[[], Any], timeout: float, demo: Demo) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if demo.process.poll() is not None:
            pytest.fail(f"the demo exited ({demo.process.returncode}):\n{demo.output()[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    missing = [b for b in ("redis-server", "initdb", "postgres") if which(b) is None]
    if missing:
        message = f"the demo needs {', '.join(missing)} to be all green"
        pytest.fail(message) if IN_CI else pytest.skip(message)
    port, api_port = free_port(), free_port()
    log = tmp_path_factory.mktemp("demo") / "demo.log"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("WATCHTOWER_", "IMAGE_", "AWS_")) and k != "ENABLE_DYNAMODB_DUAL_WRITE"
    }
    env.update(DEMO_ENV)
    with log.open("wb") as out:
        started = time.monotonic()
        process = subprocess.Popen(
            [
                *DEMO_COMMAND,
                "--port",
                str(port),
                "--image-api-port",
                str(api_port),
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    running = Demo(
        process=process,
        url=f"http://127.0.0.1:{port}",
        image_api=f"http://127.0.0.1:{api_port}",
        started=started,
        log=log,
    )
    try:
        yield running
    finally:
        running.http.clear()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_all_green_within_a_minute(demo: Demo) -> None:
    def all_green() -> bool:
        try:
            results = demo.results()
        except (urllib3.exceptions.HTTPError, ValueError):
            return False
        return set(results) >= EVERY_RESULT and all(
            results[name]["status"] == "ok" for name in EVERY_RESULT
        )

    wait_for("every probe and check ok", all_green, 60 - (time.monotonic() - demo.started), demo)
    elapsed = time.monotonic() - demo.started
    print(f"\n`watchtower demo` all green {elapsed:.1f} s after the command started")
    assert elapsed < 60
    output = demo.output()
    assert "operator" in output and demo.token in output
    assert "SIMULATED" in output


def test_the_demo_runs_doctor_once_and_it_finds_everything_present(demo: Demo) -> None:
    line = wait_for(
        "the doctor's summary",
        lambda: next(
            (ln for ln in demo.output().splitlines() if ln.startswith("watchtower doctor:")), None
        ),
        90,
        demo,
    )
    assert "everything configured is in place" in line, demo.output()[-4000:]
    assert " missing" not in line
    assert "MISSING" not in demo.output()


def test_the_sandbox_endpoints_say_what_is_simulated_and_need_an_operator(demo: Demo) -> None:
    status, body = demo.get("/api/v1/sandbox")
    assert status == 200
    assert body["scenario"]["name"] == "healthy"
    assert len(body["simulated"]) == 3
    assert body["image_api"]["dual_write"] is True
    anonymous = demo.http.request(
        "POST", f"{demo.url}/api/v1/sandbox/scenario", json={"scenario": "throttling"}
    )
    assert anonymous.status == 401
    viewer = demo.http.request(
        "POST",
        f"{demo.url}/api/v1/sandbox/scenario",
        json={"scenario": "throttling"},
        headers={"Authorization": f"Bearer {VIEWER_TOKEN}"},
    )
    assert viewer.status == 403
    unknown = demo.switch("meltdown")
    assert unknown.status == 400
    assert "no scenario 'meltdown'" in json.loads(unknown.data)["error"]["message"]
    assert demo.sandbox()["scenario"]["name"] == "healthy"


def test_flipping_the_lambda_flag_stops_legacy_inserts(demo: Demo) -> None:
    state = demo.sandbox()
    lambda_client = boto3.client(
        "lambda",
        endpoint_url=state["endpoints"]["aws"],
        region_name="us-east-1",
        aws_access_key_id="sandbox",
        aws_secret_access_key="sandbox",
    )
    pg = state["endpoints"]["postgres"]
    http = urllib3.PoolManager()
    signed_in = {"Authorization": f"Bearer {sandbox_token(demo.output(), 'flag-test')}"}

    def upload() -> str:
        answer = http.request(
            "POST",
            f"{demo.image_api}/images",
            headers=signed_in,
            fields={"file": ("p.png", image_bytes("PNG", (40, 30)), "image/png")},
            timeout=10,
            retries=False,
        )
        assert answer.status == 201, answer.data
        return str(json.loads(answer.data)["id"])

    def in_gallery_images(image_id: str) -> bool:
        with psycopg.connect(pg, autocommit=True) as conn:
            row = conn.execute("SELECT 1 FROM gallery_images WHERE id = %s", (image_id,))
            return row.fetchone() is not None

    def write_latest(value: str) -> None:
        config = lambda_client.get_function_configuration(FunctionName=state["function"])
        variables = {**config["Environment"]["Variables"], "ENABLE_DYNAMODB_DUAL_WRITE": value}
        lambda_client.update_function_configuration(
            FunctionName=state["function"], Environment={"Variables": variables}
        )

    def set_flag(value: str) -> None:
        """As a deployment flips it: write, publish a version, move the alias to it."""
        write_latest(value)
        version = lambda_client.publish_version(FunctionName=state["function"])["Version"]
        lambda_client.update_alias(
            FunctionName=state["function"], Name=state["alias"], FunctionVersion=version
        )

    # Requests through the gateway all along: a restart refuses none of them.
    statuses: list[int | str] = []
    hammering = threading.Event()

    def hammer() -> None:
        while not hammering.is_set():
            try:
                answer = http.request("GET", f"{demo.image_api}/healthz", timeout=5, retries=False)
                statuses.append(answer.status)
            except urllib3.exceptions.HTTPError as exc:
                statuses.append(repr(exc))
            time.sleep(0.02)

    assert state["alias"] == "live"
    assert in_gallery_images(upload())
    process = state["image_api"]["process"]
    # Writing $LATEST alone changes nothing the alias serves: the image API is not restarted.
    write_latest("false")
    time.sleep(3)  # three of the follower's polls
    assert demo.sandbox()["image_api"]["process"] == process
    assert demo.sandbox()["image_api"]["dual_write"]
    thread = threading.Thread(target=hammer, daemon=True)
    thread.start()
    try:
        flipped = time.monotonic()
        set_flag("false")
        now = wait_for(
            "a new image API process without dual-write",
            lambda: (s := demo.sandbox()["image_api"])["process"] > process and not s["dual_write"],
            15,
            demo,
        )
        followed = time.monotonic() - flipped
        print(f"\nflag followed {followed:.1f} s after UpdateFunctionConfiguration")
        assert now
        time.sleep(1)  # requests the old process had in hand finish
        with psycopg.connect(pg, autocommit=True) as conn:
            since: datetime = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
        off = [upload() for _ in range(3)]
        time.sleep(3)  # the background traffic uploads too
        assert not any(in_gallery_images(i) for i in off)
        with psycopg.connect(pg, autocommit=True) as conn:
            inserted = conn.execute(
                "SELECT count(*) FROM gallery_images WHERE inserted_at > %s", (since,)
            ).fetchone()
        assert inserted == (0,)

        set_flag("true")
        wait_for(
            "an image API process with dual-write again",
            lambda: demo.sandbox()["image_api"]["dual_write"],
            15,
            demo,
        )
        assert in_gallery_images(upload())
    finally:
        hammering.set()
        thread.join(timeout=5)
        http.clear()
        lambda_client.close()
    assert len(statuses) > 50
    assert set(statuses) == {200}, [s for s in statuses if s != 200][:5]


def test_each_scenario_turns_its_component_red(demo: Demo) -> None:
    timings = {}
    for n, name in enumerate(
        ("throttling", "cold-starts", "cache-misses", "legacy-writes", "upload-errors")
    ):
        switched = time.monotonic()
        if n % 2 == 0:  # the command line, talking to the running demo
            cli = subprocess.run(
                [*DEMO_COMMAND, "scenario", name, "--port", demo.url.rsplit(":", 1)[1]],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert cli.returncode == 0, cli.stderr
            assert f"now playing: {name}" in cli.stdout
        else:  # the operator endpoint
            answer = demo.switch(name)
            assert answer.status == 200, answer.data
        since = time.time()
        expected = dict(demo.sandbox()["scenario"]["turns_red"])
        assert expected

        def red(expected: dict[str, str] = expected, since: float = since) -> bool:
            results = demo.results()
            return all(
                name in results
                and results[name]["status"] == status
                and datetime.fromisoformat(results[name]["observed_at"]).timestamp() > since
                for name, status in expected.items()
            )

        wait_for(f"{name} turns {expected}", red, SCENARIO_SECONDS, demo)
        timings[name] = time.monotonic() - switched
    print(f"\nseconds from switch to red: { {k: round(v, 1) for k, v in timings.items()} }")
    assert demo.switch("healthy").status == 200
    state = demo.sandbox()
    assert state["image_api"]["bucket"] == "images"
    assert state["image_api"]["dual_write"] is True
    assert state["image_api"]["follows_function_flag"] is True


def test_sigterm_stops_everything_it_started(demo: Demo) -> None:
    children = descendants(demo.process.pid)
    for name in CHILDREN:
        assert any(name in cmd for cmd in children.values()), (name, children)
    demo.process.send_signal(signal.SIGTERM)
    assert demo.process.wait(timeout=30) == 0
    left = {pid: cmd for pid, cmd in children.items() if alive(pid, cmd)}
    assert left == {}
    assert not sandbox_demo.state_path(int(demo.url.rsplit(":", 1)[1])).exists()
    assert demo.output().rstrip().endswith("stopped")
