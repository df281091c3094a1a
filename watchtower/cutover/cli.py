"""`watchtower cutover …` and `watchtower report migration`: the sign-off from the terminal.

    watchtower cutover status  [--window ID] [--format text|md|html|json]
    watchtower cutover report  [--window ID] [--format md|html|json] [--output FILE]
    watchtower cutover preflight [--days N] [--format text|md|html|json]
    watchtower cutover open --by NAME [--at WHEN] [--comment TEXT]
    watchtower cutover rollback --by NAME --reason TEXT [--at WHEN]
    watchtower report migration [--format md|html|json] [--output FILE]

Exit codes: 0 fine; 1 the window failed or cannot be signed as it stands, the pre-flight gate
failed, or a frozen report does not verify; 2 bad usage or an invalid setting.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import click

from watchtower.cutover.errors import CutoverError, NoWindow
from watchtower.cutover.markdown import (
    STATE_LABELS,
    preflight_markdown,
    signed_in,
    window_markdown,
)

if TYPE_CHECKING:
    from watchtower.cutover.service import CutoverService

BAD_STATES = {"failed", "not_met", "insufficient_coverage", "rolled_back", "abandoned"}


def _now() -> datetime:
    return datetime.now(UTC)


class Process(Protocol):
    """What these commands receive from the command line's root (watchtower.cli.Process): the
    service, built by the composition root from this process's environ (exit 2 when invalid)."""

    def cutover(self) -> AbstractContextManager[CutoverService]: ...


@contextmanager
def _service() -> Iterator[CutoverService]:
    process: Process = click.get_current_context().obj
    with process.cutover() as service:
        try:
            yield service
        except CutoverError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1 if not isinstance(exc, NoWindow) else 2)


def _emit(text: str, output: str | None) -> None:
    if output:
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"written to {output}", err=True)
    else:
        click.echo(text, nl=not text.endswith("\n"))


@click.group()
def cutover() -> None:
    """The 24-hour cutover sign-off of Story 6.1."""


@cutover.command()
@click.option("--window", "window_id", help="A window id (default: the latest).")
@click.option("--format", "fmt", type=click.Choice(["text", "md", "html", "json"]), default="text")
def status(window_id: str | None, fmt: str) -> None:
    """The window's verdict now: each criterion, coverage, and whether it can be signed."""
    with _service() as service:
        report = service.report(window_id, now=_now())
        doc = report.document
        if fmt == "text":
            click.echo(_text(doc))
        else:
            click.echo(_render(report, fmt), nl=False)
    if doc["verdict"]["state"] in BAD_STATES:
        sys.exit(1)


@cutover.command()
@click.option("--window", "window_id", help="A window id (default: the latest).")
@click.option("--format", "fmt", type=click.Choice(["md", "html", "json"]), default="md")
@click.option("--output", "-o", help="Write to this file instead of the terminal.")
def report(window_id: str | None, fmt: str, output: str | None) -> None:
    """The signed (frozen, verified) report, or a draft while the window is not signed."""
    with _service() as service:
        found = service.report(window_id, now=_now())
        _emit(_render(found, fmt), output)
    if found.verification is not None and not found.verification.ok:
        click.echo("error: the frozen report does not verify:", err=True)
        for problem in found.verification.problems:
            click.echo(f"  {problem}", err=True)
        sys.exit(1)


def _render(found: Any, fmt: str) -> str:
    from watchtower.cutover.render import window_html

    verification = (
        {"ok": found.verification.ok, "problems": list(found.verification.problems)}
        if found.verification is not None
        else None
    )
    if fmt == "json":
        body = {
            "sha256": found.sha256,
            "frozen": found.frozen,
            "verification": verification,
            "document": found.document,
        }
        return json.dumps(body, indent=2, ensure_ascii=False) + "\n"
    if fmt == "md":
        return window_markdown(
            found.document, sha256=found.sha256, frozen=found.frozen, verification=verification
        )
    return window_html(
        found.document, sha256=found.sha256, frozen=found.frozen, verification=verification
    )


def _text(doc: dict[str, Any]) -> str:
    from watchtower.cutover.markdown import when

    w, v, cov = doc["window"], doc["verdict"], doc["coverage"]
    lines = [
        f"Cutover window {w['id']}: {STATE_LABELS.get(v['state'], v['state'])}",
        v["headline"],
        f"Flag off {when(w['opened_at'])} by {w['opened_by']} (via {w['via']}); "
        f"ends {when(w['ends_at'])}; evidence coverage "
        + (f"{cov['ratio']:.2%}" if cov["ratio"] is not None else "n/a")
        + f" ({cov['required']:.0%} required)",
        "",
    ]
    width = max(len(c["title"]) for c in doc["criteria"]) + 2
    lines.append(f"{'CRITERION':<{width}}{'STATUS':<10}FIGURE")
    for c in doc["criteria"]:
        lines.append(f"{c['title']:<{width}}{c['status'].upper():<10}{c['figure']}")
        if c["status"] != "ok":
            lines.append(f"{'':<{width}}{'':<10}{c['detail']}")
    gaps = doc["coverage"]["gaps"]
    if gaps:
        lines += ["", f"{len(gaps)} gap{'' if len(gaps) == 1 else 's'} in the evidence:"]
        lines += [f"  {when(g['start'])} to {when(g['end'])}: {g['reason']}" for g in gaps[:10]]
    lines += ["", "Sign-off: " + (v["refusal"] or "open to " + ", ".join(doc["missing_roles"]))]
    for s in doc["signoffs"]:
        lines.append(f"  signed by {s['name']} ({s['role']}), {signed_in(s)}, at {when(s['at'])}")
    return "\n".join(lines)


@cutover.command()
@click.option("--days", type=click.IntRange(1, 14), help="How far back (default 7).")
@click.option("--format", "fmt", type=click.Choice(["text", "md", "html", "json"]), default="text")
def preflight(days: int | None, fmt: str) -> None:
    """The dual-write monitoring report over the last days, and the > 99.9% gate."""
    from watchtower.cutover.render import preflight_html

    with _service() as service:
        result = service.preflight(now=_now(), days=days)
    doc = result.document
    if fmt == "json":
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
    elif fmt == "html":
        click.echo(preflight_html(doc), nl=False)
    elif fmt == "md":
        click.echo(preflight_markdown(doc), nl=False)
    else:
        click.echo(f"Gate {'PASSED' if doc['gate']['passed'] else 'FAILED'}")
        for check in doc["gate"]["checks"]:
            click.echo(f"  {'ok  ' if check['passed'] else 'FAIL'} {check['text']}")
    if not doc["gate"]["passed"]:
        sys.exit(1)


@cutover.command("open")
@click.option("--by", "flipped_by", required=True, help="Who turned the flag off.")
@click.option("--at", "at_raw", help="When the flag was turned off (ISO 8601; default now).")
@click.option("--comment", default="")
def open_command(flipped_by: str, at_raw: str | None, comment: str) -> None:
    """Open the window for a flag turned off by hand (the runbook opens its own)."""
    from watchtower.cutover.service import parse_moment

    now = _now()
    with _service() as service:
        window = service.open_window(
            flipped_by=flipped_by,
            at=parse_moment(at_raw) if at_raw else now,
            now=now,
            via="cli",
            comment=comment,
        )
    click.echo(f"window {window.id} open until {window.ends_at.isoformat()}")


@cutover.command()
@click.option("--by", required=True, help="Who turned dual-write back on.")
@click.option("--reason", required=True)
@click.option("--at", "at_raw", help="When (ISO 8601; default now).")
def rollback(by: str, reason: str, at_raw: str | None) -> None:
    """Close the open window as rolled back (the rollback runbook records its own)."""
    from watchtower.cutover.model import CloseReason
    from watchtower.cutover.service import parse_moment

    now = _now()
    with _service() as service:
        current = service.store.open_window()
        if current is None:
            raise NoWindow("no cutover window is open")
        service.close(
            current.id,
            reason=CloseReason.ROLLED_BACK,
            by=by,
            at=parse_moment(at_raw) if at_raw else now,
            comment=reason,
            now=now,
        )
    click.echo(f"window {current.id} closed as rolled back")


@click.group(name="report")
def report_group() -> None:
    """Reports made from Watchtower's own records."""


@report_group.command()
@click.option("--format", "fmt", type=click.Choice(["md", "html", "json"]), default="md")
@click.option("--output", "-o", help="Write to this file instead of the terminal.")
def migration(fmt: str, output: str | None) -> None:
    """The final migration report of Story 6.5."""
    from watchtower.cutover.markdown import migration_markdown
    from watchtower.cutover.migration import migration_report
    from watchtower.cutover.render import migration_html

    with _service() as service:
        doc = migration_report(service, now=_now())
    if fmt == "json":
        _emit(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", output)
    elif fmt == "html":
        _emit(migration_html(doc), output)
    else:
        _emit(migration_markdown(doc), output)
