"""`watchtower sandbox` and `watchtower demo` (with `watchtower demo scenario NAME`)."""

from __future__ import annotations

import importlib
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from typing import Any, NoReturn

import click
import urllib3

from watchtower.errors import SandboxError
from watchtower.sandbox import stack as sandbox_stack
from watchtower.sandbox.scenarios import SCENARIOS
from watchtower.sandbox.servers import LOOPBACK, ServerUnavailable
from watchtower.sandbox.telemetry import LOG_FORMATS

# Every request of the gateway, the image API and Watchtower would be a line: too many to read.
_QUIET = ("werkzeug", "apscheduler", "botocore.credentials")


def _stack_options(command: Any) -> Any:
    for option in reversed(
        [
            click.option(
                "--image-api-port",
                type=int,
                default=8000,
                show_default=True,
                help="The image API's port (its gateway).",
            ),
            click.option(
                "--scenario",
                type=click.Choice(list(SCENARIOS)),
                default="healthy",
                show_default=True,
                help="The scenario to play from the start.",
            ),
            click.option(
                "--traffic-rate",
                type=click.FloatRange(min=0, max=20),
                default=1.0,
                show_default=True,
                help="Simulated users' requests per second (0: none).",
            ),
            click.option(
                "--lambda-log-format",
                type=click.Choice(LOG_FORMATS),
                default="text",
                show_default=True,
                help="The format of the simulated Lambda REPORT lines.",
            ),
        ]
    ):
        command = option(command)
    return command


@click.command()
@_stack_options
@click.option("--no-dual-write", is_flag=True, help="Run without the legacy PostgreSQL.")
def sandbox(
    image_api_port: int,
    scenario: str,
    traffic_rate: float,
    lambda_log_format: str,
    no_dual_write: bool,
) -> None:
    """Start the image service on a local stack (moto, Redis, PostgreSQL) until Ctrl-C."""
    _run(
        dict(
            image_api_port=image_api_port,
            dual_write=not no_dual_write,
            scenario=scenario,
            traffic_rate=traffic_rate,
            log_format=lambda_log_format,
        ),
        watchtower_port=None,
    )


@click.group(invoke_without_command=True)
@click.option(
    "--port", type=int, default=8080, show_default=True, help="Watchtower's port (web app)."
)
@_stack_options
@click.pass_context
def demo(
    ctx: click.Context,
    port: int,
    image_api_port: int,
    scenario: str,
    traffic_rate: float,
    lambda_log_format: str,
) -> None:
    """The whole system on this machine, in one command (until Ctrl-C).

    With a subcommand (`watchtower demo scenario NAME`), talks to a demo that runs already.
    """
    if ctx.invoked_subcommand is not None:
        return
    _run(
        dict(
            image_api_port=image_api_port,
            dual_write=True,
            scenario=scenario,
            traffic_rate=traffic_rate,
            log_format=lambda_log_format,
        ),
        watchtower_port=port,
    )


@demo.command("scenario")
@click.argument("name", type=click.Choice(list(SCENARIOS)), required=False)
@click.option(
    "--port", type=int, default=8080, show_default=True, help="The running demo's Watchtower port."
)
@click.option(
    "--token",
    envvar="WATCHTOWER_TOKEN",
    help="An operator's bearer token (default: the running demo's own operator).",
)
def demo_scenario(name: str | None, port: int, token: str | None) -> None:
    """Show the scenario the running demo plays, or switch it to NAME."""
    from watchtower.sandbox import demo as sandbox_demo

    state = sandbox_demo.read_state(port)
    url = state["url"] if state else f"http://{LOOPBACK}:{port}"
    token = token or (state or {}).get("token")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        if name is None:
            answer = urllib3.request(
                "GET", f"{url}/api/v1/sandbox", headers=headers, timeout=10, retries=False
            )
        else:
            answer = urllib3.request(
                "POST",
                f"{url}/api/v1/sandbox/scenario",
                json={"scenario": name},
                headers=headers,
                timeout=60,
                retries=False,
            )
    except urllib3.exceptions.HTTPError as exc:
        _fail(f"no demo answers on {url} ({exc}); start one with `watchtower demo`")
    try:
        body = json.loads(answer.data)
    except ValueError:
        body = {}
    if answer.status != 200:
        error = (body.get("error") or {}) if isinstance(body, dict) else {}
        _fail(f"HTTP {answer.status}: {error.get('message') or answer.data[:200]!r}")
    scenario = body["scenario"]
    verb = "now playing" if name else "playing"
    click.echo(f"{verb}: {scenario['name']}: {scenario['summary']}")
    click.echo(f"  how: {scenario['mechanics']}")
    for result, status in scenario["turns_red"].items():
        click.echo(f"  turns {result} {status}")
    if name is None:
        others = [s["name"] for s in body["scenarios"] if s["name"] != scenario["name"]]
        click.echo(f"others: {', '.join(others)}")


@demo.command("rehearse")
@click.option(
    "--inject",
    type=click.Choice(["legacy-writes"]),
    default=None,
    help="A scenario to inject half-way through the window.",
)
@click.option(
    "--port", type=int, default=8080, show_default=True, help="The running demo's Watchtower port."
)
@click.option(
    "--token",
    envvar="WATCHTOWER_TOKEN",
    help="An operator's bearer token (default: the running demo's own operator).",
)
def demo_rehearse(inject: str | None, port: int, token: str | None) -> None:
    """Rehearse the cutover sign-off (Story 6.1) on the running demo, and follow it to the end.

    The window and its sampling are the demo's WATCHTOWER_CUTOVER_REHEARSAL_WINDOW_SECONDS and
    WATCHTOWER_CUTOVER_REHEARSAL_SAMPLE_SECONDS; everything it makes is marked REHEARSAL.
    Exit 0 when the rehearsal ended as expected: signed, frozen and verified; or, with --inject,
    failed and rolled back.
    """
    from watchtower.sandbox import demo as sandbox_demo

    state = sandbox_demo.read_state(port)
    url = state["url"] if state else f"http://{LOOPBACK}:{port}"
    token = token or (state or {}).get("token")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    endpoint = f"{url}/api/v1/sandbox/rehearsal"
    try:
        answer = urllib3.request(
            "POST", endpoint, json={"inject": inject}, headers=headers, timeout=30, retries=False
        )
    except urllib3.exceptions.HTTPError as exc:
        _fail(f"no demo answers on {url} ({exc}); start one with `watchtower demo`")
    body = _json(answer.data)
    if answer.status != 202:
        _fail(f"HTTP {answer.status}: {(body.get('error') or {}).get('message') or answer.data!r}")
    click.echo(
        f"REHEARSAL: a {body['window_seconds']} s window sampled every {body['sample_seconds']} s"
        f"{', legacy-writes injected half-way' if inject else ''}; follow it on {url}/cutover"
    )
    shown = 0
    while True:
        time.sleep(1)
        try:
            answer = urllib3.request("GET", endpoint, headers=headers, timeout=10, retries=False)
        except urllib3.exceptions.HTTPError as exc:
            _fail(f"the demo stopped answering ({exc})")
        current = _json(answer.data).get("current") or {}
        steps = current.get("steps") or []
        for step in steps[shown:]:
            click.echo(f"{step['at'][11:19]}  {step['step']:<18} {step['text']}")
        shown = len(steps)
        if current.get("finished"):
            break
    outcome = current.get("outcome") or {}
    expected = (
        outcome.get("verdict") == "rolled_back"
        if inject
        else outcome.get("frozen") and outcome.get("verified")
    )
    if current.get("error") or not expected:
        _fail(f"REHEARSAL did not end as expected: {current.get('error') or outcome}")
    click.echo(f"REHEARSAL done: {json.dumps(outcome)}")


def _json(data: bytes) -> dict[str, Any]:
    try:
        body = json.loads(data)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _run(options: dict[str, Any], *, watchtower_port: int | None) -> None:
    """Start the stack (and Watchtower), wait for Ctrl-C or SIGTERM, then stop everything."""
    started = time.monotonic()
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    if watchtower_port is not None and _in_use(watchtower_port):
        raise click.ClickException(f"port {watchtower_port} is in use; choose another with --port")
    if _in_use(options["image_api_port"]):
        raise click.ClickException(
            f"port {options['image_api_port']} is in use; choose another with --image-api-port"
        )
    sandbox_demo: Any = None
    if watchtower_port is not None:
        # Watchtower's own modules first: if they cannot load, nothing has been started yet.
        sandbox_demo = importlib.import_module("watchtower.sandbox.demo")
    # SIGTERM is Ctrl-C: the same orderly stop, also while the stack is starting. SIGINT too when
    # the demo was started in the background of a script, which makes Python ignore it.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    echo = lambda line: click.echo(line, err=True)  # noqa: E731
    stack = None
    running = None
    state_file = None
    try:
        try:
            stack = sandbox_stack.start(**options, log=echo)
        except (ServerUnavailable, SandboxError) as exc:
            raise click.ClickException(str(exc)) from exc
        if sandbox_demo is None or watchtower_port is None:
            echo(_sandbox_banner(stack))
        else:
            running, state_file = _start_watchtower(sandbox_demo, stack, watchtower_port)
        echo(f"ready in {time.monotonic() - started:.1f} s")
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        # A second Ctrl-C must not cut the stop short and leave servers behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if stack is not None:
            echo("stopping ...")
        if running is not None:
            running.stop()
        if state_file is not None:
            state_file.unlink(missing_ok=True)
        if stack is not None:
            stack.stop()
            echo("stopped")


def _start_watchtower(sandbox_demo: Any, stack: sandbox_stack.Stack, port: int) -> tuple[Any, Any]:
    from watchtower.checks import tunables
    from watchtower.config import Settings
    from watchtower.cutover.config import CutoverSettings, rehearsal_of
    from watchtower.errors import ConfigError
    from watchtower.sandbox import monitoring
    from watchtower.sandbox.servers import free_port

    sandbox_demo.use_sandbox_credentials()
    token = sandbox_demo.new_token()
    webhook_token = sandbox_demo.new_token()
    prometheus_port = free_port()
    with_monitoring = not monitoring.missing()
    environment = sandbox_demo.settings_environment(
        stack,
        port=port,
        token=token,
        workdir=stack.workdir,
        environ=os.environ,
        webhook_token=webhook_token,
        prometheus_url=f"http://{LOOPBACK}:{prometheus_port}" if with_monitoring else None,
    )
    try:
        settings = Settings.from_env(environment, checks=tunables())
        # The sandbox's cutover is only ever a rehearsal: marked, compressed, never the real one.
        cutover = rehearsal_of(CutoverSettings.from_env(environment))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    running = sandbox_demo.serve(stack, settings, port=port, cutover=cutover)
    try:
        running.monitoring, note = monitoring.start(
            watchtower_url=running.url,
            token=webhook_token,
            prometheus_port=prometheus_port,
            log=lambda line: click.echo(line, err=True),
        )
    except BaseException:
        running.stop()
        raise
    if note:
        running.notes.append(note)
    state_file = sandbox_demo.write_state(
        port, {"url": running.url, "token": token, "pid": os.getpid()}
    )
    click.echo(sandbox_demo.banner(stack, running, token), err=True)
    sandbox_demo.doctor_once(running, lambda text: click.echo(text, err=True))
    return running, state_file


def _sandbox_banner(stack: sandbox_stack.Stack) -> str:
    api = stack.image_api_url
    notes = "".join(f"\nNote: {note}" for note in stack.notes)
    return (
        f"\nThe sandbox runs (scenario {stack.scenarios.current.name}); Watchtower does not: "
        "`watchtower demo` adds it.\n"
        "Try it (a bearer token of the sandbox's local issuer, as user 'me'):\n"
        f"  TOKEN=$({stack.issuer.command('me')})\n"
        f'  curl -H "Authorization: Bearer $TOKEN" -F file=@photo.jpg {api}/images\n'
        f'  curl -H "Authorization: Bearer $TOKEN" {api}/images\n'
        f"AWS (moto): {stack.moto.url}{notes}\n\nCtrl-C stops everything."
    )


def _in_use(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return True
    return False
