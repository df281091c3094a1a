"""Alertmanager webhook intake: alerts per second until the first error, with the P99 latency.

Watchtower's web process as the Dockerfile runs it: gunicorn with watchtower/gunicorn_conf.py
(one gthread worker, 8 threads, access log on), the app from `watchtower.wsgi:create_app()`,
settings from the environment, on a free loopback port. Its history store is a SQLite file,
then (a second gunicorn) a throwaway PostgreSQL cluster; with the webhook dispatching before it
answers, the web process alone (the executions it starts stay pending: nothing runs them).

The deferred intake (WATCHTOWER_WEBHOOK_DEFERRED) is measured three ways, each on a fresh
PostgreSQL, with `watchtower scheduler` beside gunicorn as production runs it (its runbook
worker runs the executions the intake starts, on the same cores): on a thread of the web
process (WEBHOOK_INTAKE=web); in the scheduler's process (=scheduler, woken by NOTIFY); and in
a process of its own (=process: `watchtower intake` beside both).

The load is an open-loop step ramp (benchmarks/ramp.py): POST /api/v1/alerts with valid
Alertmanager version-4 notifications of one alert each (`group_by: ['...']`, as
alerts/alertmanager.example.yml sends them), every alert a new fingerprint, half of them routed
to a runbook (an execution is created) and half to none. The offered rate grows by half at
each step (doubles with --quick) until the first answer that is not 2xx or comes later than
10 s after it was due (10 s is the shortest deadline Alertmanager gives a notification:
`notify.MinTimeout`), bounded in time and in requests. Baseline: the same ramp of
`GET /healthz` on the same server, first. After each ramp the store is counted: every alert
answered 202 must be in it, and one execution for each routed alert. For the deferred intake,
the time from each POST (when it was due) to its execution visible (the commit of the
transaction that created it, PostgreSQL's own commit timestamp) is read back per step (the
alert's fingerprint names its request), against issue 15's goal: served in full with the
execution visible within 50 ms at P99; the part from the notification stored is shown beside.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy
import urllib3

from benchmarks.common import AWS_ENVIRONMENT, CpuMeter, Figure, note
from benchmarks.ramp import MakeRequest, Ramp, rates, run_ramp
from watchtower.sandbox import servers
from watchtower.sandbox.servers import LOOPBACK, ServerUnavailable

NAME = "webhook_intake"
TOKEN = secrets.token_urlsafe(40)  # a throwaway token for a loopback server
TIMEOUT = 10.0  # Alertmanager's notify.MinTimeout
VISIBLE_WITHIN = 0.050  # issue 15's goal: the execution visible within 50 ms (P99)

# Alert kinds in turn: the first three start a runbook (two automatic, one suggested), the
# others are stored and shown and start nothing (no route selects them).
KINDS: tuple[tuple[str, dict[str, str], str], ...] = (
    (
        "ImageUploadProbeFailing",
        {"severity": "critical", "runbook": "image-upload-failures", "probe": "upload_get"},
        "The upload_get probe cannot upload and get an image",
    ),
    (
        "NodeFilesystemAlmostFull",
        {"severity": "critical", "mountpoint": "/var"},
        "A filesystem is almost full",
    ),
    (
        "ImageDynamoDBThrottling",
        {"severity": "warning", "runbook": "dynamodb-throttling"},
        "DynamoDB is throttling the image table",
    ),
    (
        "TargetDown",
        {"severity": "warning", "job": "node"},
        "A scrape target is down",
    ),
    (
        "ImageLambdaColdStarts",
        {"severity": "warning", "runbook": "lambda-cold-starts"},
        "The image API's Lambda function starts cold too often, or too slowly",
    ),
    (
        "NodeHighLoad",
        {"severity": "warning", "instance": "node-1"},
        "A node's load is high",
    ),
)
# Of the KINDS above, three start a runbook each (alternately). Watchtower's own alerts start
# runbooks of their own since issue 15, so the unrouted ones are alerts no route selects.
ROUTED = 3


def notification(i: int, run: str, starts_at: str) -> bytes:
    """The i-th alert as Alertmanager 0.25 posts it: one alert per notification."""
    alertname, labels, summary = KINDS[i % len(KINDS)]
    fingerprint = f"{run}{i:012x}"
    alert_labels = {"alertname": alertname, "instance": f"replica-{i % 3}", **labels}
    alert = {
        "status": "firing",
        "labels": alert_labels,
        "annotations": {
            "summary": summary,
            "description": f"{summary} (benchmark alert {i}).\nSee the runbook for what to check.",
        },
        "startsAt": starts_at,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://127.0.0.1:9090/graph?g0.expr=watchtower_check_status",
        "fingerprint": fingerprint,
    }
    group = "{}/{}:{" + ", ".join(f'{k}="{v}"' for k, v in sorted(alert_labels.items())) + "}"
    return json.dumps(
        {
            "version": "4",
            "groupKey": group,
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": "watchtower",
            "groupLabels": alert_labels,
            "commonLabels": alert_labels,
            "commonAnnotations": alert["annotations"],
            "externalURL": "http://127.0.0.1:9093",
            "alerts": [alert],
        }
    ).encode()


def http_request(method: str, path: str, port: int, body: bytes = b"", **headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {LOOPBACK}:{port}", "User-Agent: bench"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class Gunicorn:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def worker(self) -> int:
        """The one worker's pid (gunicorn_conf: workers = 1)."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        pids = [int(p) for p in children.read_text().split()]
        if len(pids) != 1:
            raise RuntimeError(f"expected one gunicorn worker, found {pids}")
        return pids[0]

    def wait_idle(self) -> None:
        """Until /healthz answers quickly: what a ramp queued is done."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            started = time.perf_counter()
            with contextlib.suppress(urllib3.exceptions.HTTPError):
                answer = urllib3.request(
                    "GET", f"http://{LOOPBACK}:{self.port}/healthz", timeout=5, retries=False
                )
                if answer.status == 200 and time.perf_counter() - started < 0.05:
                    return
            time.sleep(0.2)


def _environ(database_url: str, *, deferred: bool, intake: str) -> dict[str, str]:
    return {
        **os.environ,
        **AWS_ENVIRONMENT,
        # Nothing in the web process calls AWS; if something did, it would fail here, on a
        # closed loopback port, and never reach the internet.
        "AWS_ENDPOINT_URL": f"http://{LOOPBACK}:9",
        "WATCHTOWER_DATABASE_URL": database_url,
        "WATCHTOWER_WEBHOOK_TOKEN": TOKEN,
        "WATCHTOWER_WEBHOOK_DEFERRED": "true" if deferred else "false",
        "WATCHTOWER_WEBHOOK_INTAKE": intake,
    }


@contextlib.contextmanager
def gunicorn(
    database_url: str, log_dir: Path, name: str, *, deferred: bool = False, intake: str = "web"
) -> Iterator[Gunicorn]:
    """Watchtower's web process as the Dockerfile starts it, on a free loopback port."""
    port = servers.free_port()
    env = {
        **_environ(database_url, deferred=deferred, intake=intake),
        "GUNICORN_CMD_ARGS": f"--bind {LOOPBACK}:{port}",
    }
    log = log_dir / f"gunicorn-{name}.log"
    argv = [sys.executable, "-m", "gunicorn", "--config", "python:watchtower.gunicorn_conf"]
    with _running(argv, env, log, port, "gunicorn") as process:
        yield Gunicorn(port=port, process=process, log=log)


@contextlib.contextmanager
def side_process(
    database_url: str, log_dir: Path, name: str, command: str, *, intake: str
) -> Iterator[int]:
    """`watchtower scheduler` (its schedule, the runbook worker and, with
    WEBHOOK_INTAKE=scheduler, the deferred intake) or `watchtower intake` (=process) beside
    the web process, as production runs them; its pid."""
    port = servers.free_port()
    env = _environ(database_url, deferred=True, intake=intake)
    log = log_dir / f"{command}-{name}.log"
    argv = [str(Path(sys.executable).parent / "watchtower"), command, "--host", LOOPBACK]
    with _running([*argv, "--port", str(port)], env, log, port, command) as process:
        yield process.pid


@contextlib.contextmanager
def _running(
    argv: list[str], env: dict[str, str], log: Path, port: int, what: str
) -> Iterator[subprocess.Popen[bytes]]:
    """A process started with its output in `log`, once its /healthz on `port` answers 200
    (30 s at most); stopped with SIGTERM (its graceful stop) afterwards."""
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise ServerUnavailable(f"{what} exited ({process.returncode}); see {log}")
            with contextlib.suppress(urllib3.exceptions.HTTPError):
                url = f"http://{LOOPBACK}:{port}/healthz"
                if urllib3.request("GET", url, timeout=1, retries=False).status == 200:
                    break
            if time.monotonic() > deadline:
                raise ServerUnavailable(f"{what} not ready after 30 s")
            time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run(*, quick: bool) -> list[Figure]:
    # Quick: a coarser ladder, so that it still reaches the first error within its budget.
    step_seconds, budget, cap = (1.5, 22.0, 20_000) if quick else (3.0, 60.0, 60_000)
    start, factor = (50, 2.0) if quick else (25, 1.5)
    ladder = rates(start, factor, 20)
    note(
        f"open-loop ramp: {ladder[0]:.0f}/s, x{factor:g} a step, {step_seconds:g} s a step; "
        f"stops at the first non-2xx or {TIMEOUT:g} s timeout, after {budget:.0f} s or "
        f"{cap:,} requests per ramp"
    )

    def ramp(
        server: Gunicorn, what: str, make: MakeRequest, beside: dict[str, int] | None = None
    ) -> Ramp:
        server.wait_idle()
        meter = CpuMeter(
            {"gunicorn worker": server.worker, "client": os.getpid(), **(beside or {})}
        )
        with meter:
            found = run_ramp(
                LOOPBACK,
                server.port,
                make,
                ladder=ladder,
                step_seconds=step_seconds,
                timeout=TIMEOUT,
                budget_seconds=budget,
                max_requests=cap,
            )
        note(f"{what}: stopped at {found.stopped}")
        for step in found.steps:
            note(f"  {step.describe()}")
        note(f"  {meter.describe()}")
        return found

    starts_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
    results: dict[str, Ramp] = {}
    stored: dict[str, tuple[int, int]] = {}
    visible: dict[str, Visible] = {}
    with tempfile.TemporaryDirectory(prefix="bench-webhook-") as tmp:
        logs = Path(tmp)
        sqlite_url = f"sqlite:///{logs / 'watchtower.sqlite'}"
        with gunicorn(sqlite_url, logs, "sqlite") as server:
            healthz = http_request("GET", "/healthz", server.port)
            results["healthz"] = ramp(server, "GET /healthz (SQLite server)", lambda i: healthz)
            results["sqlite"] = ramp(
                server,
                "POST /api/v1/alerts, SQLite",
                _webhook(server.port, "a", starts_at),
            )
            server.wait_idle()
        stored["sqlite"] = _stored(sqlite_url)
        postgres: servers.PostgresServer | None = None
        try:
            postgres = servers.start_postgres(database="watchtower")
        except ServerUnavailable as exc:
            note(f"PostgreSQL skipped: {exc}")
        if postgres is not None:
            try:
                with gunicorn(postgres.url, logs, "postgres") as server:
                    results["postgres"] = ramp(
                        server,
                        "POST /api/v1/alerts, PostgreSQL",
                        _webhook(server.port, "b", starts_at),
                    )
                    server.wait_idle()
                stored["postgres"] = _stored(postgres.url)
            finally:
                postgres.stop()
        # Deferred intake (WATCHTOWER_WEBHOOK_DEFERRED): one write, then 202; executions start
        # from the stored notification on the intake: on a thread of the web process
        # (WEBHOOK_INTAKE=web), in the scheduler's process (=scheduler, woken by NOTIFY), and
        # in a process of its own (=process). A fresh cluster each, so counts are its own.
        for store, run_name in (("deferred-web", "c"), ("deferred", "d"), ("deferred-own", "e")):
            cluster: servers.PostgresServer | None = None
            with contextlib.suppress(ServerUnavailable):
                cluster = servers.start_postgres(
                    database="watchtower", settings=["track_commit_timestamp=on"]
                )
            if cluster is None:
                continue
            place = {"deferred-web": "web", "deferred": "scheduler", "deferred-own": "process"}
            intake = place[store]
            try:
                with contextlib.ExitStack() as stack:
                    server = stack.enter_context(
                        gunicorn(cluster.url, logs, store, deferred=True, intake=intake)
                    )
                    # The scheduler runs beside each, as in production: its runbook worker
                    # runs the executions the intake starts, on the same two cores.
                    beside = {
                        "scheduler": stack.enter_context(
                            side_process(cluster.url, logs, store, "scheduler", intake=intake)
                        )
                    }
                    if intake == "process":
                        beside["intake"] = stack.enter_context(
                            side_process(cluster.url, logs, store, "intake", intake=intake)
                        )
                    results[store] = ramp(
                        server,
                        f"POST /api/v1/alerts, PostgreSQL, {LABELS[store]}",
                        _webhook(server.port, run_name, starts_at),
                        beside,
                    )
                    server.wait_idle()
                    _wait_dispatched(cluster.url)
                stored[store] = _stored(cluster.url)
                visible[store] = _visible_after(cluster.url, results[store])
            finally:
                cluster.stop()
    for store, (alerts, executions) in stored.items():
        accepted = sum(s.ok for s in results[store].steps)
        note(
            f"{store}: {accepted} alerts answered 202; {alerts} stored, {executions} runbook "
            f"executions created (expected {ROUTED}/{len(KINDS)} of the stored alerts)"
        )
    for store, seen in visible.items():
        note(
            f"{store}: POST -> execution visible, P50 {seen.post[0] * 1000:.1f} ms, "
            f"P99 {seen.post[1] * 1000:.1f} ms; stored -> visible P50 "
            f"{seen.stored[0] * 1000:.1f} ms, P99 {seen.stored[1] * 1000:.1f} ms"
        )
    return _figures(results, visible)


LABELS = {
    "sqlite": "SQLite",
    "postgres": "PostgreSQL",
    "deferred-web": "deferred, intake in the web process",
    "deferred": "deferred, intake in the scheduler process",
    "deferred-own": "deferred, intake in its own process",
}


def _engine(url: str) -> sqlalchemy.Engine:
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return sqlalchemy.create_engine(url)


def _wait_dispatched(url: str, timeout: float = 120.0) -> None:
    """Until the intake has dispatched every stored notification."""
    engine = _engine(url)
    query = sqlalchemy.text("SELECT count(*) FROM alert_notifications WHERE processed_at IS NULL")
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                if conn.execute(query).scalar_one() == 0:
                    return
            time.sleep(0.2)
        note(f"the intake had not dispatched everything after {timeout:.0f} s")
    finally:
        engine.dispose()


def _visibility(url: str) -> dict[int, tuple[float, float]]:
    """By the request's index in the ramp (its alert's fingerprint says which): when its
    notification was stored (the alert's received_at, set from it) and when the transaction that
    created its execution committed, both as seconds since the epoch. The commit time is
    PostgreSQL's own (track_commit_timestamp) for the run's first audit entry, written in the
    transaction that creates the run and never changed: the moment another reader can see the run
    (the execution row's own xmin moves with every later update)."""
    engine = _engine(url)
    query = sqlalchemy.text(
        "SELECT a.fingerprint, EXTRACT(EPOCH FROM a.received_at), "
        "EXTRACT(EPOCH FROM MIN(pg_xact_commit_timestamp(l.xmin))) "
        "FROM runbook_executions e JOIN alerts a ON a.fingerprint = e.alert_fingerprint "
        "JOIN runbook_audit l ON l.execution_id = e.id GROUP BY a.fingerprint, a.received_at"
    )
    try:
        with engine.connect() as conn:
            return {int(r[0][1:], 16): (float(r[1]), float(r[2])) for r in conn.execute(query)}
    finally:
        engine.dispose()


def _p50_p99(values: list[float]) -> tuple[float, float]:
    lags = sorted(values)
    if not lags:
        return float("nan"), float("nan")
    return lags[len(lags) // 2], lags[min(len(lags) - 1, int(len(lags) * 0.99))]


@dataclass
class Visible:
    """POST -> execution visible (its creating transaction committed), issue 15's measure."""

    post: tuple[float, float]  # (P50, P99) seconds from the POST due to the commit, whole ramp
    stored: tuple[float, float]  # the same from the notification stored: the intake's part
    within: float  # the highest step rate served in full and visible within 50 ms at P99; or 0
    at_best: float  # P99 (POST -> visible) of the step served in full at the highest rate


def _visible_after(url: str, ramp: Ramp) -> Visible:
    """Each step's POST -> visible and stored -> visible, noted; and the ramp's figures."""
    seen = _visibility(url)
    first, within, at_best = 0, 0.0, float("nan")
    posts, stores = [], []
    for step in ramp.steps:
        mine = [
            (step.due(i - first), *seen[i]) for i in range(first, first + step.sent) if i in seen
        ]
        first += step.sent
        if not mine:
            continue
        post = [committed - due for due, _, committed in mine]
        stored = [committed - kept for _, kept, committed in mine]
        posts += post
        stores += stored
        p50, p99 = _p50_p99(post)
        note(
            f"  {step.rate:6.0f}/s: POST -> execution visible P50 {p50 * 1000:8.1f} ms, "
            f"P99 {p99 * 1000:8.1f} ms; stored -> visible P99 {_p50_p99(stored)[1] * 1000:8.1f} "
            f"ms ({len(mine)} executions)"
        )
        if step.kept_up:
            at_best = p99
            if p99 <= VISIBLE_WITHIN:
                within = step.rate
    return Visible(_p50_p99(posts), _p50_p99(stores), within, at_best)


def _webhook(port: int, run: str, starts_at: str) -> MakeRequest:
    def make(i: int) -> bytes:
        return http_request(
            "POST",
            "/api/v1/alerts",
            port,
            notification(i, run, starts_at),
            Authorization=f"Bearer {TOKEN}",
            **{"Content-Type": "application/json"},
        )

    return make


def _stored(url: str) -> tuple[int, int]:
    """Alerts and runbook executions in the store, counted after the ramp."""
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            alerts = conn.execute(sqlalchemy.text("SELECT count(*) FROM alerts")).scalar_one()
            runs = conn.execute(
                sqlalchemy.text("SELECT count(*) FROM runbook_executions")
            ).scalar_one()
    finally:
        engine.dispose()
    return int(alerts), int(runs)


def _figures(
    results: dict[str, Ramp],
    visible: dict[str, Visible],
) -> list[Figure]:
    base = results["healthz"]
    figures: list[Figure] = []
    for store, label in LABELS.items():
        ramp = results.get(store)
        if ramp is None:
            continue
        seen = visible.get(store)
        if seen is not None:
            figures.append(
                Figure(
                    benchmark=NAME,
                    # The intake's part: past the web's capacity, POST -> visible is its queue.
                    name=f"P99 stored -> execution visible over the ramp, {label}",
                    value=seen.stored[1] * 1000,
                    baseline_name="P50 of the same",
                    baseline=seen.stored[0] * 1000,
                )
            )
            figures.append(
                Figure(
                    benchmark=NAME,
                    name=f"alerts/s served in full and visible within 50 ms (P99), {label}",
                    value=seen.within,
                    baseline_name="GET /healthz/s served in full",
                    baseline=base.best.rate if base.best else 0.0,
                    unit="/s",
                )
            )
            if ramp.best is not None:
                figures.append(
                    Figure(
                        benchmark=NAME,
                        name=f"P99 POST -> visible at {ramp.best.rate:.0f} alerts/s, {label}",
                        value=seen.at_best * 1000,
                        baseline_name=f"POST P99 at {ramp.best.rate:.0f}/s",
                        baseline=ramp.best.p(99),
                    )
                )
        best, base_best = ramp.best, base.best
        figures.append(
            Figure(
                benchmark=NAME,
                name=f"alerts/s served in full, {label}",
                value=best.rate if best else 0.0,
                baseline_name="GET /healthz/s served in full",
                baseline=base_best.rate if base_best else 0.0,
                unit="/s",
            )
        )
        if best is not None:
            same = base.at_rate(best.rate)
            figures.append(
                Figure(
                    benchmark=NAME,
                    name=f"P99 at {best.rate:.0f} alerts/s, {label}",
                    value=best.p(99),
                    baseline_name=f"GET /healthz P99 at {best.rate:.0f}/s",
                    baseline=same.p(99) if same else float("nan"),
                )
            )
        peak, base_peak = ramp.peak, base.peak
        figures.append(
            Figure(
                benchmark=NAME,
                name=f"peak alerts/s answered, {label}",
                value=peak.throughput if peak else 0.0,
                baseline_name="GET /healthz peak/s",
                baseline=base_peak.throughput if base_peak else 0.0,
                unit="/s",
            )
        )
        error, base_error = ramp.first_error, base.first_error
        figures.append(
            Figure(
                benchmark=NAME,
                name=f"offered alerts/s at the first error, {label}",
                value=error.rate if error else float("nan"),
                baseline_name="GET /healthz/s at its first error",
                baseline=base_error.rate if base_error else float("nan"),
                unit="/s",
            )
        )
    return figures


def intake_cpu(count: int = 1000, rounds: int = 2) -> list[tuple[float, float]]:
    """The intake alone, insensitive to the machine's load: `count` of the ramp's notifications
    kept, then `Intake.drain()` on a throwaway PostgreSQL in this process; (CPU ms, wall ms) per
    alert for each round (`time.process_time`: this process's CPU only, not PostgreSQL's)."""
    from watchtower.config import Settings
    from watchtower.runbook.alert_records import Arrived
    from watchtower.runtime import build

    cluster = servers.start_postgres(database="watchtower")
    figures = []
    try:
        wt = build(Settings(database_url=cluster.url, webhook_deferred=True))
        assert wt.intake is not None
        starts_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
        try:
            for n in range(rounds):
                received = wt.now()
                bodies = [notification(i, "abcdef"[n % 6], starts_at) for i in range(count)]
                kept = [
                    Arrived(
                        body=b.decode(),
                        received_at=received,
                        receiver="w",
                        status="firing",
                        alerts=1,
                    )
                    for b in bodies
                ]
                for first in range(0, count, 50):
                    wt.runbooks.store.keep_notifications(kept[first : first + 50], dispatched=False)
                cpu, wall = time.process_time(), time.perf_counter()
                done = wt.intake.drain(max_passes=100_000)
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                figures.append((cpu * 1000 / done, wall * 1000 / done))
        finally:
            wt.close()
    finally:
        cluster.stop()
    return figures


if __name__ == "__main__":  # .venv/bin/python -m benchmarks.webhook_intake [COUNT]
    for cpu_ms, wall_ms in intake_cpu(int(sys.argv[1]) if len(sys.argv) > 1 else 1000):
        print(f"intake alone: {cpu_ms:.3f} ms CPU, {wall_ms:.3f} ms wall per alert")
