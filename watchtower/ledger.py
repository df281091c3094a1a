"""Small shared counters for sign-in limits and session revocation: Redis, or this process.

With WATCHTOWER_REDIS_URL set every web replica reads and writes the same keys, so a sign-in
limit reached on one replica holds on all, and a session ended on one is ended on all. Without
it the ledger lives in this process (one replica; a restart forgets it).

A Redis that does not answer raises LedgerUnavailable (a StoreUnavailable), answered 503 with
`Retry-After` (watchtower.web.auth): never a sign-in that skipped its checks.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

from watchtower.errors import StoreUnavailable

log = logging.getLogger(__name__)

PREFIX = "watchtower:auth:"


class LedgerUnavailable(StoreUnavailable):
    """The sign-in ledger's Redis did not answer."""


class Ledger(Protocol):
    def hit(self, key: str, window: int) -> tuple[int, int]:
        """Count one more in `key`'s window (opened by the first hit, `window` seconds long):
        the count and the seconds left in the window."""

    def peek(self, key: str) -> tuple[int, int]:
        """The count in `key`'s window and the seconds left; (0, 0) when none is open."""

    def clear(self, key: str) -> None: ...

    def values(self, *keys: str) -> list[int]:
        """The numbers under `keys` (0 where none is set)."""

    def bump(self, key: str) -> int:
        """Add one to a number kept without expiry; the new value."""

    def mark(self, key: str, seconds: int) -> None:
        """Set `key` to 1 for `seconds`."""


class MemoryLedger:
    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._data: dict[str, tuple[int, float]] = {}  # key -> (value, expires at; inf: never)

    def _live(self, key: str, now: float) -> tuple[int, float] | None:
        found = self._data.get(key)
        if found is not None and found[1] <= now:
            del self._data[key]
            return None
        return found

    def _sweep(self, now: float) -> None:
        if len(self._data) > 10_000:  # an attacker's many names or addresses: drop the ended
            for key in [k for k, (_, end) in self._data.items() if end <= now]:
                del self._data[key]

    def hit(self, key: str, window: int) -> tuple[int, int]:
        with self._lock:
            now = self._clock()
            self._sweep(now)
            count, end = self._live(key, now) or (0, now + window)
            self._data[key] = (count + 1, end)
            return count + 1, max(1, round(end - now))

    def peek(self, key: str) -> tuple[int, int]:
        with self._lock:
            now = self._clock()
            found = self._live(key, now)
            return (found[0], max(1, round(found[1] - now))) if found else (0, 0)

    def clear(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)

    def values(self, *keys: str) -> list[int]:
        with self._lock:
            now = self._clock()
            return [(self._live(k, now) or (0, 0.0))[0] for k in keys]

    def bump(self, key: str) -> int:
        with self._lock:
            value = self._data.get(key, (0, float("inf")))[0] + 1
            self._data[key] = (value, float("inf"))
            return value

    def mark(self, key: str, seconds: int) -> None:
        with self._lock:
            now = self._clock()
            self._sweep(now)
            self._data[key] = (1, now + seconds)


class RedisLedger:
    def __init__(self, client: Any) -> None:
        self._client = client

    def _run(self, build: Any) -> list[Any]:
        import redis

        try:
            with self._client.pipeline(transaction=True) as pipe:
                build(pipe)
                result: list[Any] = pipe.execute()
                return result
        except redis.RedisError as exc:
            log.warning("the sign-in ledger's Redis did not answer: %s", type(exc).__name__)
            raise LedgerUnavailable(
                f"the sign-in ledger's Redis did not answer ({type(exc).__name__})"
            ) from exc

    def hit(self, key: str, window: int) -> tuple[int, int]:
        def build(pipe: Any) -> None:
            pipe.set(PREFIX + key, 0, ex=window, nx=True)
            pipe.incr(PREFIX + key)
            pipe.ttl(PREFIX + key)

        _, count, ttl = self._run(build)
        return int(count), max(1, int(ttl))

    def peek(self, key: str) -> tuple[int, int]:
        def build(pipe: Any) -> None:
            pipe.get(PREFIX + key)
            pipe.ttl(PREFIX + key)

        value, ttl = self._run(build)
        return (int(value), max(1, int(ttl))) if value is not None else (0, 0)

    def clear(self, key: str) -> None:
        self._run(lambda pipe: pipe.delete(PREFIX + key))

    def values(self, *keys: str) -> list[int]:
        (found,) = self._run(lambda pipe: pipe.mget([PREFIX + k for k in keys]))
        return [int(v) if v is not None else 0 for v in found]

    def bump(self, key: str) -> int:
        (value,) = self._run(lambda pipe: pipe.incr(PREFIX + key))
        return int(value)

    def mark(self, key: str, seconds: int) -> None:
        self._run(lambda pipe: pipe.set(PREFIX + key, 1, ex=seconds))


def ledger_for(redis_url: str | None) -> tuple[Ledger, Any]:
    """The ledger for these settings, and what closes it (None: nothing to close)."""
    if not redis_url:
        return MemoryLedger(), None
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
    return RedisLedger(client), client.close
