"""The image API's throughput on two cores: N concurrent clients against one, over real HTTP.

One `python -m image_core serve` process (threaded werkzeug, as the sandbox runs it; a thread
per connection) with the Redis gallery cache on, against one moto server (S3, DynamoDB,
CloudWatch for the API's own metrics) and one `redis-server`, all on loopback, all sharing the
machine's two cores with the clients. Clients are threads in this process, each with its own
kept-alive connection, sending the next request as soon as the last is answered (closed loop):

* POST /images, a 3-megapixel JPEG (2048x1536 q90, ~0.9 MB: a phone app's resized photo),
  into the galleries of 16 users;
* GET /images/{id}, a random uploaded image of its owner (a DynamoDB read, presigned URLs);
* GET /images?limit=20 of a random user, from the Redis cache after its first listing.

Baseline: one client, one request at a time, the same requests in the same run. Each pair runs
as A B B A (half the requests each time) so drift on the machine hits both alike; every phase is
bounded in requests and seconds. The CPU seconds that moto, the API, Redis and the clients used
in each phase are read from /proc: moto is a one-process Python server too, and on this machine
it, not the image API, is much of what a request waits for. That share is printed as a figure.
"""

from __future__ import annotations

import itertools
import os
import random
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import urllib3

from benchmarks.common import (
    AWS_ENVIRONMENT,
    CpuMeter,
    Figure,
    median,
    note,
    percentile,
    photo_jpeg,
)
from benchmarks.http_latency import PHOTO_SIZE, image_api
from image_core.app import bootstrap
from image_core.config import Settings
from watchtower.sandbox import servers

NAME = "image_api_throughput"
TABLE = BUCKET = "bench-throughput"
CLIENTS = 8
USERS = 16

# One request: (method, path, body, headers) for the i-th request of a phase.
MakeCall = Callable[[int, random.Random], tuple[str, str, bytes | None, dict[str, str]]]


@dataclass
class Phase:
    """One kind of request at one concurrency: latencies, errors, wall time, CPU by process."""

    kind: str
    clients: int
    latencies: list[float] = field(default_factory=list)  # ms, 2xx only
    errors: Counter[str] = field(default_factory=Counter)
    wall: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.wall if self.wall else 0.0

    def share(self, name: str) -> float:
        total = sum(self.cpu.values())
        return self.cpu.get(name, 0.0) / total * 100 if total else float("nan")

    def cpu_per_request(self, name: str) -> float:
        return self.cpu.get(name, 0.0) * 1000 / max(1, len(self.latencies))

    def add(self, other: Phase) -> None:
        self.latencies += other.latencies
        self.errors += other.errors
        self.wall += other.wall
        for name, used in other.cpu.items():
            self.cpu[name] = self.cpu.get(name, 0.0) + used


def measure(
    url: str,
    kind: str,
    clients: int,
    count: int,
    seconds: float,
    make: MakeCall,
    processes: dict[str, int],
    on_answer: Callable[[int, urllib3.BaseHTTPResponse], None] | None = None,
) -> Phase:
    """`count` requests from `clients` threads, each waiting for its answer before the next."""
    phase = Phase(kind=kind, clients=clients)
    numbers = itertools.count()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    host, port = url.removeprefix("http://").split(":")

    def client(seed: int) -> None:
        rng = random.Random(seed)
        pool = urllib3.HTTPConnectionPool(host, int(port), maxsize=1, timeout=60, retries=False)
        try:
            while time.monotonic() < deadline:
                with lock:
                    i = next(numbers)
                if i >= count:
                    return
                method, path, body, headers = make(i, rng)
                started = time.perf_counter()
                try:
                    answer = pool.request(method, path, body=body, headers=headers)
                except urllib3.exceptions.HTTPError as exc:
                    with lock:
                        phase.errors[type(exc).__name__] += 1
                    continue
                took = (time.perf_counter() - started) * 1000
                with lock:
                    if 200 <= answer.status < 300:
                        phase.latencies.append(took)
                    else:
                        phase.errors[f"HTTP {answer.status}"] += 1
                if on_answer is not None and 200 <= answer.status < 300:
                    on_answer(i, answer)
        finally:
            pool.close()

    meter = CpuMeter(processes)
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    with meter:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    phase.wall, phase.cpu = meter.wall, meter.used
    return phase


def run(*, quick: bool) -> list[Figure]:
    started: list[servers.Server] = []
    try:
        moto = servers.start_moto()
        started.append(moto)
        cache = servers.start_redis()
        started.append(cache)
        bootstrap(
            Settings(table=TABLE, bucket=BUCKET, aws_endpoint_url=moto.url, metrics_sink="none")
        )
        env = {
            **AWS_ENVIRONMENT,
            "AWS_ENDPOINT_URL": moto.url,
            "IMAGE_TABLE": TABLE,
            "IMAGE_BUCKET": BUCKET,
            "IMAGE_TRUST_USER_HEADER": "true",
            "IMAGE_REDIS_URL": cache.url,
        }
        with (
            tempfile.TemporaryDirectory(prefix="bench-throughput-") as logs,
            image_api("throughput", env, Path(logs)) as api,
        ):
            assert moto.process is not None and cache.process is not None
            processes = {
                "moto": moto.process.pid,
                "image API": api.process.pid,
                "redis": cache.process.pid,
                "clients": os.getpid(),
            }
            return _measure(api.url, processes, quick)
    finally:
        for server in reversed(started):
            server.stop()


def _measure(url: str, processes: dict[str, int], quick: bool) -> list[Figure]:
    photos = [photo_jpeg(*PHOTO_SIZE, variant=v) for v in range(4)]
    bodies = [
        urllib3.encode_multipart_formdata({"file": ("photo.jpg", data, "image/jpeg")})
        for data in photos
    ]
    users = [f"bench-user-{n:02d}" for n in range(USERS)]
    owners: dict[str, str] = {}
    lock = threading.Lock()

    def upload(i: int, rng: random.Random) -> tuple[str, str, bytes | None, dict[str, str]]:
        body, content_type = bodies[i % len(bodies)]
        headers = {"X-User-Id": users[i % USERS], "Content-Type": content_type}
        return "POST", "/images", body, headers

    def uploaded(i: int, answer: urllib3.BaseHTTPResponse) -> None:
        with lock:
            owners[answer.json()["id"]] = users[i % USERS]

    ids: list[str] = []

    def get(i: int, rng: random.Random) -> tuple[str, str, bytes | None, dict[str, str]]:
        image_id = rng.choice(ids)
        return "GET", f"/images/{image_id}", None, {"X-User-Id": owners[image_id]}

    def listing_of(user: str) -> tuple[str, str, bytes | None, dict[str, str]]:
        return "GET", "/images?limit=20", None, {"X-User-Id": user}

    def listing(i: int, rng: random.Random) -> tuple[str, str, bytes | None, dict[str, str]]:
        return listing_of(rng.choice(users))

    uploads, reads = (32, 200) if quick else (240, 1600)
    seconds = 15.0 if quick else 45.0
    note(
        f"{CLIENTS} clients vs 1; uploads of {PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} JPEGs, "
        f"{sum(map(len, photos)) / len(photos) / 1e6:.2f} MB on average, into {USERS} galleries; "
        f"per pair A B B A, each half at most {seconds / 2:.0f} s"
    )
    # Warm-up: imports, connection pools, the first DynamoDB and S3 calls, every gallery cached.
    warm = measure(url, "warm-up", 4, 16, 60, upload, processes, uploaded)
    ids[:] = list(owners)
    measure(url, "warm-up", 4, 32, 30, get, processes)
    if warm.errors:
        raise RuntimeError(f"warm-up uploads failed: {dict(warm.errors)}")

    phases: dict[tuple[str, int], Phase] = {}
    for kind, make, count, hook in (
        ("upload", upload, uploads, uploaded),
        ("get", get, reads, None),
        ("list", listing, reads, None),
    ):
        if kind == "list":  # the uploads dropped every gallery's cached pages: list each once
            measure(url, "warm-up", 1, USERS, 30, lambda i, rng: listing_of(users[i]), processes)
        for clients in (1, CLIENTS, CLIENTS, 1):
            scale = 4 if clients == 1 else 1  # one client gets a quarter: it is slower
            half = measure(
                url,
                kind,
                clients,
                count // 2 // scale,
                seconds / 2,
                make,
                processes,
                hook,
            )
            phases.setdefault((kind, clients), Phase(kind=kind, clients=clients)).add(half)
            if kind == "upload":
                ids[:] = list(owners)
    for (kind, clients), phase in phases.items():
        errors = ", ".join(f"{n} {e}" for e, n in phase.errors.most_common()) or "no errors"
        note(
            f"{kind:6s} x{clients}: {len(phase.latencies):4d} in {phase.wall:5.1f} s = "
            f"{phase.throughput:6.1f}/s; p50 {median(phase.latencies):6.1f} ms, "
            f"p95 {percentile(phase.latencies, 95):6.1f} ms; {errors}"
        )
        note(
            "          CPU per request: "
            + ", ".join(f"{name} {phase.cpu_per_request(name):5.1f} ms" for name in phase.cpu)
            + f"; moto {phase.share('moto'):.0f}% of the CPU used"
        )
    one = phases[("upload", 1)]
    note(
        f"one client's upload: {median(one.latencies):.0f} ms median, of which moto was busy "
        f"{one.cpu_per_request('moto'):.0f} ms and the API {one.cpu_per_request('image API'):.0f}"
        " ms (CPU per request)"
    )

    figures: list[Figure] = []
    for kind, label in (
        ("upload", "POST /images"),
        ("get", "GET /images/{id}"),
        ("list", "GET /images (Redis hit)"),
    ):
        many, single = phases[(kind, CLIENTS)], phases[(kind, 1)]
        figures.append(
            Figure(
                benchmark=NAME,
                name=f"{label}, {CLIENTS} clients",
                value=many.throughput,
                baseline_name="1 client",
                baseline=single.throughput,
                unit="req/s",
            )
        )
        for p in (50, 95):
            figures.append(
                Figure(
                    benchmark=NAME,
                    name=f"{label}, {CLIENTS} clients, p{p}",
                    value=percentile(many.latencies, p),
                    baseline_name=f"1 client, p{p}",
                    baseline=percentile(single.latencies, p),
                )
            )
    for kind, label in (("upload", "uploads"), ("get", "gets")):
        figures.append(
            Figure(
                benchmark=NAME,
                name=f"moto's share of CPU, {label}, {CLIENTS} clients",
                value=phases[(kind, CLIENTS)].share("moto"),
                baseline_name="1 client",
                baseline=phases[(kind, 1)].share("moto"),
                unit="%",
            )
        )
    return figures
