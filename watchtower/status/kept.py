"""Reads kept while the data they came from has not changed: the status page's later renders.

Pure. The web edge reads the history store's version (`HistoryStore.version`, which changes in
every transaction that writes results or their rollups, on any replica) *before* its reads, and
keeps each read under it. A render that reads the same version again reuses them: nothing was
written since, so reading again would give the same rows. A render that reads another version
drops them all and reads afresh. What depends on the clock (staleness, ages, today's length) is
computed from the kept reads on every render, never kept.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from watchtower.model import Result
from watchtower.status.states import Feed, Reading, read

T = TypeVar("T")
Newest = Mapping[str, Sequence[Result]]  # name -> its newest results, oldest first


class KeptReads:
    """One data version's reads, by key; thread-safe (a replica's requests share it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version: Hashable = None
        self._kept: dict[Hashable, Any] = {}

    def forget(self) -> None:
        with self._lock:
            self._version, self._kept = None, {}

    def get(self, version: Hashable, key: Hashable, read: Callable[[], T]) -> T:
        """What `read()` gave under `version`; read now when not kept or the version changed."""
        with self._lock:
            if version != self._version:
                self._version, self._kept = version, {}
            elif key in self._kept:
                kept: T = self._kept[key]
                return kept
        value = read()
        with self._lock:
            # A slow read (one the page stopped waiting for) may end after the version moved on.
            if version == self._version:
                self._kept[key] = value
        return value

    def newest_since(
        self, version: Hashable, since: datetime, read: Callable[[datetime], Newest]
    ) -> Newest:
        """`HistoryStore.newest_since(since)` under `version`, from a read at an earlier `since`
        when one is kept: the newest results at or after `since` are the first of those at or
        after any earlier moment, so dropping the older ones gives the same answer."""
        kept_since, newest = self.get(version, "newest_since", lambda: (since, read(since)))
        if kept_since > since:  # the clock went back: read again, keep the earlier one
            kept_since, newest = since, read(since)
            with self._lock:
                if version == self._version:
                    self._kept["newest_since"] = (kept_since, newest)
        if kept_since == since:
            return newest
        out = {}
        for name, results in newest.items():
            if results[0].observed_at >= since:
                out[name] = results
            elif recent := [r for r in results if r.observed_at >= since]:
                out[name] = recent
        return out


class Readings:
    """`states.read`, each kept result read once per row: kept results are the same objects
    from render to render, so a reading is found by the object (held here, so its id is not
    reused while the reading is kept). One per data version (`KeptReads.get`)."""

    def __init__(self) -> None:
        self._seen: dict[tuple[int, str], tuple[Result, Reading]] = {}

    def __call__(self, feed: Feed, result: Result, row: str) -> Reading:
        seen = self._seen.get((id(result), row))
        if seen is not None and seen[0] is result:
            return seen[1]
        reading = read(feed, result, row)
        self._seen[(id(result), row)] = (result, reading)
        return reading
