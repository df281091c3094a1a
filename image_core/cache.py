"""Redis cache of gallery pages, per user; invalidated with SCAN, never KEYS.

Keys are `gallery:{<user>}:<limit>:<cursor>`: the braces are a Redis Cluster hash tag, so one
user's pages live on one slot and one node's SCAN finds them all. Redis down or slow never fails a
request: the call gives up after a short timeout, the cache is bypassed, and that is counted.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

import redis

log = logging.getLogger(__name__)

CacheEvent = Literal["hit", "miss", "bypass"]
SCAN_COUNT = 500
UNLINK_BATCH = 500
_GLOB_SPECIAL = str.maketrans({c: "\\" + c for c in "*?[]\\"})


def page_key(user_id: str, limit: int, cursor: str | None) -> str:
    return f"gallery:{{{user_id}}}:{limit}:{cursor or '-'}"


def user_pattern(user_id: str) -> str:
    return f"gallery:{{{user_id.translate(_GLOB_SPECIAL)}}}:*"


class RedisGalleryCache:
    """Adapter over a ready redis-py client (the caller owns it).

    After a failure the cache stays bypassed for `cooldown` seconds, so a dead Redis costs one
    timeout, not one per request. Pages live `ttl` seconds at most; that also bounds how stale a
    page can be when an invalidation could not reach Redis.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        ttl: int,
        on_event: Callable[[CacheEvent], None] = lambda _event: None,
        cooldown: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._ttl = ttl
        self._on_event = on_event
        self._cooldown = cooldown
        self._clock = clock
        self._down_until = 0.0
        self._lock = threading.Lock()

    def get_page(self, user_id: str, limit: int, cursor: str | None) -> dict[str, Any] | None:
        if self._bypassed():
            return None
        try:
            raw = self._client.get(page_key(user_id, limit, cursor))
        except redis.RedisError as exc:
            self._failed("get", exc)
            return None
        if raw is None:
            self._on_event("miss")
            return None
        self._on_event("hit")
        page: dict[str, Any] = json.loads(raw)
        return page

    def put_page(self, user_id: str, limit: int, cursor: str | None, page: dict[str, Any]) -> None:
        if self._bypassed(count=False):
            return
        try:
            self._client.set(page_key(user_id, limit, cursor), json.dumps(page), ex=self._ttl)
        except redis.RedisError as exc:
            self._failed("set", exc)

    def invalidate_user(self, user_id: str) -> int:
        """Remove every cached page of `user_id`; returns how many keys were unlinked."""
        if self._bypassed(count=False):
            return 0
        removed = 0
        try:
            batch: list[str] = []
            # SCAN may return a key twice; UNLINK of a missing key is harmless.
            for key in self._client.scan_iter(match=user_pattern(user_id), count=SCAN_COUNT):
                batch.append(key)
                if len(batch) >= UNLINK_BATCH:
                    removed += self._unlink(batch)
                    batch = []
            if batch:
                removed += self._unlink(batch)
        except redis.RedisError as exc:
            self._failed("invalidate", exc)
        return removed

    def _unlink(self, keys: list[str]) -> int:
        pipe = self._client.pipeline(transaction=False)
        for key in keys:
            pipe.unlink(key)
        return sum(int(n) for n in pipe.execute())

    def _bypassed(self, *, count: bool = True) -> bool:
        with self._lock:
            down = self._clock() < self._down_until
        if down and count:
            self._on_event("bypass")
        return down

    def _failed(self, operation: str, exc: Exception) -> None:
        with self._lock:
            self._down_until = self._clock() + self._cooldown
        log.warning("redis %s failed, cache bypassed for %.0fs: %s", operation, self._cooldown, exc)
        self._on_event("bypass")


def connect(url: str) -> redis.Redis:
    """A client that gives up fast: the cache must never slow a request down much."""
    return redis.Redis.from_url(
        url,
        socket_timeout=0.25,
        socket_connect_timeout=0.25,
        decode_responses=True,
        health_check_interval=30,
    )
