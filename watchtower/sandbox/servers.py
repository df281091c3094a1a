"""Start and stop local servers on free loopback ports: moto, redis-server, PostgreSQL, and
Prometheus and Alertmanager (the Debian binaries).

Used by `watchtower demo`, `watchtower sandbox` and the test fixtures, so all three run the
same stack the same way. Each server is a child process that `stop()` ends, with its files.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3
import yaml

LOOPBACK = "127.0.0.1"


class ServerUnavailable(RuntimeError):
    """A server's binary is missing or it did not become ready."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        port: int = s.getsockname()[1]
        return port


def _wait(ready: Callable[[], bool], what: str, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerUnavailable(f"{what} exited with status {process.returncode}")
        if ready():
            return
        time.sleep(0.05)
    process.kill()
    raise ServerUnavailable(f"{what} was not ready after {timeout:.0f}s")


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((LOOPBACK, port)) == 0


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen | None = None
    workdir: Path | None = None
    log_path: Path | None = None
    _cleanup: list = field(default_factory=list)

    def stop(self) -> None:
        for step in reversed(self._cleanup):
            with contextlib.suppress(Exception):
                step()
        self._cleanup.clear()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class MotoServer(Server):
    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def reset(self) -> None:
        urllib3.request("POST", f"{self.url}/moto-api/reset", timeout=10)

    def configure_lambda_without_docker(self) -> None:
        urllib3.request(
            "POST",
            f"{self.url}/moto-api/config",
            timeout=10,
            json={"lambda": {"use_docker": False}},
        )


@dataclass
class RedisServer(Server):
    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"


@dataclass
class PostgresServer(Server):
    database: str = "gallery"

    def stop(self) -> None:
        # SIGTERM is PostgreSQL's "smart" shutdown, which waits for every client to leave; SIGINT
        # is "fast": clients are disconnected and the postmaster's children end with it.
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)
        super().stop()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{LOOPBACK}:{self.port}/{self.database}"


def which(binary: str) -> str | None:
    found = shutil.which(binary)
    if found:
        return found
    # Debian keeps PostgreSQL's server binaries off PATH.
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{binary}"))
    return candidates[-1] if candidates else None


def _log(name: str) -> tuple[Path, int]:
    """A log file for a child; the parent closes its descriptor once the child has it."""
    path = Path(tempfile.gettempdir()) / f"watchtower-{name}-{os.getpid()}-{free_port()}.log"
    return path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)


def start_moto(port: int | None = None) -> MotoServer:
    port = port or free_port()
    # The moto of this environment first: another one on PATH may be older than pyproject asks.
    beside = Path(sys.executable).with_name("moto_server")
    binary = str(beside) if beside.exists() else which("moto_server") or str(beside)
    if not Path(binary).exists():
        raise ServerUnavailable("moto_server not found: pip install 'moto[server]'")
    log_path, log = _log("moto")
    process = subprocess.Popen(  # noqa: S603
        [binary, "-H", LOOPBACK, "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    os.close(log)
    server = MotoServer(name="moto", port=port, process=process, log_path=log_path)

    def ready() -> bool:
        try:
            urllib3.request("GET", f"{server.url}/moto-api/", timeout=0.5, retries=False)
        except urllib3.exceptions.HTTPError:
            return False
        return True

    _wait(ready, "moto_server", process, 30)
    return server


def start_redis(port: int | None = None) -> RedisServer:
    port = port or free_port()
    binary = which("redis-server")
    if binary is None:
        raise ServerUnavailable("redis-server not found: apt-get install redis-server")
    log_path, log = _log("redis")
    process = subprocess.Popen(  # noqa: S603
        [
            binary,
            "--port",
            str(port),
            "--bind",
            LOOPBACK,
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "yes",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    os.close(log)
    _wait(lambda: _port_open(port), "redis-server", process, 15)
    return RedisServer(name="redis", port=port, process=process, log_path=log_path)


def start_postgres(
    port: int | None = None, database: str = "gallery", settings: Sequence[str] = ()
) -> PostgresServer:
    """A throwaway cluster: initdb into a temporary directory, trust auth on loopback only;
    `settings` are more `name=value` server settings (benchmarks: track_commit_timestamp=on)."""
    port = port or free_port()
    initdb, postgres = which("initdb"), which("postgres")
    if initdb is None or postgres is None:
        raise ServerUnavailable("PostgreSQL server binaries not found: apt-get install postgresql")
    workdir = Path(tempfile.mkdtemp(prefix="watchtower-pg-"))
    data = workdir / "data"
    as_postgres: dict[str, object] = {}
    if os.geteuid() == 0:  # initdb refuses to run as root
        as_postgres = {"user": "postgres", "group": "postgres", "extra_groups": []}
        shutil.chown(workdir, "postgres", "postgres")
    subprocess.run(  # noqa: S603
        [initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-sync"],
        check=True,
        capture_output=True,
        **as_postgres,  # type: ignore[call-overload]
    )
    log_path, log = _log("postgres")
    process = subprocess.Popen(  # noqa: S603
        [
            postgres,
            "-D",
            str(data),
            "-p",
            str(port),
            "-k",
            str(workdir),
            "-c",
            f"listen_addresses={LOOPBACK}",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            *(arg for setting in settings for arg in ("-c", setting)),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        **as_postgres,  # type: ignore[call-overload]
    )
    os.close(log)
    server = PostgresServer(
        name="postgres",
        port=port,
        process=process,
        workdir=workdir,
        log_path=log_path,
        database=database,
    )
    try:
        _wait(lambda: _port_open(port), "postgres", process, 30)
        deadline = time.monotonic() + 30
        while True:
            created = subprocess.run(  # noqa: S603
                [
                    which("createdb") or "createdb",
                    "-h",
                    LOOPBACK,
                    "-p",
                    str(port),
                    "-U",
                    "postgres",
                    database,
                ],
                capture_output=True,
            )
            if created.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise ServerUnavailable(f"createdb failed: {created.stderr.decode().strip()}")
            time.sleep(0.1)
    except BaseException:
        server.stop()
        raise
    return server


MONITORING_INSTALL = "apt-get install prometheus prometheus-alertmanager"
# Debian's names first, then upstream's.
_BINARIES = {
    "prometheus": ("prometheus",),
    "alertmanager": ("prometheus-alertmanager", "alertmanager"),
}


@dataclass
class HttpServer(Server):
    """Prometheus or Alertmanager: an HTTP API on loopback, its log in its own workdir."""

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def get_json(self, path: str) -> Any:
        response = urllib3.request("GET", f"{self.url}{path}", timeout=5, retries=False)
        return response.json()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path else ""


def monitoring_binary(name: str) -> str | None:
    """The installed `prometheus` or `alertmanager` binary, if any."""
    return next(filter(None, (shutil.which(b) for b in _BINARIES[name])), None)


def _spawn(name: str, argv: list[str], workdir: Path, port: int) -> HttpServer:
    binary = monitoring_binary(name)
    if binary is None:
        shutil.rmtree(workdir, ignore_errors=True)
        raise ServerUnavailable(f"{name} not found: {MONITORING_INSTALL}")
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([binary, *argv], stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
    # stop() ends the process, then removes its configuration, data and log.
    server = HttpServer(name=name, port=port, process=process, workdir=workdir, log_path=log_path)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log_text = server.log()
            server.stop()
            raise ServerUnavailable(f"{name} exited with status {process.returncode}: {log_text}")
        try:
            ready = urllib3.request("GET", f"{server.url}/-/ready", timeout=0.5, retries=False)
            if ready.status == 200:
                return server
        except urllib3.exceptions.HTTPError:
            pass
        time.sleep(0.05)
    server.stop()
    raise ServerUnavailable(f"{name} was not ready after 20 s")


def _one_route(webhook_url: str, repeat_interval: str) -> dict[str, Any]:
    return {
        "route": {
            "receiver": "watchtower",
            "group_by": ["..."],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": repeat_interval,
        },
        "receivers": [{"name": "watchtower", "webhook_configs": [{"url": webhook_url}]}],
    }


def start_alertmanager(
    *,
    webhook_url: str,
    token: str,
    config: dict[str, Any] | None = None,
    repeat_interval: str = "1h",
    cluster_port: int | None = None,
    peers: tuple[int, ...] = (),
) -> HttpServer:
    """Alertmanager with `config` (default: one route, a notification a second) whose every
    webhook posts to `webhook_url` with the bearer token, read from a file of its own.

    With `cluster_port`, it gossips on that loopback port with the Alertmanagers on `peers`
    (an HA pair: each sends, the later one after its peer timeout, unless the notification log
    the first gossiped says it was sent)."""
    workdir = Path(tempfile.mkdtemp(prefix="watchtower-alertmanager-"))
    token_file = workdir / "webhook-token"
    token_file.write_text(token)
    os.chmod(token_file, 0o600)
    config = config if config is not None else _one_route(webhook_url, repeat_interval)
    for receiver in config.get("receivers") or []:
        for webhook in receiver.get("webhook_configs") or []:
            webhook["url"] = webhook_url
            webhook.setdefault("send_resolved", True)
            http_config = webhook.setdefault("http_config", {})
            http_config["authorization"] = {"type": "Bearer", "credentials_file": str(token_file)}
    (workdir / "alertmanager.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    if cluster_port is None:
        cluster = ["--cluster.listen-address="]  # no gossip port on every interface
    else:
        cluster = [
            f"--cluster.listen-address={LOOPBACK}:{cluster_port}",
            f"--cluster.advertise-address={LOOPBACK}:{cluster_port}",
            *(f"--cluster.peer={LOOPBACK}:{p}" for p in peers),
            "--cluster.peer-timeout=1s",
            "--cluster.gossip-interval=100ms",
            "--cluster.pushpull-interval=1s",
            "--cluster.settle-timeout=2s",
        ]
    return _spawn(
        "alertmanager",
        [
            f"--config.file={workdir / 'alertmanager.yml'}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address={LOOPBACK}:{port}",
            *cluster,
        ],
        workdir,
        port,
    )


def start_prometheus(
    *,
    scrape: str,
    alertmanager: str | list[str],
    rules: dict[str, Any],
    port: int | None = None,
    interval: str = "1s",
    resend_delay: str = "1m",
) -> HttpServer:
    """Scrape `scrape` (host:port) and evaluate `rules` every `interval`; alerts to
    `alertmanager` (host:port: every one of a list, as Prometheus sends to each member of an HA
    cluster)."""
    targets = [alertmanager] if isinstance(alertmanager, str) else alertmanager
    workdir = Path(tempfile.mkdtemp(prefix="watchtower-prometheus-"))
    (workdir / "rules.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
    config = {
        "global": {
            "scrape_interval": interval,
            "evaluation_interval": interval,
            "scrape_timeout": interval,
        },
        "rule_files": [str(workdir / "rules.yml")],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": targets}]}]},
        "scrape_configs": [{"job_name": "watchtower", "static_configs": [{"targets": [scrape]}]}],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = port or free_port()
    return _spawn(
        "prometheus",
        [
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address={LOOPBACK}:{port}",
            f"--rules.alert.resend-delay={resend_delay}",
        ],
        workdir,
        port,
    )
