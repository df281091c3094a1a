"""`watchtower demo rehearse` end to end against a real `watchtower demo`, with a 60 s window
sampled every 10 s: pre-flight, disable-dual-write with its approval, evidence, verdict, sign-off,
a frozen and verified report, all marked REHEARSAL. Plus the settings that make a rehearsal one.
The failing rehearsal, rolled back, is test_rehearsal_rollback.py (a demo of its own).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI
from tests.watchtower.sandbox.processes import ROOT
from tests.watchtower.sandbox.test_demo import DEMO_ENV, VIEWER_TOKEN, Demo, wait_for
from tests.watchtower.web.test_browser import document_screenshot
from watchtower.cutover.config import REHEARSAL_ROLE, CutoverSettings, rehearsal_of
from watchtower.errors import ConfigError
from watchtower.sandbox.servers import free_port, which

WINDOW, SAMPLE = 60, 10
VIEWER = {"Authorization": f"Bearer {VIEWER_TOKEN}"}


def test_rehearsal_settings_mark_every_signer_and_compress_the_window() -> None:
    settings = CutoverSettings.from_env(
        {
            "WATCHTOWER_CUTOVER_REHEARSAL": "true",
            "WATCHTOWER_CUTOVER_REHEARSAL_WINDOW_SECONDS": "600",
            "WATCHTOWER_CUTOVER_REHEARSAL_SAMPLE_SECONDS": "15",
        }
    )
    assert settings.rehearsal and settings.window_seconds == 600
    assert settings.sample_interval == 15
    assert settings.signers == ("Engineering lead (REHEARSAL)", "Operations lead (REHEARSAL)")
    assert rehearsal_of(settings).signers == settings.signers  # marked once, not twice
    # 100 timed uploads per 24 h window, scaled to 10 minutes, is under the floor of 20.
    assert settings.min_window_latency_samples == 20
    assert rehearsal_of(settings).min_window_latency_samples == 20
    long = rehearsal_of(CutoverSettings(rehearsal_window_seconds=12 * 3600))
    assert long.min_window_latency_samples == 50  # half the window, half the uploads
    real = CutoverSettings.from_env({})
    assert not real.rehearsal and real.window_seconds == 24 * 3600
    assert real.min_window_latency_samples == 100
    assert not any(r.endswith(REHEARSAL_ROLE) for r in real.signers)
    with pytest.raises(ConfigError, match="REHEARSAL"):
        CutoverSettings.from_env({"WATCHTOWER_CUTOVER_REHEARSAL": "perhaps"})
    with pytest.raises(ConfigError, match="REHEARSAL_WINDOW_SECONDS"):
        rehearsal_of(CutoverSettings(rehearsal_window_seconds=5, rehearsal_sample_seconds=10))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    missing = [b for b in ("redis-server", "initdb", "postgres") if which(b) is None]
    if missing:
        message = f"the rehearsal needs {', '.join(missing)}"
        pytest.fail(message) if IN_CI else pytest.skip(message)
    port, api_port = free_port(), free_port()
    log = tmp_path_factory.mktemp("rehearsal") / "demo.log"
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("WATCHTOWER_", "IMAGE_", "AWS_"))
    }
    env.update(DEMO_ENV)
    env["WATCHTOWER_CUTOVER_REHEARSAL_WINDOW_SECONDS"] = str(WINDOW)
    env["WATCHTOWER_CUTOVER_REHEARSAL_SAMPLE_SECONDS"] = str(SAMPLE)
    command = [sys.executable, "-m", "watchtower.cli", "demo", "--port", str(port)]
    command += ["--image-api-port", str(api_port), "--traffic-rate", "4"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    running = Demo(
        process=process,
        url=f"http://127.0.0.1:{port}",
        image_api=f"http://127.0.0.1:{api_port}",
        started=0.0,
        log=log,
    )
    try:
        wait_for("the demo", lambda: "ready in" in running.output(), 120, running)
        yield running
    finally:
        running.http.clear()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def rehearse(demo: Demo, *options: str) -> subprocess.CompletedProcess[str]:
    port = demo.url.rsplit(":", 1)[1]
    return subprocess.run(
        [sys.executable, "-m", "watchtower.cli", "demo", "rehearse", "--port", port, *options],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=WINDOW + 240,
    )


def report(demo: Demo, window: str, fmt: str) -> Any:
    answer = demo.http.request(
        "GET", f"{demo.url}/cutover/windows/{window}/report?format={fmt}", headers=VIEWER
    )
    assert answer.status == 200, answer.data[:500]
    return answer.json() if fmt == "json" else answer.data.decode()


@pytest.mark.slow
def test_a_rehearsal_is_signed_frozen_verified_and_marked(demo: Demo, tmp_path: Path) -> None:
    assert "watchtower demo rehearse" in demo.output()  # the banner says how
    done = rehearse(demo)
    print(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    for step in ("pre-flight", "disable-dual-write", "approval", "window", "verdict", "sign-off"):
        assert f"  {step} " in done.stdout, step
    outcome = json.loads(done.stdout.rsplit("REHEARSAL done: ", 1)[1])
    assert outcome["verdict"] == "signed" and outcome["kind"] == "cutover-rehearsal"
    assert outcome["frozen"] is True and outcome["verified"] is True
    assert f"REHEARSAL sha256 {outcome['sha256']}, verified" in done.stdout

    frozen = report(demo, outcome["window"], "json")
    assert frozen["frozen"] is True and frozen["verification"]["ok"] is True
    assert frozen["sha256"] == outcome["sha256"]
    document = frozen["document"]
    assert document["kind"] == "cutover-rehearsal"
    assert document["rehearsal"].startswith("REHEARSAL: ")
    assert document["window"]["duration_seconds"] == WINDOW
    roles = [s["role"] for s in document["signoffs"]]
    assert roles and all(r.endswith("(REHEARSAL)") for r in roles), roles
    markdown = report(demo, outcome["window"], "md")
    assert markdown.startswith("# REHEARSAL: cutover sign-off")
    html = report(demo, outcome["window"], "html")
    assert 'class="rehearsal-banner"' in html and "REHEARSAL · Cutover sign-off" in html
    page = demo.http.request("GET", f"{demo.url}/cutover", headers=VIEWER).data.decode()
    assert 'class="rehearsal-tag"' in page and "Start a cutover rehearsal" not in page  # viewer
    document_screenshot(demo.url + "/cutover", "cutover-rehearsal.png", tmp_path / "p")

    # Starting one needs an operator, and a scenario the rehearsal knows.
    anonymous = demo.http.request("POST", f"{demo.url}/api/v1/sandbox/rehearsal", json={})
    assert anonymous.status == 401
    bad = demo.http.request(
        "POST",
        f"{demo.url}/api/v1/sandbox/rehearsal",
        json={"inject": "meltdown"},
        headers={"Authorization": f"Bearer {demo.token}"},
    )
    assert bad.status == 400 and bad.json()["error"]["code"] == "bad_inject"
