"""Watchtower as real processes (`python -m watchtower.cli serve`), and bounded waits; servers
ended and started again, or frozen (SIGSTOP) and thawed; Watchtower over the sandbox stack, as the
fault tests run it.

Each replica logs to a file of the test's own; an assertion that fails shows its last lines.
Processes are ended by their own pid, never by name.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import psycopg
import pytest
import urllib3

from tests.conftest import IN_CI
from tests.watchtower.alerts.test_alerting import am_alert, payload
from watchtower.checks import registry
from watchtower.sandbox import demo
from watchtower.sandbox import stack as sandbox
from watchtower.sandbox.servers import (
    LOOPBACK,
    MotoServer,
    PostgresServer,
    Server,
    ServerUnavailable,
    free_port,
)
from watchtower.store import HistoryStore, engine_for

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


def tree(pid: int) -> list[int]:
    """`pid` and its descendants (PostgreSQL serves each connection from a child process)."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        for child in children:
            found += tree(int(child))
    return found


class Frozen:
    """SIGSTOP a server's processes (all of them); SIGCONT them on leaving, whatever happened."""

    def __init__(self, server: Server) -> None:
        assert server.process is not None and server.process.poll() is None
        self.pid = server.process.pid
        self.stopped: list[int] = []

    def __enter__(self) -> float:
        os.kill(self.pid, signal.SIGSTOP)  # first: it forks no new child meanwhile
        self.stopped = tree(self.pid)
        for pid in self.stopped[1:]:
            os.kill(pid, signal.SIGSTOP)
        return time.time()

    def __exit__(self, *exc: Any) -> None:
        for pid in self.stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


# -- Watchtower over the sandbox stack (the fault tests') ----------------------------------------

WINDOW = 10  # seconds: every check's window, so that a recovery shows within seconds
RECOVERED = 60.0  # the most the results may take to be all ok again after a restart
PROBE = "upload_get"
CHECKS = sorted(registry())
HOOK_TOKEN = secrets.token_urlsafe(40)  # start-up refuses weak tokens


@dataclass
class Running:
    stack: sandbox.Stack
    watchtower: Replica
    database: str
    operator: dict[str, str]
    executions: dict[str, str]  # id -> status, of the runs that ended: none may change or go
    interval: int  # seconds: every probe and check

    def latest(self) -> dict[str, dict[str, Any]]:
        results = self.watchtower.json("/api/v1/results", self.operator)["results"]
        return {r["name"]: r for r in results}

    def since(self, name: str, moment: float) -> dict[str, Any] | None:
        """The latest result of `name`, if it was observed after `moment`."""
        result = self.latest().get(name)
        return result if result is not None and observed(result) > moment else None

    def all_ok(self, since: float = 0.0) -> dict[str, dict[str, Any]] | None:
        """The latest results, when every one is ok and was observed after `since`."""
        latest = self.latest()
        if set(latest) != {PROBE, *CHECKS}:
            return None
        fresh = all(observed(r) > since for r in latest.values())
        return latest if fresh and all(r["status"] == "ok" for r in latest.values()) else None

    def wait_all_ok(self, after: str) -> float:
        """Seconds until every result observed from now on is ok; fails naming those not ok."""
        started = time.monotonic()
        since = time.time()
        try:
            wait_for(f"every result ok {after}", lambda: self.all_ok(since), RECOVERED, every=0.5)
        except AssertionError as exc:
            not_ok = {
                n: (r["status"], r["reason"])
                for n, r in self.latest().items()
                if r["status"] != "ok"
            }
            raise AssertionError(f"{exc}: {not_ok}\n{self.watchtower.tail()}") from None
        return time.monotonic() - started

    def alive(self) -> None:
        """Nothing crashed: Watchtower and the image API run and answer."""
        assert self.watchtower.process.poll() is None, self.watchtower.tail()
        assert self.watchtower.get("/healthz").status == 200
        answer = self.watchtower.http.request("GET", f"{self.stack.image_api_url}/healthz")
        assert answer.status == 200, answer.data

    def ended(self, run_id: str) -> str | None:
        """The run's status once it has ended."""
        status = self.runs().get(run_id)
        return status if status in ("succeeded", "failed", "cancelled") else None

    def runs(self) -> dict[str, str]:
        answer = self.watchtower.json("/api/v1/executions?limit=500", self.operator)
        return {e["id"]: e["status"] for e in answer["executions"]}

    def notify(self, fingerprint: str) -> Any:
        """Alertmanager's notification that the upload probe fails (its route runs automatic)."""
        return self.send(am_alert("ImageUploadProbeFailing", fingerprint=fingerprint, probe=PROBE))

    def send(self, alert: dict[str, Any]) -> Any:
        """One alert to the webhook, as Alertmanager posts it."""
        return self.watchtower.post(
            "/api/v1/alerts",
            body=json.dumps(payload(alert)).encode(),
            headers={"Authorization": f"Bearer {HOOK_TOKEN}", "Content-Type": "application/json"},
        )

    def history(self, since: float) -> list[Any]:
        store = HistoryStore(engine_for(self.database))
        try:
            return store.history(since=datetime.fromtimestamp(since, UTC))
        finally:
            store.engine.dispose()

    def nothing_lost(self, since: float, until: float) -> None:
        """Every probe run is in the history, and every slot of [since, until) has its results."""

        def stored_all_runs() -> bool:
            runs = sum(samples(self.watchtower, "watchtower_probe_runs_total", PROBE).values())
            return runs == len([r for r in self.history(0) if r.name == PROBE])

        wait_for("every probe run to be in the history", stored_all_runs, 10)
        first_tries = [r for r in self.history(since) if r.attempt == 1]
        per_slot = Counter(
            (r.name, math.floor(r.observed_at.timestamp() / self.interval)) for r in first_tries
        )
        slots = range(math.floor(since / self.interval) + 1, math.floor(until / self.interval))
        missing = [
            (n, s * self.interval) for n in (PROBE, *CHECKS) for s in slots if not per_slot[(n, s)]
        ]
        assert missing == [], f"slots with no result: {missing}"

    def executions_kept(self) -> None:
        runs = self.runs()
        assert {i: runs.get(i) for i in self.executions} == self.executions

    def legacy_unknown(self, since: float) -> bool:
        """The legacy inserts check said unknown, in a run after `since` (from /metrics)."""
        check = "postgres_inserts"
        status = samples(self.watchtower, "watchtower_check_status", check)
        last = samples(self.watchtower, "watchtower_last_run_timestamp_seconds", check)
        return (
            status.get(f'watchtower_check_status{{check="{check}",status="unknown"}}') == 1
            and max(last.values(), default=0) > since
        )


def observed(result: dict[str, Any]) -> float:
    """When a result (as /api/v1/results gives it) was observed, as a timestamp."""
    return datetime.fromisoformat(result["observed_at"]).timestamp()


def samples(replica: Replica, metric: str, name: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for line in replica.get("/metrics").data.decode().splitlines():
        if line.startswith(metric + "{") and f'"{name}"' in line:
            labels, value = line.rsplit(" ", 1)
            found[labels] = float(value)
    return found


def required(what: str) -> NoReturn:
    if IN_CI:
        pytest.fail(f"CI must provide {what}")
    pytest.skip(f"{what} is not installed")


@contextlib.contextmanager
def sandboxed(log_dir: Path, *, interval: int, settings: Mapping[str, str]) -> Iterator[Running]:
    """The sandbox stack with a real `watchtower serve` over it, its history and runbook runs in
    the stack's PostgreSQL and its job locks in the stack's Redis; every result ok at first.
    `settings` add to (and win over) the sandbox's and the short interval and windows."""
    try:
        stack = sandbox.start(
            log=lambda line: None,
            traffic_rate=2.0,
            telemetry_interval=1.0,
            metrics_flush_seconds=1,
            flag_poll_seconds=1.0,
        )
    except ServerUnavailable as exc:
        required(str(exc))
    watchtower: Replica | None = None
    try:
        if stack.redis is None or stack.postgres is None:
            required("redis-server and PostgreSQL")
        server = f"postgresql://postgres@{LOOPBACK}:{stack.postgres.port}"
        with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE watchtower")
        database = f"{server}/watchtower"
        port = free_port()
        token = demo.new_token()
        environ = demo.settings_environment(
            stack, port=port, token=token, workdir=log_dir, environ={}
        )
        environ.update({name: str(WINDOW) for name in environ if name.endswith("_WINDOW_SECONDS")})
        environ.update(
            {
                "WATCHTOWER_DATABASE_URL": database,
                "WATCHTOWER_PROBE_INTERVAL": str(interval),
                "WATCHTOWER_CHECKS_INTERVAL": str(interval),
                "WATCHTOWER_CHECKS_TICK": "1",
                "WATCHTOWER_WEBHOOK_TOKEN": HOOK_TOKEN,
                **settings,
            }
        )
        watchtower = spawn("watchtower", environ, log_dir, port=port)
        watchtower.wait_healthy()
        operator = {"Authorization": f"Bearer {token}"}
        running = Running(stack, watchtower, database, operator, {}, interval)
        running.wait_all_ok("at start-up")
        yield running
    finally:
        if watchtower is not None:
            watchtower.stop()
        stack.stop()
