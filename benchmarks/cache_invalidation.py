"""Invalidating one user's cached gallery pages among 1 million keys: SCAN vs KEYS.

A fresh redis-server holds 1,000,000 keys in image_core's format: 999,000 pages of 50,000 other
users and 1,000 of the user whose pages are invalidated, all with the hash tag of
`cache.page_key`. A separate process sends PING every millisecond over its own connection and
records each reply's latency: what any other client of the same Redis sees meanwhile.
* ours: `RedisGalleryCache.invalidate_user` (a new generation: one SET on the request path) and
  then its sweep, `sweep_user` (SCAN MATCH, COUNT 500, UNLINK in pipelines of 500; off the
  request path in the service), over image_core's own client (`cache.connect`, 250 ms timeout);
* baseline, the old way: `KEYS gallery:{user}:*` then one `DEL` of what it found;
* floor: the same PING latency with Redis idle, over a window as long as a SCAN pass.
Rounds alternate which method goes first; the victim's 1,000 pages are refilled before each.
"""

from __future__ import annotations

import multiprocessing
import socket
import time
from typing import Any

import redis

from benchmarks.common import Figure, median, note, percentile
from image_core.cache import RedisGalleryCache, connect, page_key, pages_pattern
from watchtower.sandbox import servers
from watchtower.sandbox.servers import LOOPBACK

NAME = "cache_invalidation"
KEYS_TOTAL = 1_000_000
VICTIM = "victim-user"
VICTIM_PAGES = 1_000
OTHER_USERS = 50_000
PING_INTERVAL = 0.001

# Fills the keyspace inside Redis: a million round trips from Python would take minutes.
_FILL = """
local first, last, users, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
for i = first, last do
  redis.call('SET', 'gallery:{user-' .. (i % users) .. '}:p:0:20:c' .. i, ARGV[5], 'EX', ttl)
end
return last - first + 1
"""
# A cached page is JSON of 20 image descriptions; its size matters little to SCAN or KEYS.
_PAGE = '{"items": [], "next_cursor": "' + "x" * 120 + '"}'


# -- the other client ---------------------------------------------------------------------------


def ping_every_millisecond(port: int, ready: Any, stop: Any, results: Any) -> None:
    """Entry point of the pinger process: (sent at, latency) pairs, monotonic clock, seconds."""
    with socket.create_connection((LOOPBACK, port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        samples: list[tuple[float, float]] = []
        ready.set()
        next_at = time.monotonic()
        while not stop.is_set():
            sent = time.monotonic()
            sock.sendall(b"PING\r\n")
            reply = b""
            while not reply.endswith(b"\r\n"):
                reply += sock.recv(64)
            samples.append((sent, time.monotonic() - sent))
            next_at = max(next_at + PING_INTERVAL, time.monotonic())
            time.sleep(max(0.0, next_at - time.monotonic()))
    results.send(samples)
    results.close()


class Pinger:
    def __init__(self, port: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._ready, self._stop = context.Event(), context.Event()
        self._receive, send = context.Pipe(duplex=False)
        self._process = context.Process(
            target=ping_every_millisecond,
            args=(port, self._ready, self._stop, send),
            daemon=True,
        )
        self._process.start()
        if not self._ready.wait(30):
            raise RuntimeError("the pinger process did not start")

    def stop(self) -> list[tuple[float, float]]:
        self._stop.set()
        samples: list[tuple[float, float]] = self._receive.recv() if self._receive.poll(30) else []
        self._process.join(10)
        if self._process.is_alive():
            self._process.terminate()
        return samples


def _latencies(samples: list[tuple[float, float]], start: float, end: float) -> list[float]:
    """Milliseconds of every PING that was waiting at some moment between start and end."""
    return [lat * 1000 for sent, lat in samples if sent <= end and sent + lat >= start]


# -- the benchmark ------------------------------------------------------------------------------


def run(*, quick: bool) -> list[Figure]:
    rounds = 1 if quick else 3
    server = servers.start_redis()
    try:
        admin = redis.Redis(host=LOOPBACK, port=server.port, socket_timeout=120)
        started = time.monotonic()
        fill = admin.register_script(_FILL)
        others = KEYS_TOTAL - VICTIM_PAGES
        for first in range(0, others, 100_000):
            fill(args=[first, min(first + 100_000, others) - 1, OTHER_USERS, 3600, _PAGE])
        _refill_victim(admin)
        assert admin.dbsize() == KEYS_TOTAL, admin.dbsize()
        memory = admin.info("memory")["used_memory_human"]
        note(
            f"keyspace: {admin.dbsize():,} keys ({memory}), filled in "
            f"{time.monotonic() - started:.1f} s; {VICTIM_PAGES} of them are "
            f"pages of the invalidated user, such as {_victim_keys()[3]!r}"
        )
        note(
            f"pattern: {pages_pattern(VICTIM)!r}; other client: PING every 1 ms from its own "
            f"process; {rounds} round(s)"
        )
        return _measure(admin, server, rounds)
    finally:
        server.stop()


def _victim_keys() -> list[str]:
    """The invalidated user's pages: the first page and 999 later ones, over three page sizes."""
    return [
        page_key(VICTIM, "0", (20, 50, 100)[i % 3], None if i < 3 else f"cursor{i:04d}")
        for i in range(VICTIM_PAGES)
    ]


def _refill_victim(admin: redis.Redis) -> None:
    pipe = admin.pipeline(transaction=False)
    for key in _victim_keys():
        pipe.set(key, _PAGE, ex=300)
    pipe.execute()


def _victim_keys_left(admin: redis.Redis) -> int:
    pipe = admin.pipeline(transaction=False)
    for key in _victim_keys():
        pipe.exists(key)
    return sum(pipe.execute())


def _longest_command_ms(admin: redis.Redis) -> float:
    entries = admin.slowlog_get(100_000)
    return max((int(e["duration"]) / 1000 for e in entries), default=0.0)


def _measure(admin: redis.Redis, server: servers.RedisServer, rounds: int) -> list[Figure]:
    ours_client = connect(server.url)  # image_core's client: 250 ms socket timeout
    # The sweep is queued, as in the service, and run here by hand so each part is timed.
    cache = RedisGalleryCache(ours_client, ttl=300, run_later=lambda sweep: None)
    request_path_ms: list[float] = []
    windows: dict[str, list[tuple[float, float]]] = {"scan": [], "keys": [], "idle": []}
    removed: dict[str, list[int]] = {"scan": [], "keys": []}
    # Inside Redis: the longest single command, from the slow log (what blocked the event loop).
    admin.config_set("slowlog-log-slower-than", 100)  # microseconds
    admin.config_set("slowlog-max-len", 100_000)
    longest: dict[str, list[float]] = {"scan": [], "keys": []}

    def scan() -> int:
        started = time.perf_counter()
        cache.invalidate_user(VICTIM)
        request_path_ms.append((time.perf_counter() - started) * 1000)
        return cache.sweep_user(VICTIM)

    def keys() -> int:
        found = admin.keys(pages_pattern(VICTIM))
        return int(admin.delete(*found)) if found else 0

    pinger = Pinger(server.port)
    try:
        time.sleep(0.5)
        for r in range(rounds):
            for method, call in (("scan", scan), ("keys", keys))[:: 1 if r % 2 == 0 else -1]:
                _refill_victim(admin)
                time.sleep(0.3)  # let the refill's own latency pass
                admin.slowlog_reset()
                start = time.monotonic()
                removed[method].append(call())
                windows[method].append((start, time.monotonic()))
                longest[method].append(_longest_command_ms(admin))
                left = _victim_keys_left(admin)
                if left:
                    raise RuntimeError(f"{method}: {left} of the user's pages survived")
                time.sleep(0.3)
            idle_for = windows["scan"][-1][1] - windows["scan"][-1][0]
            start = time.monotonic()
            time.sleep(idle_for)
            windows["idle"].append((start, time.monotonic()))
    finally:
        samples = pinger.stop()
        ours_client.close()
    note(
        f"pings recorded: {len(samples):,}; pages removed per run: "
        f"SCAN {removed['scan']}, KEYS+DEL {removed['keys']}"
    )
    note(
        "longest single command inside Redis (slow log, 0.1 ms threshold), per round: "
        f"SCAN/UNLINK {', '.join(f'{x:.2f}' for x in longest['scan'])} ms; "
        f"KEYS/DEL {', '.join(f'{x:.1f}' for x in longest['keys'])} ms"
    )

    stats = {}
    for method, spans in windows.items():
        latencies = [lat for s, e in spans for lat in _latencies(samples, s, e)]
        worst = [max(_latencies(samples, s, e), default=float("nan")) for s, e in spans]
        took = [(e - s) * 1000 for s, e in spans]
        stats[method] = {
            "max": max(latencies, default=float("nan")),
            "median_worst": median(worst),
            "p99": percentile(latencies, 99),
            "took": median(took),
        }
        label = {"scan": "SCAN+UNLINK (ours)", "keys": "KEYS+DEL (old)", "idle": "idle Redis"}
        note(
            f"{label[method]:19s} worst PING {stats[method]['max']:7.1f} ms "
            f"(per round {', '.join(f'{w:.1f}' for w in worst)})   "
            f"p99 {stats[method]['p99']:6.2f} ms   pings {len(latencies):5d}   "
            f"took {', '.join(f'{t:.0f}' for t in took)} ms"
        )

    scan_s, keys_s, idle_s = stats["scan"], stats["keys"], stats["idle"]
    return [
        Figure(
            benchmark=NAME,
            name="worst PING reply during SCAN invalidation (all rounds)",
            value=scan_s["max"],
            baseline_name="during KEYS + DEL (all rounds)",
            baseline=keys_s["max"],
        ),
        Figure(
            benchmark=NAME,
            name="worst PING reply, median of rounds, SCAN",
            value=scan_s["median_worst"],
            baseline_name="KEYS + DEL, median of rounds",
            baseline=keys_s["median_worst"],
        ),
        Figure(
            benchmark=NAME,
            name="worst PING reply during SCAN invalidation",
            value=scan_s["max"],
            baseline_name="idle Redis, same window",
            baseline=idle_s["max"],
        ),
        Figure(
            benchmark=NAME,
            name="p99 PING reply during SCAN invalidation",
            value=scan_s["p99"],
            baseline_name="during KEYS + DEL",
            baseline=keys_s["p99"],
        ),
        Figure(
            benchmark=NAME,
            name="invalidation on the request path (new generation, median)",
            value=median(request_path_ms),
            baseline_name="the SCAN sweep it no longer waits for",
            baseline=scan_s["took"],
        ),
        Figure(
            benchmark=NAME,
            name="SCAN invalidation, total time (median)",
            value=scan_s["took"],
            baseline_name="KEYS + DEL, total time",
            baseline=keys_s["took"],
        ),
    ]
