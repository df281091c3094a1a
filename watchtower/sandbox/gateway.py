"""The image API as Lambda runs it behind API Gateway: one stable URL, processes that come and go.

The gateway is a small HTTP reverse proxy on the image API's public port. Behind it runs one
`python -m image_core serve` process at a time, started with the function's environment. A change
of that environment (the dual-write flag, a scenario's missing bucket) starts a new process,
routes new requests to it once it answers, and stops the old one after its in-flight requests had
time to finish: as on Lambda, where new containers pick up new environment and the API's URL
never changes. Every request a process answered is recorded as one `Invocation`, which the
telemetry simulator turns into Lambda REPORT lines.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import urllib3
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from watchtower.sandbox.servers import LOOPBACK, Server, ServerUnavailable, free_port

log = logging.getLogger(__name__)

FLAG = "ENABLE_DYNAMODB_DUAL_WRITE"
REQUEST_ID_HEADER = "x-amzn-RequestId"
MAX_PAYLOAD_BYTES = 32 * 1024 * 1024  # read into memory before forwarding: bounded
# Never forwarded: they describe one hop, not the request (RFC 9110 7.6.1), or are recomputed.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
_NOT_RETURNED = _HOP_BY_HOP | {"server", "date"}
# Settings the image API must get from the sandbox, never from the shell that started the demo.
_SCRUBBED_PREFIXES = ("IMAGE_", "AWS_", "WATCHTOWER_")


@dataclass(frozen=True, kw_only=True)
class Invocation:
    """One request an image API process answered: one Lambda invocation."""

    request_id: str
    ended_at: float  # epoch seconds
    duration_ms: float
    generation: int  # which process answered; a new process means new containers
    method: str
    path: str
    status: int


class Invocations:
    """A bounded, thread-safe buffer between the gateway and the telemetry simulator."""

    def __init__(self, maxlen: int = 100_000) -> None:
        self._items: collections.deque[Invocation] = collections.deque(maxlen=maxlen)
        self._lock = threading.Lock()

    def add(self, invocation: Invocation) -> None:
        with self._lock:
            self._items.append(invocation)

    def drain(self) -> list[Invocation]:
        with self._lock:
            items = list(self._items)
            self._items.clear()
        return items


class Gateway:
    """A WSGI app that forwards every request to the current image API process."""

    def __init__(
        self,
        http: urllib3.PoolManager,
        *,
        record: Callable[[Invocation], None],
        clock: Callable[[], float] = time.time,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._http = http
        self._record = record
        self._clock = clock
        self._timer = timer
        self._backend: tuple[str, int] | None = None
        self._lock = threading.Lock()

    def route_to(self, base_url: str, generation: int) -> None:
        with self._lock:
            self._backend = (base_url.rstrip("/"), generation)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        with self._lock:
            backend = self._backend
        if backend is None:
            return _error(502, "no image API process is running")(environ, start_response)
        base, generation = backend
        if (request.content_length or 0) > MAX_PAYLOAD_BYTES:
            return _error(413, f"the request is over {MAX_PAYLOAD_BYTES} bytes")(
                environ, start_response
            )
        request_id = str(uuid.uuid4())
        started = self._timer()
        try:
            answer = self._http.request(
                request.method,
                base + _target(environ),
                body=request.get_data(cache=False),
                headers={k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP},
                # A refused connection never reached the process: safe to try again, even a POST.
                retries=urllib3.Retry(total=2, connect=2, read=0, status=0, other=0, redirect=0),
                redirect=False,
                timeout=urllib3.Timeout(connect=2, read=30),
                decode_content=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            log.warning(
                "gateway: the image API did not answer %s %s: %s", request.method, request.path, exc
            )
            return _error(502, "the image API did not answer")(environ, start_response)
        elapsed_ms = (self._timer() - started) * 1000
        self._record(
            Invocation(
                request_id=request_id,
                ended_at=self._clock(),
                duration_ms=elapsed_ms,
                generation=generation,
                method=request.method,
                path=request.path,
                status=answer.status,
            )
        )
        headers = [(k, v) for k, v in answer.headers.items() if k.lower() not in _NOT_RETURNED]
        headers.append((REQUEST_ID_HEADER, request_id))
        response = Response(answer.data, status=answer.status, headers=headers)
        return response(environ, start_response)


def _target(environ: Mapping[str, Any]) -> str:
    """The request's path and query as the client sent them (werkzeug keeps the raw target)."""
    raw = environ.get("RAW_URI") or ""
    if raw.startswith("/"):
        return str(raw)
    query = environ.get("QUERY_STRING") or ""
    return quote(environ.get("PATH_INFO") or "/") + (f"?{query}" if query else "")


def _error(status: int, message: str) -> Response:
    code = "payload_too_large" if status == 413 else "bad_gateway"
    return Response(
        json.dumps({"error": {"code": code, "message": message}}),
        status=status,
        content_type="application/json",
    )


def image_api_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The process environment of an image API: this one's, minus settings the sandbox owns."""
    inherited = {
        k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES) and k != FLAG
    }
    return {**inherited, **env}


def start_image_api_process(
    env: Mapping[str, str], *, port: int | None = None, log_path: Path | None = None
) -> ImageApiProcess:
    """`python -m image_core serve` on loopback, ready when /healthz answers."""
    port = port or free_port()
    output: Any = subprocess.DEVNULL
    if log_path is not None:
        output = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        process = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "image_core", "serve", "--host", LOOPBACK, "--port", str(port)],
            env=image_api_environment(env),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    finally:
        if log_path is not None:
            os.close(output)
    server = ImageApiProcess(name="image-api", port=port, process=process, log_path=log_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            where = f"; see {log_path}" if log_path else ""
            raise ServerUnavailable(f"the image API exited with status {process.returncode}{where}")
        with contextlib.suppress(urllib3.exceptions.HTTPError):
            urllib3.request("GET", f"{server.url}/healthz", timeout=0.5, retries=False)
            return server
        time.sleep(0.05)
    server.stop()
    raise ServerUnavailable("the image API was not ready after 30s")


class ImageApiProcess(Server):
    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def stop(self) -> None:
        # SIGINT ends `image_core serve` cleanly: its metrics buffer is flushed, as Lambda flushes
        # a container's logs when it is shut down.
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)
        super().stop()


class ImageApi:
    """The gateway on the public port, and the image API process behind it."""

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        port: int | None = None,
        record: Callable[[Invocation], None] = lambda _invocation: None,
        workdir: Path | None = None,
        drain_seconds: float = 2.0,
    ) -> None:
        self._env = dict(env)
        self._port = port or free_port()
        self._workdir = workdir
        self._drain_seconds = drain_seconds
        self._http = urllib3.PoolManager(num_pools=4, maxsize=16)
        self._gateway = Gateway(self._http, record=record)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._current: ImageApiProcess | None = None
        self._retiring: list[tuple[threading.Timer, Server]] = []
        self._generation = 0
        self._restart_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self.started_at = 0.0

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self._port}"

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def environment(self) -> dict[str, str]:
        """The environment the process serving new requests runs with."""
        with self._state_lock:
            return dict(self._env)

    def start(self) -> None:
        self._server = make_server(LOOPBACK, self._port, self._gateway, threaded=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="image-api-gateway", daemon=True
        )
        self._thread.start()
        try:
            self._launch(self._env)
        except BaseException:
            self.stop()
            raise

    def restart(self, reason: str, **changes: str) -> bool:
        """Start a process with `changes` applied; False when nothing changed.

        Raises ServerUnavailable when the new process does not start; the old one keeps serving.
        """
        with self._restart_lock:
            env = {**self.environment, **changes}
            if env == self.environment:
                return False
            log.info("image API: starting a new process (%s)", reason)
            self._launch(env)
            return True

    def _launch(self, env: dict[str, str]) -> None:
        generation = self._generation + 1
        log_path = None
        if self._workdir is not None:
            log_path = self._workdir / f"image-api-{generation}.log"
        process = start_image_api_process(env, log_path=log_path)
        with self._state_lock:
            old, self._current = self._current, process
            self._env, self._generation = env, generation
            self.started_at = time.time()
        self._gateway.route_to(process.url, generation)
        if old is not None:
            timer = threading.Timer(self._drain_seconds, old.stop)
            timer.daemon = True
            with self._state_lock:
                self._retiring = [(t, s) for t, s in self._retiring if s.running]
                self._retiring.append((timer, old))
            timer.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._state_lock:
            retiring, self._retiring = self._retiring, []
            current, self._current = self._current, None
        for timer, old in retiring:
            timer.cancel()
            old.stop()
        if current is not None:
            current.stop()
        self._http.clear()
