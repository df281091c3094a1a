"""`watchtower sandbox`: the same stack without Watchtower, for trying the image API by hand;
Ctrl-C stops every process it started."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import urllib3

from tests.helpers import image_bytes
from tests.watchtower.sandbox.processes import ROOT, alive, descendants, sandbox_token
from watchtower.sandbox.servers import free_port

pytestmark = pytest.mark.slow
SANDBOX_COMMAND = (sys.executable, "-m", "watchtower.cli", "sandbox")


def test_sandbox_serves_the_image_api_until_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "sandbox.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WATCHTOWER_", "IMAGE_"))}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*SANDBOX_COMMAND, "--image-api-port", str(port), "--traffic-rate", "0"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while "Ctrl-C stops everything" not in log.read_text():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        me = {"Authorization": f"Bearer {sandbox_token(log.read_text(), 'me')}"}
        refused = urllib3.request(
            "GET", f"http://127.0.0.1:{port}/images", headers={"X-User-Id": "me"}, timeout=10
        )
        assert refused.status == 401  # no trusted header: callers sign in with a token
        answer = urllib3.request(
            "POST",
            f"http://127.0.0.1:{port}/images",
            headers=me,
            fields={"file": ("p.jpg", image_bytes(), "image/jpeg")},
            timeout=10,
        )
        assert answer.status == 201, answer.data
        image_id = json.loads(answer.data)["id"]
        listed = urllib3.request("GET", f"http://127.0.0.1:{port}/images", headers=me, timeout=10)
        assert [i["id"] for i in json.loads(listed.data)["items"]] == [image_id]
        assert "Watchtower does not" in log.read_text()

        children = descendants(process.pid)
        assert len(children) >= 4, children
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0, log.read_text()
        assert {pid: cmd for pid, cmd in children.items() if alive(pid, cmd)} == {}
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_scenario_the_stack_cannot_play_stops_it_with_the_reason() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WATCHTOWER_", "IMAGE_"))}
    done = subprocess.run(
        [
            *SANDBOX_COMMAND,
            *("--image-api-port", str(free_port()), "--traffic-rate", "0"),
            *("--no-dual-write", "--scenario", "legacy-writes"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "Error: legacy-writes needs PostgreSQL" in done.stderr
    assert "Traceback" not in done.stderr
