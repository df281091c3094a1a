"""The `watchtower` command line."""

from __future__ import annotations

import signal
import threading

import click

from watchtower.sandbox import stack as sandbox_stack
from watchtower.sandbox.servers import ServerUnavailable


@click.group()
def main() -> None:
    """Watchtower: probes, checks and runbooks for the image service."""


@main.command()
@click.option("--image-api-port", type=int, default=8000, show_default=True)
@click.option("--no-dual-write", is_flag=True, help="Run without the legacy PostgreSQL.")
def sandbox(image_api_port: int, no_dual_write: bool) -> None:
    """Start the image service on a local stack (moto, Redis, PostgreSQL) until Ctrl-C."""
    _run_until_interrupted(image_api_port, not no_dual_write)


@main.command()
@click.option("--image-api-port", type=int, default=8000, show_default=True)
def demo(image_api_port: int) -> None:
    """The whole system on this machine, in one command (until Ctrl-C)."""
    _run_until_interrupted(image_api_port, True)


def _run_until_interrupted(image_api_port: int, dual_write: bool) -> None:
    try:
        stack = sandbox_stack.start(image_api_port=image_api_port, dual_write=dual_write,
                                    log=lambda line: click.echo(line, err=True))
    except ServerUnavailable as exc:
        raise click.ClickException(str(exc)) from exc
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    click.echo(
        f"\nTry it:\n  curl -H 'X-User-Id: me' -F file=@photo.jpg {stack.image_api_url}/images\n"
        f"  curl -H 'X-User-Id: me' {stack.image_api_url}/images\n\nCtrl-C stops everything.",
        err=True,
    )
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()
        click.echo("stopped", err=True)
