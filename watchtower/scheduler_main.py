"""`watchtower scheduler`: the schedule alone, in its own process, beside web processes that only
serve (`gunicorn -c python:watchtower.gunicorn_conf`, or `watchtower serve --no-scheduler`).

It runs the probes, the check cycle, retention, the runbook worker and the cutover sampler, and
serves three endpoints on its own port: `/metrics` (the probe and check results this process
produced: Prometheus scrapes it like a web replica), `/readyz`, and `/healthz`, which answers 503
once the scheduler has stopped, so a container health check restarts a process whose schedule
died. Several scheduler processes may run against one Redis (WATCHTOWER_REDIS_URL): each job still
runs once per interval.

`watchtower intake`: the deferred webhook's intake alone (WATCHTOWER_WEBHOOK_INTAKE=process), in
a process of its own, so that neither the request threads nor the runbook worker share its GIL;
`/healthz` answers 503 once the intake has stopped. Several may run: they share the work.
"""

from __future__ import annotations

import signal
import threading
from contextlib import suppress
from typing import TYPE_CHECKING, Any, Protocol

import click
from flask import Flask, current_app, jsonify

if TYPE_CHECKING:
    from watchtower.runtime import Watchtower
    from watchtower.scheduler import Scheduler


class Process(Protocol):
    """What this command receives from the command line's root (watchtower.cli.Process)."""

    def build(self) -> Watchtower: ...


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--port", default=8080, show_default=True, type=int, help="/healthz, /readyz, /metrics"
)
@click.pass_obj
def scheduler(process: Process, host: str, port: int) -> None:
    """Run only the scheduler (probes, checks, runbook worker, cutover sampler)."""
    from werkzeug.serving import make_server

    from watchtower.web.sealing import schedule_sealing

    wt = process.build()
    schedule = wt.scheduler()
    schedule_sealing(schedule, wt)  # the status page's closed periods, ahead of the page
    server = make_server(host, port, create_app(wt, schedule), threaded=True)
    schedule.start()
    click.echo(
        f"watchtower scheduler; health and metrics on http://{host}:{server.server_port}", err=True
    )
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    with suppress(KeyboardInterrupt):
        server.serve_forever()
    schedule.shutdown()
    server.server_close()
    wt.close()


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8081, show_default=True, type=int, help="/healthz, /metrics")
@click.pass_obj
def intake(process: Process, host: str, port: int) -> None:
    """Run only the deferred webhook's intake (WATCHTOWER_WEBHOOK_INTAKE=process)."""
    from werkzeug.serving import make_server

    wt = process.build()
    assert wt.intake is not None  # the composition root always builds one
    if not wt.settings.webhook_deferred or wt.settings.webhook_intake != "process":
        click.echo(
            "warning: WATCHTOWER_WEBHOOK_DEFERRED=true and WATCHTOWER_WEBHOOK_INTAKE=process "
            "are not both set: another process may dispatch too (safe, runs are keyed by "
            "episode)",
            err=True,
        )
    server = make_server(host, port, create_intake_app(wt), threaded=True)
    wt.intake.start()
    click.echo(f"watchtower intake; health on http://{host}:{server.server_port}", err=True)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    with suppress(KeyboardInterrupt):
        server.serve_forever()
    server.server_close()
    wt.close()


def create_intake_app(watchtower: Watchtower) -> Flask:
    """The intake process's own small app: health and metrics."""
    from watchtower.web import metrics

    app = Flask(__name__)
    app.extensions["watchtower"] = watchtower
    app.extensions["watchtower.intake"] = watchtower.intake
    app.add_url_rule("/metrics", view_func=metrics)
    app.add_url_rule("/healthz", view_func=intake_healthz)
    return app


def intake_healthz() -> Any:
    """Liveness: the intake's thread still runs."""
    if not current_app.extensions["watchtower.intake"].running:
        return jsonify({"status": "intake stopped"}), 503
    return jsonify({"status": "ok"})


def create_app(watchtower: Watchtower, schedule: Scheduler) -> Flask:
    """The scheduler process's own small app: health, readiness and metrics."""
    from watchtower.web import metrics, readyz

    app = Flask(__name__)
    app.extensions["watchtower"] = watchtower
    app.extensions["watchtower.scheduler"] = schedule
    app.add_url_rule("/metrics", view_func=metrics)
    app.add_url_rule("/readyz", view_func=readyz)
    app.add_url_rule("/healthz", view_func=healthz)
    return app


def healthz() -> Any:
    """Liveness: this process serves, and its scheduler still runs."""
    schedule: Scheduler = current_app.extensions["watchtower.scheduler"]
    if not schedule.running:
        return jsonify({"status": "scheduler stopped"}), 503
    return jsonify({"status": "ok"})
