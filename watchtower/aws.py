"""The one place that builds boto3 clients for Watchtower."""

from __future__ import annotations

import functools
import threading
from typing import Any

import boto3
from botocore.config import Config

from watchtower.config import Settings

_lock = threading.Lock()


def client(service: str, settings: Settings, *, region: str | None = None) -> Any:
    """A client with explicit, short timeouts and the `standard` retry mode.

    A monitor must answer within its interval: a source that does not answer becomes `unknown`.
    """
    config = Config(
        region_name=region or settings.region,
        connect_timeout=2,
        read_timeout=5,
        retries={"mode": "standard", "max_attempts": 2},
    )
    with _lock:
        make: Any = _session().client  # the stubs want a literal service name
        return make(service, endpoint_url=settings.aws_endpoint_url, config=config)


@functools.cache
def _session() -> boto3.session.Session:
    # One session per process: its loader caches service models; sessions are not thread-safe.
    return boto3.session.Session()
