"""`watchtower runbooks validate` and `watchtower runbook run`: the terminal's way in.

`run` drives the same engine as the web and the webhook, on the same database, in this process:
it advances the run, prints each step as it ends, and asks at the prompt when a person must
decide. Without a terminal to ask at, an approval is refused (the run ends cancelled) rather
than waiting for nobody. Exit codes: 0 succeeded; 1 failed or cancelled, or problems found;
2 bad usage.
"""

from __future__ import annotations

import getpass
import json
import sys
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

import click

from watchtower.runbook.errors import ParamError, Refused, RunbookError
from watchtower.runbook.model import (
    Execution,
    ExecutionStatus,
    StepRun,
    StepStatus,
    execution_json,
)

if TYPE_CHECKING:
    from watchtower.runbook.engine import Engine


class Process(Protocol):
    """What these commands receive from the command line's root (watchtower.cli.Process)."""

    environ: Mapping[str, str]

    def runbooks(self) -> AbstractContextManager[Engine]: ...


@click.group("runbooks")
def runbooks() -> None:
    """Check runbook files."""


@runbooks.command("validate")
@click.argument("paths", nargs=-1, type=click.Path())
@click.pass_obj
def validate(process: Process, paths: tuple[str, ...]) -> None:
    """Check runbook files (default: the runbooks directory); print `file:line: problem`."""
    from watchtower.runbook.parser import catalog, default_dir, load, runbook_files

    targets: list[Any] = list(paths) or [_runbooks_dir(process.environ) or default_dir()]
    files = runbook_files(targets)
    found, problems = load(files, catalog())
    for problem in problems:
        click.echo(str(problem))
    if not files:
        click.echo("no runbook files found", err=True)
        sys.exit(1)
    if problems:
        click.echo(f"{len(problems)} problems in {len(files)} files", err=True)
        sys.exit(1)
    click.echo(f"{len(found)} runbooks, no problems", err=True)


def _runbooks_dir(environ: Mapping[str, str]) -> str | None:
    from watchtower.checks import tunables
    from watchtower.config import Settings
    from watchtower.errors import ConfigError

    try:
        return Settings.from_env(environ, checks=tunables()).runbooks_dir
    except ConfigError:
        return None


@click.group("runbook")
def runbook() -> None:
    """Run a runbook from the terminal."""


@runbook.command("run")
@click.argument("runbook_id")
@click.option("--dry-run", is_flag=True, help="Resolve every parameter; change nothing.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="A parameter.")
@click.option("--as", "started_by", default=None, help="Who starts it (default: your login).")
@click.option("--json", "as_json", is_flag=True, help="Print the execution as JSON at the end.")
@click.pass_obj
def run(
    process: Process,
    runbook_id: str,
    dry_run: bool,
    params: tuple[str, ...],
    started_by: str | None,
    as_json: bool,
) -> None:
    """Run one runbook with the same engine as the server; ask at the prompt for approvals."""
    values: dict[str, str] = {}
    for item in params:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.UsageError(f"--param {item!r}: use NAME=VALUE")
        values[name.strip()] = value
    who = started_by or f"{getpass.getuser()}@terminal"
    with process.runbooks() as engine:
        try:
            execution_id = engine.start(runbook_id, params=values, started_by=who, dry_run=dry_run)
        except (ParamError, RunbookError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        click.echo(f"execution {execution_id} of {runbook_id}{' (dry run)' if dry_run else ''}")
        execution = _drive(engine, execution_id, who)
    if as_json:
        from watchtower.runbook.model import execution_json

        click.echo(json.dumps(execution_json(execution), indent=2))
    click.echo(f"{execution.status.value}: {execution.reason}")
    sys.exit(0 if execution.status is ExecutionStatus.SUCCEEDED else 1)


def _drive(engine: Engine, execution_id: str, who: str) -> Execution:
    shown: set[str] = set()
    said = ""
    try:
        while True:
            engine.run_pending()
            execution = engine.get(execution_id)
            for step in execution.steps:
                if step.step_id not in shown and _ended(step):
                    shown.add(step.step_id)
                    _print_step(step)
            if execution.status.final:
                return execution
            if execution.status is ExecutionStatus.WAITING:
                _decide(engine, execution, who)
                continue
            if execution.reason and execution.reason != said:
                click.echo(f"  … {execution.reason}")
                said = execution.reason
            time.sleep(0.5)  # a lock held elsewhere, or another worker advancing it
    except KeyboardInterrupt:
        engine.cancel(execution_id, by=who, comment="interrupted at the terminal")
        engine.run_pending()
        return engine.get(execution_id)


def _ended(step: StepRun) -> bool:
    return step.status not in (StepStatus.PENDING, StepStatus.RUNNING, StepStatus.WAITING)


def _print_step(step: StepRun) -> None:
    mark = {
        StepStatus.SUCCEEDED: "ok",
        StepStatus.FAILED: "FAILED",
        StepStatus.SKIPPED: "skipped",
        StepStatus.PLANNED: "planned",
    }.get(step.status, step.status.value)
    click.echo(f"[{mark}] {step.step_id}: {step.title}")
    reason = step.outputs.get("reason")
    if reason:
        click.echo(f"    {reason}")
    if step.error:
        click.echo(f"    {step.error}")
    for call in step.plan:
        click.echo(
            f"    would call {call['service']}.{call['operation']} {json.dumps(call['parameters'])}"
        )


def _can_ask() -> bool:
    return sys.stdin.isatty()


def _decide(engine: Engine, execution: Execution, who: str) -> None:
    step = execution.waiting_step
    assert step is not None
    manual = step.kind == "manual"
    click.echo(f"\n{'Manual step' if manual else 'Approval needed'}: {step.title}")
    if step.inputs:
        click.echo(json.dumps(dict(step.inputs), indent=2))
    for call in step.plan:
        click.echo(
            f"  exact call: {call['service']}.{call['operation']} {json.dumps(call['parameters'])}"
        )
    if not _can_ask():
        engine.reject(execution.id, by=who, comment="no terminal to ask at; refused")
        click.echo("no terminal to ask at: refused")
        return
    if manual:
        if click.confirm("Done?", default=False):
            engine.approve(execution.id, by=who)
        else:
            engine.reject(execution.id, by=who, comment="not done")
        return
    if not click.confirm("Approve?", default=False):
        engine.reject(
            execution.id, by=who, comment=click.prompt("Why", default="", show_default=False)
        )
        return
    approver = click.prompt(f"Approver's name (a second operator, not {who})")
    try:
        engine.approve(execution.id, by=approver.strip(), comment="at the terminal")
    except Refused as exc:
        click.echo(f"refused: {exc}")


@click.group("alerts")
def alerts() -> None:
    """Stored Alertmanager notifications."""


@alerts.command("replay")
@click.argument("notification_id", type=int)
@click.option("--dry-run", "dry_run", is_flag=True, help="Required: a replay changes nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print each execution as JSON.")
@click.pass_obj
def replay(process: Process, notification_id: int, dry_run: bool, as_json: bool) -> None:
    """Start the routes' runbooks from a stored notification, in dry-run mode, and run them."""
    from watchtower.runbook.errors import NotificationNotFound

    if not dry_run:
        raise click.UsageError("a replay is always a dry run: pass --dry-run")
    who = f"{getpass.getuser()}@terminal"
    with process.runbooks() as engine:
        try:
            started = engine.replay(notification_id, routes=engine.settings.routes, started_by=who)
        except NotificationNotFound as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except (ParamError, RunbookError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        if not started:
            click.echo(f"notification {notification_id}: no firing alert is routed to a runbook")
            return
        failed = False
        for execution_id in started:
            engine.run_pending()
            execution = engine.get(execution_id)
            if as_json:
                click.echo(json.dumps(execution_json(execution), indent=2))
            else:
                click.echo(
                    f"execution {execution_id} of {execution.runbook_id} (dry run): "
                    f"{execution.status.value}: {execution.reason}"
                )
            failed = failed or execution.status is not ExecutionStatus.SUCCEEDED
    sys.exit(1 if failed else 0)
