"""Watchtower end to end: probes and checks against the real image API and moto, results into
history and /metrics, the CLI's exit codes, and two replicas sharing one schedule."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import urllib3

from image_core.app import Components
from watchtower.model import Status
from watchtower.runtime import Watchtower
from watchtower.sandbox.servers import free_port
from watchtower.store import HistoryStore, engine_for
from watchtower.web import create_app


@pytest.fixture
def image_api(components: Components, serve_api: Callable[[Components], str]) -> str:
    return serve_api(components)


@pytest.fixture
def watchtower(image_api: str, moto: Any, make_watchtower: Callable[..., Watchtower]) -> Watchtower:
    return make_watchtower(clock=time.time, image_api_url=image_api, aws_endpoint_url=moto.url)


def test_probe_results_reach_history_and_metrics(watchtower: Watchtower) -> None:
    results = watchtower.run_probe("upload_get")
    [result] = results
    # The walk succeeded. It may be judged slow (a warning) on a loaded machine: its thresholds
    # are wall-clock ones, and what is tested here is that the reading reaches history and metrics.
    assert result.status is Status.OK or (
        result.status is Status.WARNING and result.reason.startswith("slow:")
    ), result.reason
    assert watchtower.store.latest()["upload_get"].status is result.status
    client = create_app(watchtower).test_client()
    text = client.get("/metrics").get_data(as_text=True)
    assert 'watchtower_probe_success{probe="upload_get"} 1.0' in text
    body = client.get("/api/v1/results").json
    assert [r["name"] for r in body["results"]] == ["upload_get"]


def test_a_check_cycle_never_raises_and_unknown_is_never_ok(watchtower: Watchtower) -> None:
    # Nothing has published metrics or logs and no function exists: every check must say so.
    results = watchtower.run_checks()
    assert {r.name for r in results} == set(watchtower.checks)
    for r in results:
        if r.status is Status.OK:
            assert r.name == "dynamodb_throttling", r  # throttle metrics exist only when throttled
        assert r.reason
    assert (
        watchtower.metrics.registry.get_sample_value(
            "watchtower_aws_api_calls_total", {"api": "GetMetricData"}
        )
        >= 1
    )


def test_readiness_follows_the_history_store(watchtower: Watchtower) -> None:
    client = create_app(watchtower).test_client()
    assert client.get("/readyz").status_code == 200
    watchtower.store.engine.dispose()
    watchtower.store = HistoryStore(engine_for("sqlite:////nonexistent/dir/wt.sqlite"))
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert "history store unreachable" in answer.json["problems"][0]


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "watchtower.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _env(image_api: str, moto_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        "WATCHTOWER_IMAGE_API_URL": image_api,
        "AWS_ENDPOINT_URL": moto_url,
        "WATCHTOWER_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite'}",
    }


def test_cli_probe_run_passes_and_check_run_exits_1_on_unknown(
    image_api: str, moto: Any, tmp_path: Path
) -> None:
    env = _env(image_api, moto.url, tmp_path)
    probe = _cli("probe", "run", env=env)
    assert probe.returncode == 0, probe.stdout + probe.stderr
    assert "upload_get" in probe.stdout and "OK" in probe.stdout
    checks = _cli("check", "run", "--json", "cloudfront_hit_rate", env=env)
    assert checks.returncode == 1
    (only,) = json.loads(checks.stdout)
    assert only["name"] == "cloudfront_hit_rate" and only["status"] == "unknown"


def test_cli_bad_setting_or_name_is_exit_2_with_one_line(tmp_path: Path) -> None:
    bad = _cli("check", "run", env={"WATCHTOWER_PROBE_INTERVAL": "soon"})
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "error: WATCHTOWER_PROBE_INTERVAL='soon' is not a whole number"
    ]
    unknown = _cli(
        "check",
        "run",
        "nope",
        env={"WATCHTOWER_DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite'}"},
    )
    assert unknown.returncode == 2 and "no check named nope" in unknown.stderr


@pytest.mark.slow
def test_two_replicas_run_each_job_once_per_interval(
    image_api: str, moto: Any, redis_url: str, tmp_path: Path
) -> None:
    env = {
        **_env(image_api, moto.url, tmp_path),
        "WATCHTOWER_REDIS_URL": redis_url,
        "WATCHTOWER_PROBE_INTERVAL": "2",
        "WATCHTOWER_CHECKS_INTERVAL": "2",
        "WATCHTOWER_CHECKS_TICK": "1",
        "WATCHTOWER_SCHEDULER_JITTER": "1",
    }
    ports = [free_port(), free_port()]
    replicas = [
        subprocess.Popen(
            [sys.executable, "-m", "watchtower.cli", "serve", "--port", str(port)],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for port in ports
    ]
    try:
        for port in ports:  # up and serving before the window is timed
            _wait_healthy(port)
        time.sleep(8)
        scraped = [
            urllib3.request("GET", f"http://127.0.0.1:{p}/metrics", timeout=5).data.decode()
            for p in ports
        ]
    finally:
        for replica in replicas:
            replica.send_signal(signal.SIGTERM)
        for replica in replicas:
            replica.wait(timeout=20)
    store = HistoryStore(engine_for(env["WATCHTOWER_DATABASE_URL"]))
    first_attempts = [r for r in store.history(since=_epoch()) if r.attempt == 1]
    store.engine.dispose()
    per_slot = Counter((r.name, math.floor(r.observed_at.timestamp() / 2)) for r in first_attempts)
    assert per_slot, "nothing ran"
    assert max(per_slot.values()) == 1, [k for k, n in per_slot.items() if n > 1]
    probe_slots = {s for (name, s) in per_slot if name == "upload_get"}
    assert len(probe_slots) >= 3
    skipped = sum(_sample(text, 'job="probe:upload_get",outcome="skipped"') for text in scraped)
    assert skipped >= 1, "the second replica never met a taken slot"


def _wait_healthy(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if (
                urllib3.request(
                    "GET", f"http://127.0.0.1:{port}/healthz", timeout=1, retries=False
                ).status
                == 200
            ):
                return
        except urllib3.exceptions.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"replica on port {port} never became healthy")


def _epoch() -> Any:
    from datetime import UTC, datetime

    return datetime(2000, 1, 1, tzinfo=UTC)


def _sample(text: str, labels: str) -> float:
    for line in text.splitlines():
        if line.startswith("watchtower_scheduler_job_runs_total{") and labels in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_history_store_outage_is_503_not_500(watchtower: Watchtower) -> None:
    client = create_app(watchtower).test_client()
    watchtower.store.engine.dispose()
    watchtower.store = HistoryStore(engine_for("sqlite:////nonexistent/dir/wt.sqlite"))
    answer = client.get("/api/v1/results")
    assert answer.status_code == 503
    assert answer.json["error"]["code"] == "store_unreachable"
