"""Wiring: builds the service and its adapters from settings. The only module that does."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from image_core import aws
from image_core.auth import BearerVerifier, verifier
from image_core.cache import RedisGalleryCache, connect
from image_core.config import Settings
from image_core.decoding import DecodeGate
from image_core.metadata import DynamoDbMetadata
from image_core.service import ImageService, LegacyWriter, Limits
from image_core.storage import S3Storage
from image_core.telemetry import CloudWatchSink, EmfSink, MetricSink, NullSink, Telemetry


@dataclass
class Components:
    settings: Settings
    service: ImageService
    telemetry: Telemetry
    metadata: DynamoDbMetadata
    storage: S3Storage
    legacy: Any = None
    bearer: BearerVerifier | None = None  # verifies bearer JWTs when IMAGE_JWT_ISSUER is set
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for close in reversed(self.closers):
            close()
        self.closers.clear()


def build(
    settings: Settings,
    *,
    on_lambda: bool = False,
    sink: MetricSink | None = None,
    parallel_writes: bool = True,
) -> Components:
    closers: list[Callable[[], None]] = []
    if sink is None:
        sink = _sink(settings, on_lambda, closers)
    telemetry = Telemetry(sink, latency_thresholds_ms=settings.latency_thresholds_ms)
    storage = S3Storage(
        aws.client("s3", settings, s3={"addressing_style": "path"}, signature_version="s3v4"),
        settings.bucket,
        presign_seconds=settings.presign_seconds,
    )
    metadata = DynamoDbMetadata(aws.client("dynamodb", settings), settings.table)
    # The shared pool: parallel S3 writes, and the cache's sweeps of old gallery pages.
    executor = ThreadPoolExecutor(max_workers=settings.s3_workers, thread_name_prefix="s3")
    cache = None
    if settings.redis_url is not None:
        redis_client = connect(settings.redis_url)
        closers.append(redis_client.close)
        cache = RedisGalleryCache(
            redis_client,
            ttl=settings.cache_ttl_seconds,
            on_event=telemetry.cache,
            run_later=executor.submit,
        )
    closers.append(lambda: executor.shutdown(wait=True))  # closed first: drains pending sweeps
    legacy: LegacyWriter | None = None
    if settings.dual_write and settings.legacy_database_url:
        from image_core.legacy import PostgresGalleryWriter  # psycopg only when the flag is on

        writer = PostgresGalleryWriter(settings.legacy_database_url, table=settings.legacy_table)
        closers.append(writer.close)
        legacy = writer
    service = ImageService(
        objects=storage,
        metadata=metadata,
        claims=metadata,
        executor=executor,
        telemetry=telemetry,
        url_for=_url_builder(settings, storage),
        cache=cache,
        legacy=legacy,
        limits=Limits(
            max_bytes=settings.max_bytes,
            max_pixels=settings.max_pixels,
            max_decode_bytes=settings.max_decode_bytes,
            thumbnail_size=settings.thumbnail_size,
            strip_location=settings.strip_location,
            idempotency_ttl_seconds=settings.idempotency_ttl_seconds,
            idempotency_in_progress_seconds=settings.idempotency_in_progress_seconds,
        ),
        # One gate for every request thread of the process: a few decodes at once, then a queue.
        gate=DecodeGate(
            slots=settings.decode_concurrency,
            queue=settings.decode_queue,
            wait_seconds=settings.decode_wait_seconds,
        ),
        parallel_writes=parallel_writes,
    )
    return Components(
        settings=settings,
        bearer=verifier(settings),
        service=service,
        telemetry=telemetry,
        metadata=metadata,
        storage=storage,
        legacy=legacy,
        closers=closers,
    )


def bootstrap(settings: Settings) -> list[str]:
    """Create the table, the bucket and (with dual-write) the legacy table; idempotent."""
    components = build(settings, sink=NullSink())
    try:
        done = [
            f"table {settings.table}: "
            + ("created" if components.metadata.bootstrap() else "exists"),
            f"bucket {settings.bucket}: "
            + ("created" if components.storage.bootstrap(settings.region) else "exists"),
        ]
        if components.legacy is not None:
            components.legacy.bootstrap()
            done.append(f"table {settings.legacy_table}: ready")
        return done
    finally:
        components.close()


def _sink(settings: Settings, on_lambda: bool, closers: list[Callable[[], None]]) -> MetricSink:
    kind = settings.metrics_sink
    if kind == "auto":
        kind = "emf" if on_lambda else "cloudwatch"
    if kind == "none":
        return NullSink()
    if kind == "emf":
        return EmfSink(settings.metrics_namespace, settings.service_name)
    sink = CloudWatchSink(
        aws.client("cloudwatch", settings),
        settings.metrics_namespace,
        interval=settings.metrics_flush_seconds,
    )
    sink.start()
    closers.append(sink.close)
    return sink


def _url_builder(settings: Settings, storage: S3Storage) -> Callable[[str], str]:
    if settings.cdn_base_url:
        base = settings.cdn_base_url
        return lambda key: f"{base}/{key}"
    return storage.presigned_url
