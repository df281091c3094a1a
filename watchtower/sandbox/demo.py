"""`watchtower demo`: the sandbox, with Watchtower serving it on http://127.0.0.1:8080.

Watchtower runs in this process (web app and scheduler, as `watchtower serve` runs them), from
settings built like any other: an environment made of the sandbox's endpoints, its function and
distribution, an operator created for this run, and demo-friendly intervals and check windows
(short enough that every scenario shows within a minute). WATCHTOWER_* variables of the shell
override the intervals and thresholds, never the endpoints: the demo only ever talks to its own
loopback servers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from werkzeug.serving import BaseWSGIServer, make_server

from watchtower.checks import registry
from watchtower.config import Settings
from watchtower.cutover.config import CutoverSettings
from watchtower.errors import ScenarioUnavailable
from watchtower.runtime import Watchtower, build
from watchtower.sandbox.monitoring import Monitoring
from watchtower.sandbox.rehearsal import Rehearsal
from watchtower.sandbox.resources import SANDBOX_CREDENTIALS
from watchtower.sandbox.servers import LOOPBACK, ServerUnavailable
from watchtower.sandbox.stack import Stack
from watchtower.scheduler import Scheduler
from watchtower.web import create_app
from watchtower.web.rehearsal import EXTENSION as REHEARSAL_EXTENSION
from watchtower.web.sandbox import EXTENSION

log = logging.getLogger(__name__)

OPERATOR = "demo-operator"
DEFAULT_PORT = 8080
WINDOW_SECONDS = 60  # every check's; checks word their reasons in whole minutes
# The demo's pace; the shell's own WATCHTOWER_* variables win over these.
DEFAULTS = {
    "WATCHTOWER_PROBE_INTERVAL": "10",
    "WATCHTOWER_CHECKS_INTERVAL": "15",
    "WATCHTOWER_CHECKS_TICK": "5",
    "WATCHTOWER_SCHEDULER_JITTER": "1",
    # moto answers a 24-hour baseline slowly once hours of datapoints pile up; 30 min is plenty.
    "WATCHTOWER_CHECK_DYNAMODB_WRITES_BASELINE_SECONDS": "1800",
    # The image API follows the flag within a second or two (flag_follower), not minutes.
    "WATCHTOWER_CHECK_POSTGRES_INSERTS_FLIP_GRACE_SECONDS": "10",
}
# Where Watchtower looks: always the sandbox, whatever the shell says.
_OWNED = (
    "AWS_ENDPOINT_URL",
    "WATCHTOWER_AWS_REGION",
    "WATCHTOWER_IMAGE_API_URL",
    "WATCHTOWER_DATABASE_URL",
    "WATCHTOWER_REDIS_URL",
    "WATCHTOWER_IMAGE_REDIS_URL",
    "WATCHTOWER_LEGACY_DATABASE_URL",
    "WATCHTOWER_LEGACY_TABLE",
    "WATCHTOWER_PROMETHEUS_URL",
    "WATCHTOWER_TABLE",
    "WATCHTOWER_BUCKET",
    "WATCHTOWER_LAMBDA_FUNCTION",
    "WATCHTOWER_LAMBDA_ALIAS",
    "WATCHTOWER_LAMBDA_LOG_GROUP",
    "WATCHTOWER_CLOUDFRONT_DISTRIBUTION_ID",
    "WATCHTOWER_METRICS_NAMESPACE",
    "WATCHTOWER_SANDBOX",
    "WATCHTOWER_PUBLIC_URL",
    "WATCHTOWER_USERS",
    "WATCHTOWER_PROBE_TOKEN",
    "WATCHTOWER_PROBE_TOKEN_FILE",
    "WATCHTOWER_PROBE_TOKEN_COMMAND",
    "WATCHTOWER_WEBHOOK_TOKEN",
)


def settings_environment(
    stack: Stack,
    *,
    port: int,
    token: str,
    workdir: Path,
    environ: Mapping[str, str],
    webhook_token: str | None = None,
    prometheus_url: str | None = None,
) -> dict[str, str]:
    """The environment Watchtower's settings are read from, for this sandbox."""
    windows = {
        f"WATCHTOWER_CHECK_{name.upper()}_WINDOW_SECONDS": str(WINDOW_SECONDS)
        for name, check in registry().items()
        if "window_seconds" in check.defaults
    }
    tunable = {k: v for k, v in environ.items() if k.startswith("WATCHTOWER_") and k not in _OWNED}
    users = f"{OPERATOR}:operator:{token}"
    if environ.get("WATCHTOWER_USERS", "").strip():
        users = f"{environ['WATCHTOWER_USERS'].strip()},{users}"
    owned = {
        "AWS_ENDPOINT_URL": stack.moto.url,
        "WATCHTOWER_AWS_REGION": stack.region,
        "WATCHTOWER_IMAGE_API_URL": stack.image_api_url,
        "WATCHTOWER_DATABASE_URL": f"sqlite:///{workdir / 'watchtower.sqlite'}",
        "WATCHTOWER_TABLE": stack.table,
        "WATCHTOWER_BUCKET": stack.bucket,
        "WATCHTOWER_LAMBDA_FUNCTION": stack.resources.function,
        "WATCHTOWER_LAMBDA_LOG_GROUP": stack.resources.log_group,
        "WATCHTOWER_CLOUDFRONT_DISTRIBUTION_ID": stack.resources.distribution_id,
        "WATCHTOWER_SANDBOX": "true",
        "WATCHTOWER_PUBLIC_URL": f"http://{LOOPBACK}:{port}",
        "WATCHTOWER_USERS": users,
        # The probe signs in as any user does: a token of the sandbox's issuer, refreshed.
        "WATCHTOWER_PROBE_TOKEN_COMMAND": stack.issuer.command("watchtower-probe"),
    }
    if stack.redis is not None:
        owned["WATCHTOWER_REDIS_URL"] = stack.redis.url
        owned["WATCHTOWER_IMAGE_REDIS_URL"] = stack.redis.url  # runbooks invalidate galleries
    if stack.resources.alias:
        owned["WATCHTOWER_LAMBDA_ALIAS"] = stack.resources.alias
    if stack.postgres is not None:
        owned["WATCHTOWER_LEGACY_DATABASE_URL"] = stack.postgres.url
        owned["WATCHTOWER_LEGACY_TABLE"] = stack.legacy_table
    if webhook_token is not None:
        owned["WATCHTOWER_WEBHOOK_TOKEN"] = webhook_token
    if prometheus_url is not None:
        owned["WATCHTOWER_PROMETHEUS_URL"] = prometheus_url
    return {**DEFAULTS, **windows, **tunable, **owned}


def use_sandbox_credentials() -> None:
    """This process's AWS clients talk to the moto server only: dummy credentials, no profile."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL"):
        os.environ.pop(name, None)
    os.environ.update(SANDBOX_CREDENTIALS)


class SandboxControl:
    """What Watchtower's sandbox endpoints reach (watchtower.web.sandbox.SandboxControl)."""

    def __init__(self, stack: Stack) -> None:
        self._stack = stack

    def describe(self) -> dict[str, Any]:
        return self._stack.describe()

    def switch_scenario(self, name: str) -> dict[str, Any]:
        try:
            self._stack.scenarios.switch(name)
        except ServerUnavailable as exc:
            raise ScenarioUnavailable(f"the image API could not be restarted: {exc}") from exc
        except (ClientError, BotoCoreError) as exc:
            raise ScenarioUnavailable(f"the function could not be changed in moto: {exc}") from exc
        return self._stack.describe()


@dataclass
class RunningWatchtower:
    watchtower: Watchtower
    scheduler: Scheduler
    server: BaseWSGIServer
    thread: threading.Thread
    url: str
    monitoring: Monitoring | None = None
    notes: list[str] = field(default_factory=list)

    def stop(self) -> None:
        if self.monitoring is not None:
            self.monitoring.stop()
        self.server.shutdown()
        self.thread.join(timeout=10)
        self.scheduler.shutdown()
        self.server.server_close()
        self.watchtower.close()


def serve(
    stack: Stack, settings: Settings, *, port: int, cutover: CutoverSettings | None = None
) -> RunningWatchtower:
    """Watchtower's web app and scheduler in this process, as `watchtower serve` runs them."""
    wt = build(settings, cutover=cutover)
    scheduler = wt.scheduler()
    app = create_app(wt, scheduler=scheduler)
    app.extensions[EXTENSION] = SandboxControl(stack)
    app.extensions[REHEARSAL_EXTENSION] = Rehearsal(wt, stack)
    try:
        server = make_server(LOOPBACK, port, app, threaded=True)
    except BaseException:
        wt.close()
        raise
    thread = threading.Thread(target=server.serve_forever, name="watchtower-web", daemon=True)
    thread.start()
    scheduler.start()
    return RunningWatchtower(
        watchtower=wt,
        scheduler=scheduler,
        server=server,
        thread=thread,
        url=f"http://{LOOPBACK}:{server.server_port}",
    )


def new_token() -> str:
    return secrets.token_urlsafe(40)  # start-up refuses tokens under 32 bytes of entropy


def state_path(port: int) -> Path:
    """Where a running demo leaves its URL and operator token for `watchtower demo scenario`."""
    return Path(tempfile.gettempdir()) / f"watchtower-demo-{port}.json"


def write_state(port: int, state: Mapping[str, Any]) -> Path:
    path = state_path(port)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # the token is a secret
    with os.fdopen(fd, "w") as out:
        json.dump(dict(state), out)
    return path


def read_state(port: int) -> dict[str, Any] | None:
    try:
        state: dict[str, Any] = json.loads(state_path(port).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return state


def banner(stack: Stack, running: RunningWatchtower, token: str) -> str:
    api = stack.image_api_url
    lines = [
        "",
        "Watchtower demo: everything runs on loopback; no AWS account is used.",
        "",
        f"  status page      {running.url}/",
        f"  results (JSON)   {running.url}/api/v1/results",
        f"  metrics          {running.url}/metrics",
        f"  sandbox (JSON)   {running.url}/api/v1/sandbox",
        f"  image API        {api}   signed in by the sandbox's issuer, e.g. as 'me':",
        f'                   curl -H "Authorization: Bearer $({stack.issuer.command("me")})" \\',
        f"                     {api}/images",
        f"  AWS (moto)       {stack.moto.url}",
        *_monitoring_lines(running),
        f"  operator         {OPERATOR}, token {token}",
        "                   (Authorization: Bearer <token>, or log in at /login with it)",
        "",
        "Real: the image API and its traffic (a few simulated users, about 1 request a second),",
        "the probes, S3/DynamoDB/Lambda configuration in moto"
        + (", Redis" if stack.redis else "")
        + (", PostgreSQL" if stack.postgres else "")
        + ".",
        "SIMULATED (moto cannot produce it; the UI says so):",
        *(f"  - {item}" for item in stack.describe()["simulated"]),
    ]
    for note in [*stack.notes, *running.notes]:
        lines.append(f"Note: {note}")
    lines += [
        "",
        f"Scenario: {stack.scenarios.current.name}. Switch at run time with",
        "  watchtower demo scenario throttling | cold-starts | cache-misses | legacy-writes "
        "| upload-errors | healthy",
        f"  or: curl -X POST -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json'"
        f' -d \'{{"scenario": "cold-starts"}}\' {running.url}/api/v1/sandbox/scenario',
        "",
        "Cutover: REHEARSAL only here (every page, report and hash says so). Walk Story 6.1 with",
        "  watchtower demo rehearse [--inject legacy-writes]",
        f"  or the button on {running.url}/cutover",
        "",
        "Ctrl-C stops everything.",
    ]
    return "\n".join(lines)


def doctor_once(
    running: RunningWatchtower,
    echo: Callable[[str], None],
    *,
    settle_seconds: float = 60.0,
    every: float = 5.0,
) -> threading.Thread:
    """`watchtower doctor` against the sandbox, once its telemetry has had time to appear: what
    is missing is looked at again every few seconds until nothing is, or `settle_seconds` pass;
    then the gaps (if any) and the summary are printed."""
    from watchtower.doctor import failed, summary
    from watchtower.doctor.run import diagnose

    def run() -> None:
        deadline = time.monotonic() + settle_seconds
        while True:
            try:
                findings, _ = diagnose(running.watchtower)
            except Exception:  # a stopped demo: nothing to report
                log.debug("the demo's doctor run failed", exc_info=True)
                return
            if not failed(findings) or time.monotonic() >= deadline:
                break
            time.sleep(every)
        lines = [f.line() for f in findings if f.state == "missing"]
        echo("\n".join([*lines, summary(findings), "(`watchtower doctor` prints every line)"]))

    thread = threading.Thread(target=run, name="demo-doctor", daemon=True)
    thread.start()
    return thread


def _monitoring_lines(running: RunningWatchtower) -> list[str]:
    m = running.monitoring
    if m is None:
        return []
    return [
        f"  Prometheus       {m.prometheus.url}/alerts   (scrapes Watchtower every "
        "5s, evaluates alerts/watchtower.rules.yml)",
        f"  Alertmanager     {m.alertmanager.url}/   (alerts/alertmanager.example.yml, "
        f"webhook {running.url}/api/v1/alerts with the demo's webhook token)",
        "                   demo waits, derived from those files at start (not a second copy):",
        *(f"                     {change}" for change in m.changes),
    ]
