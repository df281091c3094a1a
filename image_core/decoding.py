"""The process-wide bound on concurrent decodes: a few at once, a short queue, then 503."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from image_core.errors import Overloaded


class DecodeGate:
    """At most `slots` decodes at once; at most `queue` more wait, each at most `wait_seconds`.

    Shared by every request thread of the process (one per app, built once at start-up). A
    request that finds the queue full, or waits its time out, gets `Overloaded` (503 with
    `Retry-After`) before anything is stored.
    """

    def __init__(self, *, slots: int, queue: int, wait_seconds: float) -> None:
        self._slots = threading.BoundedSemaphore(slots)
        self._queue = queue
        self._wait_seconds = wait_seconds
        self._lock = threading.Lock()
        self._waiting = 0

    @property
    def waiting(self) -> int:
        with self._lock:
            return self._waiting

    @contextmanager
    def slot(self) -> Iterator[None]:
        if not self._slots.acquire(blocking=False):
            self._wait_for_slot()
        try:
            yield
        finally:
            self._slots.release()

    def _wait_for_slot(self) -> None:
        retry_after = max(1, math.ceil(self._wait_seconds / 2))
        with self._lock:
            if self._waiting >= self._queue:
                raise Overloaded(
                    "the image service is decoding as many uploads as it may and its queue is "
                    "full; nothing was stored, retry later",
                    retry_after=retry_after,
                )
            self._waiting += 1
        try:
            acquired = self._slots.acquire(timeout=self._wait_seconds)
        finally:
            with self._lock:
                self._waiting -= 1
        if not acquired:
            raise Overloaded(
                f"no decode slot came free within {self._wait_seconds:g} s; nothing was stored, "
                "retry later",
                retry_after=retry_after,
            )
