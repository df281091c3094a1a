"""The `watchtower` command line.

Exit codes: 0 all results ok or warning; 1 a result is critical or unknown; 2 bad usage or an
invalid setting (one line naming it).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, NoReturn

import click

from watchtower.cutover import cli as cutover_cli
from watchtower.errors import ConfigError
from watchtower.model import Result, Status
from watchtower.runbook import commands as runbook_commands
from watchtower.sandbox import commands as sandbox_commands
from watchtower.sandbox import runbook_tests
from watchtower.scheduler_main import intake as intake_command
from watchtower.scheduler_main import scheduler as scheduler_command

if TYPE_CHECKING:
    from watchtower.cutover.service import CutoverService
    from watchtower.runbook.engine import Engine
    from watchtower.runtime import Watchtower


class Process:
    """What every command receives (click's context object): the environ this process was
    started with, and the composition root over it. A command never builds its collaborators:
    it asks for them here, and an invalid setting ends it with exit code 2, naming the variable.
    """

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ

    def build(self) -> Watchtower:
        from watchtower.runtime import from_environ

        try:
            return from_environ(self.environ)
        except ConfigError as exc:
            _invalid(exc)

    @contextmanager
    def watchtower(self) -> Iterator[Watchtower]:
        wt = self.build()
        try:
            yield wt
        finally:
            wt.close()

    @contextmanager
    def runbooks(self) -> Iterator[Engine]:
        with self.watchtower() as wt:
            yield wt.runbooks

    @contextmanager
    def cutover(self) -> Iterator[CutoverService]:
        with self.watchtower() as wt:
            yield wt.cutover


def _invalid(exc: ConfigError) -> NoReturn:
    click.echo(f"error: {exc}", err=True)
    sys.exit(2)


@click.group()
@click.pass_context
def main(ctx: click.Context) -> None:
    """Watchtower: probes, checks and runbooks for the image service."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    ctx.obj = Process(os.environ)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--no-scheduler", is_flag=True, help="Serve only; another process schedules.")
@click.pass_obj
def serve(process: Process, host: str, port: int, no_scheduler: bool) -> None:
    """Serve the web app (/metrics, /healthz, /readyz) and run the scheduler."""
    from werkzeug.serving import make_server

    from watchtower.web import create_app

    wt = process.build()
    scheduler = None if no_scheduler else wt.scheduler()
    server = make_server(host, port, create_app(wt, scheduler=scheduler), threaded=True)
    if scheduler is not None:
        scheduler.start()
    click.echo(f"watchtower on http://{host}:{server.server_port}", err=True)
    _serve_until_stopped(server.serve_forever, server.shutdown)
    if scheduler is not None:
        scheduler.shutdown()
    server.server_close()
    wt.close()


def _serve_until_stopped(serve_forever: Callable[[], None], shutdown: Callable[[], None]) -> None:
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=shutdown).start())
    with suppress(KeyboardInterrupt):
        serve_forever()


@main.group()
def probe() -> None:
    """Run probes once."""


@probe.command("run")
@click.argument("names", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_obj
def probe_run(process: Process, names: tuple[str, ...], as_json: bool) -> None:
    """Run probes (all when none are named) once; exit 1 on critical or unknown."""
    with process.watchtower() as wt:
        chosen = _choose(names, dict(wt.probes), "probe")
        results = [r for name in chosen for r in wt.run_probe(name)]
    _report(results, as_json)


@main.group()
def check() -> None:
    """Run checks once."""


@check.command("run")
@click.argument("names", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_obj
def check_run(process: Process, names: tuple[str, ...], as_json: bool) -> None:
    """Run checks (all when none are named) once; exit 1 on critical or unknown."""
    from watchtower.runtime import api_calls

    with process.watchtower() as wt:
        chosen = _choose(names, dict(wt.checks), "check")
        results = wt.run_checks(chosen)
        calls = {api: n for api, n in api_calls(wt.sources).items() if n}
    _report(results, as_json, footer=f"AWS API calls this cycle: {calls or 'none'}")


def _choose(names: tuple[str, ...], known: dict[str, object], kind: str) -> list[str]:
    unknown = [n for n in names if n not in known]
    if unknown:
        click.echo(
            f"error: no {kind} named {', '.join(unknown)} (known: {', '.join(sorted(known))})",
            err=True,
        )
        sys.exit(2)
    return list(names) or list(known)


def _report(results: list[Result], as_json: bool, footer: str = "") -> None:
    if as_json:
        from watchtower.web import result_json

        click.echo(json.dumps([result_json(r) for r in results], indent=2))
    else:
        width = max((len(r.name) for r in results), default=4) + 2
        click.echo(f"{'NAME':<{width}}{'STATUS':<10}REASON")
        for r in results:
            retry = " (retry)" if r.attempt > 1 else ""
            click.echo(f"{r.name + retry:<{width}}{r.status.value.upper():<10}{r.reason}")
            figures = ", ".join(f"{k}={_fmt(v)}" for k, v in r.figures.items())
            if figures:
                click.echo(f"{'':<{width}}{'':<10}{figures}")
        if footer:
            click.echo(footer)
    effective = _effective(results)
    if effective in (Status.CRITICAL, Status.UNKNOWN):
        sys.exit(1)


def _effective(results: list[Result]) -> Status:
    """The worst status among each name's last result (a passed retry supersedes the failure)."""
    last: dict[str, Result] = {}
    for r in results:
        last[r.name] = r
    return Status.worst([r.status for r in last.values()])


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of lines.")
@click.pass_obj
def doctor(process: Process, as_json: bool) -> None:
    """What will work against the configured account: exit 1 when a configured feature's need
    is missing (docs/troubleshooting.md)."""
    from watchtower.doctor.run import diagnose

    with process.watchtower() as wt:
        findings, text = diagnose(wt, as_json=as_json)
    click.echo(text)
    sys.exit(1 if any(f.state == "missing" for f in findings) else 0)


main.add_command(sandbox_commands.sandbox)
main.add_command(sandbox_commands.demo)
runbook_commands.runbooks.add_command(runbook_tests.test_command)
main.add_command(runbook_commands.runbooks)
main.add_command(runbook_commands.runbook)
main.add_command(runbook_commands.alerts)
main.add_command(cutover_cli.cutover)
main.add_command(cutover_cli.report_group)
main.add_command(scheduler_command)  # the schedule in its own process
main.add_command(intake_command)  # the deferred webhook's intake in its own process


if __name__ == "__main__":
    main()
