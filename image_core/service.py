"""Upload, get, list and delete: the orchestration, over small ports. No I/O of its own."""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Executor, wait
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from image_core import idempotency, images, location
from image_core.decoding import DecodeGate
from image_core.errors import DependencyError, ImageCoreError, ImageNotFound
from image_core.idempotency import IdempotencyStore
from image_core.model import ImageRecord, Page
from image_core.telemetry import Telemetry

log = logging.getLogger(__name__)


class ObjectStore(Protocol):
    def put(self, key: str, data: bytes, content_type: str) -> None: ...
    def delete(self, keys: list[str]) -> None: ...


class MetadataStore(Protocol):
    def put_image(
        self,
        record: ImageRecord,
        *,
        claim: idempotency.IdempotencyRecord | None = None,
        response_status: int = 201,
        response_body: dict[str, Any] | None = None,
    ) -> None: ...
    def get_image(self, image_id: str) -> ImageRecord | None: ...
    def delete_image(self, record: ImageRecord) -> bool: ...
    def list_images(self, user_id: str, *, limit: int, cursor: str | None) -> Page: ...


@dataclass(frozen=True)
class Lookup:
    page: dict[str, Any] | None
    generation: str | None  # None: the cache could not be read, so do not fill it either


class GalleryCache(Protocol):
    def get_page(self, user_id: str, limit: int, cursor: str | None) -> Lookup: ...
    def put_page(
        self, user_id: str, limit: int, cursor: str | None, page: dict[str, Any], generation: str
    ) -> None: ...
    def invalidate_user(self, user_id: str) -> None: ...


class LegacyWriter(Protocol):
    def insert(self, record: ImageRecord) -> None: ...
    def delete(self, image_id: str) -> None: ...


@dataclass(frozen=True, kw_only=True)
class UploadResult:
    status: int  # 201 created, 200 replayed
    body: dict[str, Any]
    replayed: bool


@dataclass(frozen=True, kw_only=True)
class Limits:
    max_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 50_000_000
    max_decode_bytes: int = images.MAX_DECODE_BYTES
    thumbnail_size: int = 400
    strip_location: bool = True
    idempotency_ttl_seconds: int = 24 * 3600
    idempotency_in_progress_seconds: int = 60


class ImageService:
    def __init__(
        self,
        *,
        objects: ObjectStore,
        metadata: MetadataStore,
        claims: IdempotencyStore,
        executor: Executor,
        telemetry: Telemetry,
        url_for: Callable[[str], str],
        cache: GalleryCache | None = None,
        legacy: LegacyWriter | None = None,
        limits: Limits = Limits(),
        gate: DecodeGate | None = None,
        clock: Callable[[], float] = time.time,
        parallel_writes: bool = True,
    ) -> None:
        self._objects = objects
        self._metadata = metadata
        self._claims = claims
        self._executor = executor
        self._telemetry = telemetry
        self._url_for = url_for
        self._cache = cache
        self._legacy = legacy
        self.limits = limits
        self.gate = gate
        self._clock = clock
        self._parallel_writes = parallel_writes

    # -- upload -------------------------------------------------------------------------------

    def upload(
        self,
        *,
        user_id: str,
        data: bytes,
        idempotency_key: str | None = None,
        synthetic: bool = False,
    ) -> UploadResult:
        claim = None
        if idempotency_key is not None:
            now = self._clock()
            claim = idempotency.new_claim(
                user_id=user_id,
                key=idempotency_key,
                fingerprint=idempotency.fingerprint(data),
                token=uuid.uuid4().hex,
                now=now,
                ttl_seconds=self.limits.idempotency_ttl_seconds,
                in_progress_seconds=self.limits.idempotency_in_progress_seconds,
            )
            existing = self._claims.claim(claim, now=now)
            if existing is not None:
                replay = idempotency.judge_existing(
                    existing, fingerprint=claim.fingerprint, now=now
                )
                return UploadResult(status=replay.status, body=replay.body, replayed=True)
        try:
            result = self._store(user_id, data, claim, synthetic)
        except BaseException:
            if claim is not None:
                self._release(claim)
            raise
        return result

    def _store(
        self,
        user_id: str,
        data: bytes,
        claim: idempotency.IdempotencyRecord | None,
        synthetic: bool,
    ) -> UploadResult:
        processed = images.process(
            data,
            max_pixels=self.limits.max_pixels,
            max_decode_bytes=self.limits.max_decode_bytes,
            thumbnail_size=self.limits.thumbnail_size,
            decode_slot=self.gate.slot if self.gate is not None else nullcontext,
        )
        if self.limits.strip_location:
            # The stored original, as served: its size and digest are of these bytes.
            data = location.strip_location(data, processed.content_type)
        image_id = uuid.uuid4().hex
        thumb_ext = "png" if processed.thumbnail_content_type == "image/png" else "jpg"
        record = ImageRecord(
            image_id=image_id,
            user_id=user_id,
            created_at=datetime.fromtimestamp(self._clock(), UTC),
            content_type=processed.content_type,
            size_bytes=len(data),
            width=processed.width,
            height=processed.height,
            original_key=f"originals/{user_id}/{image_id}.{processed.extension}",
            thumbnail_key=f"thumbnails/{user_id}/{image_id}.{thumb_ext}",
            thumbnail_content_type=processed.thumbnail_content_type,
            thumbnail_width=processed.thumbnail_width,
            thumbnail_height=processed.thumbnail_height,
            sha256=hashlib.sha256(data).hexdigest(),
            synthetic=synthetic,
        )
        writes = [
            (record.original_key, data, record.content_type),
            (record.thumbnail_key, processed.thumbnail, record.thumbnail_content_type),
        ]
        self._put_objects(writes)
        body = self.describe(record)
        try:
            self._metadata.put_image(record, claim=claim, response_status=201, response_body=body)
        except BaseException:
            self._remove_objects([record.original_key, record.thumbnail_key])
            raise
        self._mirror(lambda legacy: legacy.insert(record), image_id)
        self._invalidate(user_id)
        return UploadResult(status=201, body=body, replayed=False)

    def _put_objects(self, writes: list[tuple[str, bytes, str]]) -> None:
        """Write every object, in parallel; if any write fails, remove them all and raise."""
        if self._parallel_writes:
            futures = [self._executor.submit(self._objects.put, *w) for w in writes]
            wait(futures)
            errors = [f.exception() for f in futures if f.exception() is not None]
        else:
            errors = []
            for w in writes:
                try:
                    self._objects.put(*w)
                except ImageCoreError as exc:
                    errors.append(exc)
                    break
        if errors:
            # Delete every key, written or not: a write that "failed" on a timeout may have landed.
            self._remove_objects([key for key, _, _ in writes])
            raise errors[0]  # type: ignore[misc]

    def _remove_objects(self, keys: list[str]) -> None:
        try:
            self._objects.delete(keys)
        except DependencyError as exc:
            self._telemetry.orphan_cleanup_failed()
            log.error("orphan objects left behind, remove by hand: %s (%s)", keys, exc)

    def _release(self, claim: idempotency.IdempotencyRecord) -> None:
        try:
            self._claims.release(claim.user_id, claim.key, claim.token)
        except DependencyError as exc:
            # The claim lapses by itself after the in-progress timeout.
            log.warning("cannot release Idempotency-Key %r: %s", claim.key, exc)

    # -- read ---------------------------------------------------------------------------------

    def get(self, *, user_id: str, image_id: str) -> dict[str, Any]:
        return self.describe(self._owned(user_id, image_id))

    def list(self, *, user_id: str, limit: int, cursor: str | None) -> dict[str, Any]:
        lookup = self._cache.get_page(user_id, limit, cursor) if self._cache else None
        if lookup is not None and lookup.page is not None:
            return lookup.page
        page = self._metadata.list_images(user_id, limit=limit, cursor=cursor)
        body = {"items": [self.describe(r) for r in page.items], "next_cursor": page.next_cursor}
        if self._cache is not None and lookup is not None and lookup.generation is not None:
            # Stored under the generation read before the query: if an upload invalidated the
            # gallery meanwhile, this page is born unreachable instead of stale.
            self._cache.put_page(user_id, limit, cursor, body, lookup.generation)
        return body

    # -- delete -------------------------------------------------------------------------------

    def delete(self, *, user_id: str, image_id: str) -> None:
        record = self._owned(user_id, image_id)
        # Record first: a record without its files is worse than files without a record, and a
        # failed object delete is counted and logged for clean-up.
        if not self._metadata.delete_image(record):
            raise ImageNotFound(f"image {image_id!r} not found")
        self._remove_objects([record.original_key, record.thumbnail_key])
        self._mirror(lambda legacy: legacy.delete(image_id), image_id)
        self._invalidate(user_id)

    # -- helpers ------------------------------------------------------------------------------

    def describe(self, record: ImageRecord) -> dict[str, Any]:
        return {
            "id": record.image_id,
            "content_type": record.content_type,
            "size_bytes": record.size_bytes,
            "width": record.width,
            "height": record.height,
            "created_at": record.created_at.isoformat(timespec="milliseconds").replace(
                "+00:00", "Z"
            ),
            "sha256": record.sha256,
            "original_url": self._url_for(record.original_key),
            "thumbnail": {
                "url": self._url_for(record.thumbnail_key),
                "content_type": record.thumbnail_content_type,
                "width": record.thumbnail_width,
                "height": record.thumbnail_height,
            },
        }

    def _owned(self, user_id: str, image_id: str) -> ImageRecord:
        record = self._metadata.get_image(image_id) if _plausible_id(image_id) else None
        if record is None or record.user_id != user_id:
            # Another user's image is "not found" too: its existence is not disclosed.
            raise ImageNotFound(f"image {image_id!r} not found")
        return record

    def _mirror(self, write: Callable[[LegacyWriter], None], image_id: str) -> None:
        """The legacy dual-write: DynamoDB is the source of truth, so a failure is only counted."""
        if self._legacy is None:
            return
        try:
            write(self._legacy)
        except DependencyError as exc:
            self._telemetry.dual_write(ok=False, reason=exc.reason)
            log.error("dual-write to PostgreSQL failed for image %s: %s", image_id, exc)
            return
        self._telemetry.dual_write(ok=True)

    def _invalidate(self, user_id: str) -> None:
        if self._cache is not None:
            self._cache.invalidate_user(user_id)


def _plausible_id(image_id: str) -> bool:
    return len(image_id) == 32 and all(c in "0123456789abcdef" for c in image_id)
