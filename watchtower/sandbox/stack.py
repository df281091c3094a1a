"""The sandbox: the image service and everything it runs on, on loopback, with no AWS account.

moto stands in for AWS; redis-server and a throwaway PostgreSQL run when their binaries are
installed (and the stack says plainly what runs without them); the image API runs as its own
process, exactly as `python -m image_core serve` runs in production.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import urllib3

from watchtower.sandbox import servers
from watchtower.sandbox.servers import LOOPBACK, Server, ServerUnavailable

S = TypeVar("S", bound=Server)

SANDBOX_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "sandbox",
    "AWS_SECRET_ACCESS_KEY": "sandbox",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass
class Stack:
    moto: servers.MotoServer
    redis: servers.RedisServer | None
    postgres: servers.PostgresServer | None
    image_api_url: str
    image_env: dict[str, str]
    notes: list[str] = field(default_factory=list)
    _children: list[Server] = field(default_factory=list)

    def stop(self) -> None:
        for child in reversed(self._children):
            child.stop()
        self._children.clear()


def start(
    *,
    image_api_port: int | None = None,
    dual_write: bool = True,
    log: Callable[[str], None] = print,
) -> Stack:
    """Start everything; on any failure, stop what was started and raise."""
    children: list[Server] = []
    notes: list[str] = []
    try:
        moto = servers.start_moto()
        children.append(moto)
        log(f"moto (AWS emulator)     {moto.url}")
        redis = _optional(servers.start_redis, "Redis", "the gallery cache is off", notes, log)
        if redis:
            children.append(redis)
            log(f"redis-server            {redis.url}")
        postgres = None
        if dual_write:
            postgres = _optional(
                servers.start_postgres,
                "PostgreSQL",
                "dual-write to gallery_images is off",
                notes,
                log,
            )
        if postgres:
            children.append(postgres)
            log(f"PostgreSQL (legacy)     {postgres.url}")
        env = {
            **SANDBOX_CREDENTIALS,
            "AWS_ENDPOINT_URL": moto.url,
            "IMAGE_TRUST_USER_HEADER": "true",
            "ENABLE_DYNAMODB_DUAL_WRITE": "true" if postgres else "false",
        }
        if redis:
            env["IMAGE_REDIS_URL"] = redis.url
        if postgres:
            env["IMAGE_LEGACY_DATABASE_URL"] = postgres.url
        subprocess.run(
            [sys.executable, "-m", "image_core", "bootstrap"],
            env={**os.environ, **env},
            check=True,
            capture_output=True,
        )
        api = _start_image_api(env, image_api_port or servers.free_port())
        children.append(api)
        url = f"http://{LOOPBACK}:{api.port}"
        log(f"image API               {url}")
        return Stack(
            moto=moto,
            redis=redis,
            postgres=postgres,
            image_api_url=url,
            image_env=env,
            notes=notes,
            _children=children,
        )
    except BaseException:
        for child in reversed(children):
            child.stop()
        raise


def _optional(
    starter: Callable[[], S], what: str, without: str, notes: list[str], log: Callable[[str], None]
) -> S | None:
    try:
        server = starter()
    except ServerUnavailable as exc:
        note = f"{what} is not running ({exc}); {without}"
        notes.append(note)
        log(f"note: {note}")
        return None
    return server


def _start_image_api(env: dict[str, str], port: int) -> Server:
    process = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "image_core", "serve", "--host", LOOPBACK, "--port", str(port)],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = Server(name="image-api", port=port, process=process)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerUnavailable(f"the image API exited with status {process.returncode}")
        with contextlib.suppress(urllib3.exceptions.HTTPError):
            urllib3.request("GET", f"http://{LOOPBACK}:{port}/healthz", timeout=0.5, retries=False)
            return server
        time.sleep(0.1)
    server.stop()
    raise ServerUnavailable("the image API was not ready after 30s")
