"""Upload and read latency, P50/P95, through the HTTP API on the local stack.

Two `python -m image_core serve` processes (threaded werkzeug, as the sandbox runs it) share one
moto server (S3, DynamoDB, CloudWatch), all on loopback with no added delay:
* A, "full": Redis gallery cache on, dual-write to PostgreSQL `gallery_images` on;
* B, "bare": no Redis, no dual-write: the baseline for what the cache and the dual-write cost.
One client sends one request at a time over a kept-alive connection (latency, not throughput),
requests to A and B interleaved so drift hits both alike. Baselines:
* POST /images on A vs on B: what dual-write plus cache invalidation add to an upload;
* GET /images/{id} vs GET /healthz on the same server: the HTTP + Flask floor under every call;
* GET /images (first page of 20) on A (Redis hit) vs on B (DynamoDB query each time).
"""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis
import urllib3

from benchmarks.common import (
    AWS_ENVIRONMENT,
    Budget,
    Figure,
    median,
    note,
    percentile,
    photo_jpeg,
)
from image_core.app import bootstrap
from image_core.config import Settings
from watchtower.sandbox import servers
from watchtower.sandbox.servers import LOOPBACK, ServerUnavailable

NAME = "http_latency"
PHOTO_SIZE = (2048, 1536)  # 3 megapixels, ~0.9 MB: a photo as a phone app sends it resized
TABLE = BUCKET = "bench-http"


@dataclass
class Api:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    pool: urllib3.HTTPConnectionPool
    samples: dict[str, list[float]] = field(default_factory=dict)

    def call(self, kind: str, method: str, path: str, **kwargs: object) -> urllib3.BaseHTTPResponse:
        started = time.perf_counter()
        response = self.pool.request(method, path, **kwargs)  # type: ignore[arg-type]
        elapsed = (time.perf_counter() - started) * 1000
        expected = 201 if method == "POST" else 200
        if response.status != expected:
            raise RuntimeError(
                f"{self.name}: {method} {path} -> {response.status} {response.data!r}"
            )
        self.samples.setdefault(kind, []).append(elapsed)
        return response


@contextlib.contextmanager
def image_api(name: str, env: dict[str, str], log_dir: Path) -> Iterator[Api]:
    """`python -m image_core serve` on a free loopback port, stopped on exit."""
    port = servers.free_port()
    with open(log_dir / f"{name}.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "image_core", "serve", "--host", LOOPBACK, "--port", str(port)],
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    pool = urllib3.HTTPConnectionPool(LOOPBACK, port, maxsize=1, timeout=30, retries=False)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise ServerUnavailable(f"image API {name} exited; see {log_dir / name}.log")
            try:
                if pool.request("GET", "/healthz").status == 200:
                    break
            except urllib3.exceptions.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise ServerUnavailable(f"image API {name} not ready after 30 s")
            time.sleep(0.1)
        yield Api(name=name, url=f"http://{LOOPBACK}:{port}", process=process, pool=pool)
    finally:
        pool.close()
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run(*, quick: bool) -> list[Figure]:
    uploads = 40 if quick else 200
    reads = 100 if quick else 500
    started: list[servers.Server] = []
    try:
        moto = servers.start_moto()
        started.append(moto)
        cache = servers.start_redis()
        started.append(cache)
        postgres = servers.start_postgres()
        started.append(postgres)
        bootstrap(
            Settings(
                table=TABLE,
                bucket=BUCKET,
                aws_endpoint_url=moto.url,
                dual_write=True,
                legacy_database_url=postgres.url,
                metrics_sink="none",
            )
        )
        common = {
            **AWS_ENVIRONMENT,
            "AWS_ENDPOINT_URL": moto.url,
            "IMAGE_TABLE": TABLE,
            "IMAGE_BUCKET": BUCKET,
            "IMAGE_TRUST_USER_HEADER": "true",
        }
        full = {
            **common,
            "IMAGE_REDIS_URL": cache.url,
            "ENABLE_DYNAMODB_DUAL_WRITE": "true",
            "IMAGE_LEGACY_DATABASE_URL": postgres.url,
        }
        bare = {**common, "ENABLE_DYNAMODB_DUAL_WRITE": "false"}
        with (
            tempfile.TemporaryDirectory(prefix="bench-http-") as logs,
            image_api("A", full, Path(logs)) as a,
            image_api("B", bare, Path(logs)) as b,
        ):
            note("A: Redis cache + dual-write to PostgreSQL on; B: both off; same moto server")
            return _measure(a, b, cache, postgres, uploads, reads, quick)
    finally:
        for server in reversed(started):
            server.stop()


def _measure(
    a: Api,
    b: Api,
    cache: servers.RedisServer,
    postgres: servers.PostgresServer,
    uploads: int,
    reads: int,
    quick: bool,
) -> list[Figure]:
    rng = random.Random(7)
    photos = [photo_jpeg(*PHOTO_SIZE, variant=v) for v in range(4)]
    bodies = [
        urllib3.encode_multipart_formdata({"file": ("photo.jpg", data, "image/jpeg")})
        for data in photos
    ]
    note(
        f"uploads: {PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} JPEGs q90, "
        f"{sum(map(len, photos)) / len(photos) / 1e6:.2f} MB on average; "
        f"{uploads} per server, then {reads} rounds of reads"
    )

    def upload(api: Api, user: str, i: int, kind: str = "upload") -> str:
        body, content_type = bodies[i % len(bodies)]
        headers = {"X-User-Id": user, "Content-Type": content_type}
        response = api.call(kind, "POST", "/images", body=body, headers=headers)
        image_id: str = response.json()["id"]
        return image_id

    # Both servers upload into the gallery of one user, so both list the same 20 newest images.
    user = "bench-user"
    ids: list[str] = []
    for i in range(3):  # warm-up: imports, connection pools, first DynamoDB and S3 calls
        ids.append(upload(a, user, i, "warm-up"))
        upload(b, user, i, "warm-up")
    budget = Budget(60 if quick else 150)
    for i in range(uploads):
        for api in (a, b) if i % 2 == 0 else (b, a):
            image_id = upload(api, user, i)
            if api is a:
                ids.append(image_id)
        if budget.spent:
            note(f"time budget spent after {i + 1} of {uploads} uploads per server")
            break

    client = redis.Redis.from_url(cache.url)
    before = client.info("stats")
    headers = {"X-User-Id": user}
    rounds = [
        lambda: a.call("healthz", "GET", "/healthz"),
        lambda: a.call("get", "GET", f"/images/{rng.choice(ids)}", headers=headers),
        lambda: a.call("list", "GET", "/images?limit=20", headers=headers),
        lambda: b.call("list", "GET", "/images?limit=20", headers=headers),
    ]
    budget = Budget(40 if quick else 120)
    for i in range(reads):
        for call in rng.sample(rounds, len(rounds)):
            call()
        if budget.spent:
            note(f"time budget spent after {i + 1} of {reads} rounds of reads")
            break
    after = client.info("stats")
    client.close()
    hits = after["keyspace_hits"] - before["keyspace_hits"]
    misses = after["keyspace_misses"] - before["keyspace_misses"]
    note(f"Redis during the reads: {hits} hits, {misses} misses (A's list only)")
    note(
        f"PostgreSQL gallery_images rows (dual-write from A): {_legacy_rows(postgres.url)}, "
        f"A uploaded {len(ids)}"
    )

    for api in (a, b):
        for kind, values in api.samples.items():
            if kind == "warm-up":
                continue
            note(
                f"{api.name} {kind:8s} p50 {median(values):6.1f} ms   "
                f"p95 {percentile(values, 95):6.1f} ms   max {max(values):6.1f} ms   "
                f"n={len(values)}"
            )

    def pair(name: str, ours: list[float], baseline_name: str, base: list[float]) -> list[Figure]:
        return [
            Figure(
                benchmark=NAME,
                name=f"{name} p{p}",
                value=percentile(ours, p),
                baseline_name=f"{baseline_name} p{p}",
                baseline=percentile(base, p),
            )
            for p in (50, 95)
        ]

    return [
        *pair(
            "POST /images, A (cache+dual-write)",
            a.samples["upload"],
            "B (no cache, no dual-write)",
            b.samples["upload"],
        ),
        *pair("GET /images/{id}, A", a.samples["get"], "GET /healthz, A", a.samples["healthz"]),
        *pair(
            "GET /images (list), A (Redis hit)",
            a.samples["list"],
            "B (DynamoDB query)",
            b.samples["list"],
        ),
    ]


def _legacy_rows(url: str) -> int | str:
    try:
        import psycopg
    except ImportError:
        return "unknown (psycopg missing)"
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM gallery_images").fetchone()
    return int(row[0]) if row else 0
