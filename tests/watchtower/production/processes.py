"""Watchtower as real processes (`python -m watchtower.cli serve`), and bounded waits.

Each replica logs to a file of the test's own; an assertion that fails shows its last lines.
Processes are ended by their own pid, never by name.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import urllib3

from watchtower.sandbox.servers import LOOPBACK, MotoServer, PostgresServer, Server, free_port

ROOT = Path(__file__).resolve().parents[3]
START_SECONDS = 30.0  # the most a replica may take to answer /healthz
T = TypeVar("T")


def wait_for(what: str, found: Callable[[], T | None], timeout: float, every: float = 0.1) -> T:
    """`found()` once it is truthy; fails after `timeout` seconds, saying what it waited for."""
    deadline = time.monotonic() + timeout
    while True:
        value = found()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def environment(settings: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without the shell's WATCHTOWER_* settings, plus `settings`."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("WATCHTOWER_")}
    return {**inherited, **settings}


@dataclass
class Replica:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    http: urllib3.PoolManager = field(
        default_factory=lambda: urllib3.PoolManager(retries=False, timeout=10)
    )

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def get(self, path: str, headers: Mapping[str, str] | None = None) -> Any:
        return self.http.request("GET", self.url + path, headers=dict(headers or {}))

    def post(
        self,
        path: str,
        *,
        body: bytes | None = None,
        form: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        if form is not None:
            return self.http.request(
                "POST",
                self.url + path,
                fields=dict(form),
                encode_multipart=False,
                headers=dict(headers or {}),
                redirect=False,
            )
        return self.http.request(
            "POST", self.url + path, body=body, headers=dict(headers or {}), redirect=False
        )

    def json(self, path: str, headers: Mapping[str, str] | None = None) -> Any:
        answer = self.get(path, headers)
        assert answer.status == 200, (
            f"{self.name} GET {path}: {answer.status} {answer.data[:300]!r}"
        )
        return json.loads(answer.data)

    def healthy(self) -> bool:
        try:
            return bool(self.get("/healthz").status == 200)
        except urllib3.exceptions.HTTPError:
            return False

    def job_runs(self, job: str) -> dict[str, float]:
        """This replica's `watchtower_scheduler_job_runs_total` for one job, by outcome."""
        text = self.get("/metrics").data.decode()
        runs: dict[str, float] = {}
        prefix = f'watchtower_scheduler_job_runs_total{{job="{job}",outcome="'
        for line in text.splitlines():
            if line.startswith(prefix):
                outcome = line[len(prefix) :].split('"', 1)[0]
                runs[outcome] = float(line.rsplit(" ", 1)[1])
        return runs

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_healthy(self, timeout: float = START_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if self.process.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.tail()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} did not answer /healthz:\n{self.tail()}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when a host dies."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.http.clear()


def spawn(
    name: str, settings: Mapping[str, str], log_dir: Path, *, port: int | None = None
) -> Replica:
    """`watchtower serve` on a loopback port; not waited for (see `Replica.wait_healthy`)."""
    port = port or free_port()
    log = log_dir / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "watchtower.cli", "serve", "--port", str(port)],
            env=environment(settings),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    return Replica(name=name, port=port, process=process, log=log)


@contextlib.contextmanager
def replicas(names: list[str], settings: Mapping[str, str], log_dir: Path) -> Iterator[Any]:
    """Replicas started together (as a deployment starts them), each stopped at the end."""
    started = [spawn(name, settings, log_dir) for name in names]
    try:
        for replica in started:
            replica.wait_healthy()
        yield started
    finally:
        for replica in started:
            replica.stop()


@contextlib.contextmanager
def fresh_database(server: PostgresServer) -> Iterator[str]:
    """A database of its own on `server` (CREATE DATABASE), dropped afterwards; its URL."""
    name = f"watchtower_{secrets.token_hex(4)}"
    admin = f"postgresql://postgres@{LOOPBACK}:{server.port}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@{LOOPBACK}:{server.port}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- servers stopped and started again ---------------------------------------------------------


def end(server: Server) -> list[str]:
    """End a server's process, as an outage would, keeping its files; returns its command line."""
    process = server.process
    assert process is not None and process.poll() is None, f"{server.name} is not running"
    # PostgreSQL's "fast" shutdown (SIGINT) disconnects clients; the others end on SIGTERM.
    process.send_signal(signal.SIGINT if isinstance(server, PostgresServer) else signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
    return [str(arg) for arg in process.args]  # type: ignore[union-attr]


def start_again(server: Server, command: list[str]) -> None:
    """The same command line again: the same port, and for PostgreSQL the same data directory."""
    as_postgres: dict[str, Any] = {}
    if isinstance(server, PostgresServer) and os.geteuid() == 0:
        as_postgres = {"user": "postgres", "group": "postgres", "extra_groups": []}
    assert server.log_path is not None
    with server.log_path.open("ab") as out:
        server.process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, **as_postgres
        )
    wait_for(f"{server.name} to answer again", lambda: _answers(server), START_SECONDS)


def _answers(server: Server) -> bool:
    assert server.process is not None
    if server.process.poll() is not None:
        raise AssertionError(f"{server.name} exited with {server.process.returncode}")
    try:
        if isinstance(server, MotoServer):
            return bool(urllib3.request("GET", f"{server.url}/moto-api/", timeout=1).status == 200)
        if isinstance(server, PostgresServer):
            psycopg.connect(server.url, connect_timeout=1).close()
            return True
        with socket.create_connection((LOOPBACK, server.port), timeout=1):
            return True
    except (OSError, urllib3.exceptions.HTTPError, psycopg.OperationalError):
        return False
