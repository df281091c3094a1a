"""Upload with parallel vs sequential S3 writes, with a network delay on every S3 request.

Both variants are `image_core.app.build(settings, parallel_writes=...)` against one moto server,
uploading the same 12-megapixel photo, interleaved A B B A ... so drift hits both alike.

How the delay is added: S3 traffic (and only S3 traffic) goes through a TCP delay line on
loopback, a small asyncio proxy in its own process in front of moto. Every chunk of bytes is
forwarded a fixed one-way delay after it arrived, in both directions, so each request/response
exchange costs one round trip (twice the one-way delay) on top of moto's own time. Bandwidth is
not limited (bytes flow at loopback speed): this is latency alone. boto3 sends S3 PUTs with
`Expect: 100-continue` (against AWS too), so a PUT costs two round trips: headers -> 100 Continue,
then body -> 200. moto answers every request with `Connection: close`, so each request opens a
new loopback connection; the proxy charges no delay for that handshake, which is what a
kept-alive connection to S3 costs. Routing: image_core builds every client with
`settings.aws_endpoint_url`; leaving it unset lets boto3 take its standard service-specific
variables, AWS_ENDPOINT_URL_S3 (the proxy) and AWS_ENDPOINT_URL_DYNAMODB (moto, direct), so
nothing in boto3 or image_core is patched.

The saving depends on how the S3 round trips compare with the rest of the upload (thumbnailing,
the DynamoDB write), so it is measured at two delays: 30 ms each way (the headline) and 10 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import multiprocessing
import os
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from benchmarks.common import Budget, Figure, median, note, percentile, photo_jpeg, timed
from image_core import aws, images
from image_core.app import Components, bootstrap, build
from image_core.config import Settings
from image_core.storage import S3Storage
from image_core.telemetry import NullSink
from watchtower.sandbox import servers
from watchtower.sandbox.servers import LOOPBACK

NAME = "upload_parallel"
ONE_WAY_DELAYS_MS = (30, 10)  # the first is the headline figure


# -- the delay line -----------------------------------------------------------------------------


def serve_delay_proxy(
    listen_port: int, upstream_port: int, one_way_delay: float, ready: Any, carried: Any
) -> None:
    """Entry point of the proxy process: forward loopback TCP, each chunk late by the delay."""
    asyncio.run(_serve(listen_port, upstream_port, one_way_delay, ready, carried))


async def _serve(
    listen_port: int, upstream_port: int, delay: float, ready: Any, carried: Any
) -> None:
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            upstream_r, upstream_w = await asyncio.open_connection(LOOPBACK, upstream_port)
        except OSError:
            client_w.close()
            return
        carried[0] += 1
        await asyncio.gather(
            _delay_line(client_r, upstream_w, delay, carried, 1),
            _delay_line(upstream_r, client_w, delay, carried, 2),
            return_exceptions=True,
        )
        for writer in (upstream_w, client_w):
            writer.close()

    server = await asyncio.start_server(handle, LOOPBACK, listen_port)
    ready.set()
    async with server:
        await server.serve_forever()


async def _delay_line(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    delay: float,
    carried: Any,
    slot: int,
) -> None:
    """Copy reader to writer, each chunk `delay` seconds after it arrived, order kept.

    Due times are absolute, so a 3 MB body pays the delay once, not once per chunk.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def receive() -> None:
        while True:
            try:
                chunk = await reader.read(1 << 16)
            except ConnectionError:
                chunk = b""
            queue.put_nowait((loop.time() + delay, chunk))
            if not chunk:
                return

    receiving = asyncio.create_task(receive())
    try:
        while True:
            due, chunk = await queue.get()
            await asyncio.sleep(max(0.0, due - loop.time()))
            if not chunk:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            carried[slot] += len(chunk)
            writer.write(chunk)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        receiving.cancel()


@contextlib.contextmanager
def delay_proxy(upstream_port: int, one_way_delay_ms: float) -> Iterator[tuple[str, Any]]:
    """Run the proxy in its own process (its work must not share our GIL); yields its URL."""
    context = multiprocessing.get_context("spawn")
    port = servers.free_port()
    ready = context.Event()
    carried = context.Array("q", 3)  # connections, bytes to moto, bytes from moto
    process = context.Process(
        target=serve_delay_proxy,
        args=(port, upstream_port, one_way_delay_ms / 1000, ready, carried),
        daemon=True,
    )
    process.start()
    try:
        if not ready.wait(30):
            raise RuntimeError("the delay proxy did not start within 30 s")
        yield f"http://{LOOPBACK}:{port}", carried
    finally:
        process.terminate()
        process.join(10)


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# -- the benchmark ------------------------------------------------------------------------------


def run(*, quick: bool) -> list[Figure]:
    photo = photo_jpeg(4000, 3000)
    note(
        f"photo: 4000x3000 JPEG q90, {len(photo) / 1e6:.1f} MB; user 'bench'; "
        "uploads interleaved A B B A; metrics sink off, Redis off, dual-write off"
    )
    moto = servers.start_moto()
    figures: list[Figure] = []
    try:
        for n, delay_ms in enumerate(ONE_WAY_DELAYS_MS):
            pairs = (8 if quick else 30) if n == 0 else (5 if quick else 15)
            budget = Budget((40 if quick else 100) if n == 0 else (20 if quick else 50))
            print(flush=True)
            note(
                f"S3 delay: TCP delay line on loopback, {delay_ms} ms each way "
                f"(round trip {2 * delay_ms} ms); S3 only, DynamoDB direct to moto; "
                f"{pairs} uploads per variant"
            )
            figures += _run_with_delay(moto, delay_ms, photo, pairs, budget)
    finally:
        moto.stop()
    return figures


def _run_with_delay(
    moto: servers.MotoServer, delay_ms: int, photo: bytes, pairs: int, budget: Budget
) -> list[Figure]:
    built: list[Components] = []
    try:
        with (
            delay_proxy(moto.port, delay_ms) as (proxy_url, carried),
            _environment(
                {
                    "AWS_ENDPOINT_URL_S3": proxy_url,
                    "AWS_ENDPOINT_URL_DYNAMODB": moto.url,
                    "AWS_ENDPOINT_URL": moto.url,
                }
            ),
        ):
            settings = Settings(table="bench-upload", bucket="bench-upload", metrics_sink="none")
            bootstrap(settings)
            sequential = build(settings, sink=NullSink(), parallel_writes=False)
            built.append(sequential)
            parallel = build(settings, sink=NullSink(), parallel_writes=True)
            built.append(parallel)
            direct = S3Storage(
                aws.client(
                    "s3",
                    replace(settings, aws_endpoint_url=moto.url),
                    s3={"addressing_style": "path"},
                    signature_version="s3v4",
                ),
                settings.bucket,
            )
            return _measure(sequential, parallel, direct, photo, pairs, budget, carried, delay_ms)
    finally:
        for components in built:
            components.close()


def _measure(
    sequential: Components,
    parallel: Components,
    direct: S3Storage,
    photo: bytes,
    pairs: int,
    budget: Budget,
    carried: Any,
    delay_ms: int,
) -> list[Figure]:
    variants = {"sequential": sequential, "parallel": parallel}

    def upload(components: Components) -> None:
        components.service.upload(user_id="bench", data=photo)

    # Warm-up: the first calls load botocore's models and start the pool's threads.
    for components in [sequential, parallel] * 2:
        upload(components)
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for i in range(pairs):
        order = list(variants) if i % 2 == 0 else list(reversed(variants))
        for name in order:
            samples[name].append(timed(functools.partial(upload, variants[name])))
        if budget.spent:
            note(f"time budget spent after {i + 1} of {pairs} pairs")
            break

    # Where the time goes: one PUT of each object, through the delay line and direct to moto.
    thumbnail = images.process(photo, max_pixels=50_000_000, thumbnail_size=400)
    through = sequential.storage
    parts: dict[str, list[float]] = {k: [] for k in ("thumb", "orig", "thumb_d", "orig_d", "proc")}
    for _ in range(5):
        parts["thumb"].append(
            timed(lambda: through.put("probe/t.jpg", thumbnail.thumbnail, "image/jpeg"))
        )
        parts["orig"].append(timed(lambda: through.put("probe/o.jpg", photo, "image/jpeg")))
        parts["thumb_d"].append(
            timed(lambda: direct.put("probe/t.jpg", thumbnail.thumbnail, "image/jpeg"))
        )
        parts["orig_d"].append(timed(lambda: direct.put("probe/o.jpg", photo, "image/jpeg")))
        parts["proc"].append(
            timed(lambda: images.process(photo, max_pixels=50_000_000, thumbnail_size=400))
        )
    connections, sent, received = carried[:]
    note(
        f"the proxy carried {connections} connections, {sent / 1e6:.0f} MB to moto, "
        f"{received / 1e6:.2f} MB back (S3 only: DynamoDB is routed to moto directly)"
    )
    note(
        f"one S3 PUT, median of 5: original {median(parts['orig']):.0f} ms through the delay "
        f"line vs {median(parts['orig_d']):.0f} ms direct; thumbnail "
        f"{median(parts['thumb']):.0f} ms vs {median(parts['thumb_d']):.0f} ms direct"
    )
    note(f"thumbnailing (images.process) alone: median {median(parts['proc']):.0f} ms")
    for name, values in samples.items():
        note(
            f"upload, {name:10s} median {median(values):6.0f} ms   "
            f"p95 {percentile(values, 95):6.0f} ms   n={len(values)}"
        )
    seq, par = samples["sequential"], samples["parallel"]
    saving = (median(seq) - median(par)) / median(seq) * 100
    note(f"parallel S3 writes save {saving:.0f}% of the median upload (the epic expects ~30%)")
    delay = f"S3 +{delay_ms} ms each way"
    return [
        Figure(
            benchmark=NAME,
            name=f"upload, parallel S3 writes, median ({delay})",
            value=median(par),
            baseline_name="sequential S3 writes, median",
            baseline=median(seq),
        ),
        Figure(
            benchmark=NAME,
            name=f"upload, parallel S3 writes, p95 ({delay})",
            value=percentile(par, 95),
            baseline_name="sequential S3 writes, p95",
            baseline=percentile(seq, 95),
        ),
    ]
