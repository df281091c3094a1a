"""Redis cache of gallery pages, per user; stale pages cleared with SCAN, never KEYS.

Keys are `gallery:{<user>}:p:<generation>:<limit>:<cursor>` beside `gallery:{<user>}:gen`; the
braces are a Redis Cluster hash tag, so a user's keys live on one slot and one node's SCAN finds
them all.

An upload or delete invalidates the user's pages in O(1): it gives the user a new random
generation, and pages of any other generation are never read again. A page is only stored under
the generation read *before* DynamoDB was queried, so a listing that raced an upload can never
be cached as current. The old generations' keys are then swept with SCAN MATCH + UNLINK off the
request path: SCAN walks the whole keyspace (about a second per million keys), which no request
should wait for. Pages expire after `ttl` anyway.

Redis down or slow never fails a request: the call gives up after a short timeout, the cache is
bypassed, and that is counted.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

import redis

from image_core.service import Lookup

log = logging.getLogger(__name__)

CacheEvent = Literal["hit", "miss", "bypass"]
SCAN_COUNT = 500
UNLINK_BATCH = 500
GENERATION_TTL = 7 * 24 * 3600  # far beyond any page's TTL
_GLOB_SPECIAL = str.maketrans({c: "\\" + c for c in "*?[]\\"})


def generation_key(user_id: str) -> str:
    return f"gallery:{{{user_id}}}:gen"


def page_key(user_id: str, generation: str, limit: int, cursor: str | None) -> str:
    return f"gallery:{{{user_id}}}:p:{generation}:{limit}:{cursor or '-'}"


def pages_pattern(user_id: str) -> str:
    return f"gallery:{{{user_id.translate(_GLOB_SPECIAL)}}}:p:*"


class RedisGalleryCache:
    """Adapter over a ready redis-py client (the caller owns it).

    After a failure the cache stays bypassed for `cooldown` seconds, so a dead Redis costs one
    timeout, not one per request. `run_later` runs the sweeps (a thread pool's `submit` in the
    service; None runs them at once, inline).
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        ttl: int,
        on_event: Callable[[CacheEvent], None] = lambda _event: None,
        cooldown: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        run_later: Callable[[Callable[[], object]], object] | None = None,
    ) -> None:
        self._client = client
        self._ttl = ttl
        self._on_event = on_event
        self._cooldown = cooldown
        self._clock = clock
        self._run_later = run_later
        self._down_until = 0.0
        self._lock = threading.Lock()
        self._sweeping: set[str] = set()

    def get_page(self, user_id: str, limit: int, cursor: str | None) -> Lookup:
        if self._bypassed():
            return Lookup(None, None)
        try:
            generation = self._client.get(generation_key(user_id)) or "0"
            raw = self._client.get(page_key(user_id, generation, limit, cursor))
        except redis.RedisError as exc:
            self._failed("get", exc)
            return Lookup(None, None)
        if raw is None:
            self._on_event("miss")
            return Lookup(None, generation)
        self._on_event("hit")
        return Lookup(json.loads(raw), generation)

    def put_page(
        self, user_id: str, limit: int, cursor: str | None, page: dict[str, Any], generation: str
    ) -> None:
        if self._bypassed(count=False):
            return
        key = page_key(user_id, generation, limit, cursor)
        try:
            self._client.set(key, json.dumps(page), ex=self._ttl)
        except redis.RedisError as exc:
            self._failed("set", exc)

    def invalidate_user(self, user_id: str) -> None:
        """Make every cached page of `user_id` unreachable now; sweep their keys later."""
        if self._bypassed(count=False):
            return
        try:
            self._client.set(generation_key(user_id), secrets.token_hex(8), ex=GENERATION_TTL)
        except redis.RedisError as exc:
            self._failed("invalidate", exc)
            return
        with self._lock:
            if user_id in self._sweeping:
                return  # a sweep is queued; it reads the generation when it runs
            self._sweeping.add(user_id)
        if self._run_later is None:
            self._sweep_queued(user_id)
        else:
            self._run_later(lambda: self._sweep_queued(user_id))

    def _sweep_queued(self, user_id: str) -> None:
        with self._lock:
            self._sweeping.discard(user_id)
        self.sweep_user(user_id)

    def sweep_user(self, user_id: str) -> int:
        """UNLINK the user's pages of past generations; returns how many keys went."""
        removed = 0
        try:
            current = self._client.get(generation_key(user_id)) or "0"
            keep = page_key(user_id, current, 0, None).rsplit(":", 2)[0] + ":"
            batch: list[str] = []
            # SCAN may return a key twice; UNLINK of a missing key is harmless.
            for key in self._client.scan_iter(match=pages_pattern(user_id), count=SCAN_COUNT):
                if key.startswith(keep):
                    continue
                batch.append(key)
                if len(batch) >= UNLINK_BATCH:
                    removed += self._unlink(batch)
                    batch = []
            if batch:
                removed += self._unlink(batch)
        except redis.RedisError as exc:
            # Nothing stale can be served: those pages are unreachable and expire by themselves.
            log.warning("sweep of %s's old gallery pages stopped: %s", user_id, exc)
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
