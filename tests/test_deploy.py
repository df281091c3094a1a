"""The deployment: the Dockerfile's essentials, and its very start command run for real.

No Docker engine runs here, so the image is checked in two halves: what the Dockerfile says
(stages, base, user, health check, command, no secrets, the lock), and what its command does
when run outside a container the way the image runs it (same argv, same config module, the
source tree on PYTHONPATH, a writable working directory), on a free loopback port against a
temporary SQLite, stopped with SIGTERM as `docker stop` would.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import urllib3

from watchtower.sandbox.servers import free_port

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
BIN = Path(sys.executable).parent
WEBHOOK_TOKEN = secrets.token_urlsafe(40)  # start-up refuses weak tokens
OPERATOR_TOKEN = secrets.token_urlsafe(40)
SECRETISH = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|PRIVATE|USERS|ACCESS_KEY", re.I)


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)  # (KEYWORD, arguments)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def last(self, keyword: str) -> str | None:
        found = self.all(keyword)
        return found[-1] if found else None


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """(global ARG defaults, stages): continuation lines joined, comments dropped."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        current += (" " if current else "") + line.removesuffix("\\").strip()
        if not line.endswith("\\"):
            logical.append(current)
            current = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), words[0])
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=base, name=name))
        elif stages:
            stages[-1].instructions.append((keyword, rest))
        elif keyword == "ARG":
            name, _, default = rest.partition("=")
            args[name.strip()] = default.strip()
    return args, stages


@pytest.fixture(scope="module")
def dockerfile() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))[1]


def _exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def test_multi_stage_with_a_slim_python_3_11_runtime(dockerfile: list[Stage]) -> None:
    assert len(dockerfile) >= 2, "a builder stage and a runtime stage"
    builder, runtime = dockerfile[0], dockerfile[-1]
    assert builder.name == "builder"
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", runtime.base), runtime.base
    # The runtime gets the builder's wheels and nothing else from it (no compilers, no caches).
    sources = [a for a in runtime.all("RUN") + runtime.all("COPY") if "from=builder" in a]
    assert sources and all("/wheels" in a for a in sources), sources


def test_the_builder_builds_wheels_from_the_lock_with_hashes(dockerfile: list[Stage]) -> None:
    builder = dockerfile[0]
    assert any("requirements.lock" in a for a in builder.all("COPY"))
    wheel = [a for a in builder.all("RUN") if "pip wheel" in a]
    assert wheel and "--require-hashes" in wheel[0] and "-r /tmp/requirements.lock" in wheel[0]
    install = [a for a in dockerfile[-1].all("RUN") if "pip install" in a]
    assert install and "--no-index" in install[0], "the runtime installs the built wheels only"


def test_runs_as_a_user_that_is_not_root(dockerfile: list[Stage]) -> None:
    user = dockerfile[-1].last("USER")
    assert user is not None, "no USER: the container would run as root"
    name = user.split(":")[0]
    assert name not in ("root", "0"), user
    # After USER nothing runs as root again.
    keywords = [kw for kw, _ in dockerfile[-1].instructions]
    assert "RUN" not in keywords[keywords.index("USER") :]


def test_health_check_hits_healthz_with_pythons_urllib(dockerfile: list[Stage]) -> None:
    check = dockerfile[-1].last("HEALTHCHECK")
    assert check is not None
    command = _exec_form(check.split("CMD", 1)[1].strip())
    assert command[0] == "python" and "urllib.request" in command[-1]
    assert "/healthz" in command[-1]
    assert not re.search(r"\b(curl|wget)\b", check)
    for option in ("--interval=", "--timeout=", "--start-period="):
        assert option in check


def test_command_is_gunicorn_with_the_projects_config(dockerfile: list[Stage]) -> None:
    command = _image_command(dockerfile)
    assert command[:1] == ["gunicorn"]
    assert "python:watchtower.gunicorn_conf" in command
    assert dockerfile[-1].last("ENTRYPOINT") is None, "CMD alone, so `watchtower scheduler` fits"


def test_no_secret_is_baked_into_the_image(dockerfile: list[Stage]) -> None:
    for stage in dockerfile:
        for keyword in ("ENV", "ARG", "LABEL"):
            for args in stage.all(keyword):
                names = re.findall(r"(\w+)=", args) or [args.split()[0]]
                assert not [n for n in names if SECRETISH.search(n)], f"{keyword} {args}"
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert "WATCHTOWER_USERS=" not in text and "AWS_SECRET_ACCESS_KEY=" not in text


def test_dockerignore_is_an_allowlist_that_keeps_local_state_out() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "ignore everything, then allow what the Dockerfile copies"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = set()
    for stage in parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))[1]:
        for args in stage.all("COPY"):
            if "--from=" not in args:
                copied.add(args.split()[0])
    assert copied <= allowed, copied - allowed
    for kept_out in ("**/*.sqlite", "**/.env"):
        assert kept_out in lines


# -- the start command, run for real -------------------------------------------------------------


def _image_command(stages: list[Stage]) -> list[str]:
    cmd = stages[-1].last("CMD")
    assert cmd is not None
    return _exec_form(cmd)


def _image_env(stages: list[Stage]) -> dict[str, str]:
    """The runtime stage's ENV, as the image would set it (PATH and PYTHONPATH are ours here)."""
    env: dict[str, str] = {}
    for args in stages[-1].all("ENV"):
        for name, value in re.findall(r"(\w+)=(\S+)", args):
            if name not in ("PATH", "PYTHONPATH"):
                env[name] = value
    return env


@dataclass
class Running:
    process: subprocess.Popen[str]
    port: int
    log: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def _environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    closed = free_port()  # nothing listens: sources are unknown at once, and nothing leaves
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),  # the image's PYTHONPATH=/app: the source tree
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "WATCHTOWER_DATABASE_URL": f"sqlite:///{tmp_path / 'watchtower.sqlite'}",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{closed}",
        "WATCHTOWER_IMAGE_API_URL": f"http://127.0.0.1:{closed}",
        "WATCHTOWER_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        "WATCHTOWER_USERS": f"ops:operator:{OPERATOR_TOKEN}",
        **extra,
    }


def _start(argv: list[str], env: dict[str, str], port: int, workdir: Path) -> Running:
    log = workdir / f"{port}.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            argv, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT, text=True
        )
    return Running(process, port, log)


def _wait_healthy(running: Running, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            pytest.fail(f"exited {running.process.returncode}:\n{running.output()}")
        try:
            answer = urllib3.request("GET", running.url("/healthz"), timeout=2, retries=False)
            if answer.status == 200:
                return
        except urllib3.exceptions.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"no healthy /healthz within {timeout} s:\n{running.output()}")


def _stop(running: Running) -> int:
    running.process.send_signal(signal.SIGTERM)
    try:
        return running.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        running.process.kill()
        running.process.wait()
        pytest.fail(f"did not stop within 30 s of SIGTERM:\n{running.output()}")


@pytest.fixture
def web(dockerfile: list[Stage], tmp_path: Path) -> Iterator[Running]:
    """The image's CMD, with gunicorn's own override moving the bind to a free loopback port."""
    port = free_port()
    env = {
        **_environment(tmp_path),
        **_image_env(dockerfile),
        "GUNICORN_CMD_ARGS": f"--bind 127.0.0.1:{port}",
    }
    running = _start(_image_command(dockerfile), env, port, tmp_path)
    try:
        _wait_healthy(running)
        yield running
    finally:
        if running.process.poll() is None:
            _stop(running)


def test_the_image_command_serves_healthz_and_metrics_and_stops_cleanly(
    web: Running, dockerfile: list[Stage]
) -> None:
    health = urllib3.request("GET", web.url("/healthz"), timeout=5)
    assert health.status == 200 and health.json() == {"status": "ok"}
    metrics = urllib3.request("GET", web.url("/metrics"), timeout=5)
    assert metrics.status == 200
    assert metrics.headers["Content-Type"].startswith("text/plain")
    assert "# TYPE watchtower_probe_success gauge" in metrics.data.decode()
    ready = urllib3.request("GET", web.url("/readyz"), timeout=5)
    assert ready.status == 200, ready.data
    assert health.headers.get("Server") == "gunicorn"
    # The image's HEALTHCHECK command itself, pointed at this port.
    check = dockerfile[-1].last("HEALTHCHECK")
    assert check is not None
    probe = _exec_form(check.split("CMD", 1)[1].strip())
    probe = [part.replace(":8080/", f":{web.port}/") for part in probe]
    probe[0] = sys.executable
    assert subprocess.run(probe, timeout=15, check=False).returncode == 0
    assert _stop(web) == 0
    output = web.output()
    assert "Shutting down: Master" in output
    assert "Traceback" not in output, output


def test_the_image_health_check_fails_when_nothing_answers(dockerfile: list[Stage]) -> None:
    check = dockerfile[-1].last("HEALTHCHECK")
    assert check is not None
    probe = _exec_form(check.split("CMD", 1)[1].strip())
    probe = [part.replace(":8080/", f":{free_port()}/") for part in probe]
    probe[0] = sys.executable
    done = subprocess.run(probe, timeout=15, check=False, capture_output=True)
    assert done.returncode != 0


def test_an_invalid_setting_stops_gunicorn_with_one_line_naming_it(
    dockerfile: list[Stage], tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **_environment(tmp_path, WATCHTOWER_PROBE_INTERVAL="soon"),
        "GUNICORN_CMD_ARGS": f"--bind 127.0.0.1:{port}",
    }
    done = subprocess.run(
        _image_command(dockerfile),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "error: WATCHTOWER_PROBE_INTERVAL='soon' is not a whole number" in done.stderr
    assert "Traceback" not in done.stderr


def test_web_and_scheduler_processes_share_one_store(
    web: Running, dockerfile: list[Stage], tmp_path: Path
) -> None:
    """The deployment's shape: gunicorn only serves, `watchtower scheduler` only schedules, and
    they meet in the store: an alert the web process accepted waits until the scheduler's runbook
    worker takes it up, and what the scheduler records the web process shows."""
    accepted = urllib3.request(
        "POST",
        web.url("/api/v1/alerts"),
        json=_notification("ImageDynamoDBThrottling"),
        headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
        timeout=10,
    )
    assert accepted.status == 202, accepted.data
    time.sleep(1)
    assert _execution_statuses(web) == ["pending"], "the web process runs no runbook worker"
    port = free_port()
    env = {
        **_environment(tmp_path),
        **_image_env(dockerfile),
        # The same store as the web fixture's (one temporary directory per test).
        "WATCHTOWER_CHECKS_TICK": "1",
    }
    # The image's `watchtower` is `python -m watchtower.cli`.
    argv = [sys.executable, "-m", "watchtower.cli", "scheduler", "--host", "127.0.0.1"]
    scheduler = _start([*argv, "--port", str(port)], env, port, tmp_path)
    try:
        _wait_healthy(scheduler)
        deadline = time.monotonic() + 30
        names: set[str] = set()
        while time.monotonic() < deadline and not {"upload_get", "dual_write"} <= names:
            answer = urllib3.request("GET", web.url("/api/v1/results"), timeout=5)
            names = {r["name"] for r in answer.json()["results"]}
            time.sleep(0.5)
        assert {"upload_get", "dual_write"} <= names, (names, scheduler.output())
        # The scheduler's worker advanced the run (here to a failed AWS read: nothing answers).
        while time.monotonic() < deadline and _execution_statuses(web) == ["pending"]:
            time.sleep(0.5)
        assert _execution_statuses(web) not in (["pending"], []), scheduler.output()
        # The results are the scheduler's: its /metrics has them, the web process's has none.
        text = urllib3.request("GET", scheduler.url("/metrics"), timeout=5).data.decode()
        assert 'watchtower_probe_success{probe="upload_get"}' in text
        web_text = urllib3.request("GET", web.url("/metrics"), timeout=5).data.decode()
        assert 'watchtower_probe_success{probe="upload_get"}' not in web_text
        assert urllib3.request("GET", scheduler.url("/readyz"), timeout=5).status == 200
    finally:
        code = _stop(scheduler)
    assert code == 0, scheduler.output()


def _notification(alertname: str) -> dict[str, object]:
    """An Alertmanager webhook notification (version 4) with one firing alert."""
    return {
        "version": "4",
        "status": "firing",
        "receiver": "watchtower",
        "groupKey": "{}:{}",
        "truncatedAlerts": 0,
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": alertname, "severity": "warning"},
                "annotations": {},
                "startsAt": "2026-01-01T00:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://127.0.0.1:9090",
                "fingerprint": "0123456789abcdef",
            }
        ],
    }


def _execution_statuses(web: Running) -> list[str]:
    answer = urllib3.request(
        "GET",
        web.url("/api/v1/executions"),
        headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
        timeout=5,
    )
    assert answer.status == 200, answer.data
    return [e["status"] for e in answer.json()["executions"]]
