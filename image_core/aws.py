"""The one place that builds boto3 clients for the image core."""

from __future__ import annotations

import functools
import threading
from typing import Any

import boto3
from botocore.config import Config

from image_core.config import Settings


def client(service: str, settings: Settings, **config: Any) -> Any:
    """A boto3 client with explicit timeouts and the `standard` retry mode.

    `AWS_ENDPOINT_URL` (the moto server locally) is honoured through the settings.
    """
    base = Config(
        region_name=settings.region,
        connect_timeout=2,
        read_timeout=5,
        retries={"mode": "standard", "max_attempts": 3},
        max_pool_connections=max(10, settings.s3_workers * 2),
        **config,
    )
    with _lock:
        make: Any = _session().client  # the stubs want a literal service name
        return make(service, endpoint_url=settings.aws_endpoint_url, config=base)


_lock = threading.Lock()


@functools.cache
def _session() -> boto3.session.Session:
    # One session per process: its loader caches the service models, so building a client after
    # the first costs milliseconds. Sessions are not thread-safe, hence the lock.
    return boto3.session.Session()
