"""The image core's exceptions, one tree.

    ImageCoreError
    ├── ConfigError                 an IMAGE_* setting is invalid (names the variable)
    ├── RequestError                the client's fault; carries the HTTP status and a code
    │   ├── Unauthenticated         401 no caller identity
    │   ├── BadRequest              400 malformed input (names the field)
    │   ├── ImageNotFound           404 no such image for this user
    │   ├── IdempotencyConflict     409 the same key is still in flight
    │   ├── PayloadTooLarge         413 over IMAGE_MAX_BYTES, _MAX_PIXELS or _MAX_DECODE_BYTES
    │   ├── UnsupportedImage        415 not JPEG, PNG, WebP or GIF by content
    │   └── IdempotencyKeyReused    422 the same key with a different payload
    ├── Overloaded                  503 every decode slot busy and the queue full (Retry-After)
    └── DependencyError             a backing service failed (503); adapters raise it `from` the
        ├── StorageError            S3                     client library's exception
        ├── MetadataError           DynamoDB
        └── LegacyWriteError        PostgreSQL (never fails an upload: counted and logged)

Redis errors never leave `cache.py`: the cache is bypassed instead.
"""

from __future__ import annotations


class ImageCoreError(Exception):
    """Base of every error the image core raises on purpose."""


class ConfigError(ImageCoreError):
    """A setting is missing or invalid; the message names the environment variable."""


class RequestError(ImageCoreError):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class Unauthenticated(RequestError):
    status = 401
    code = "unauthenticated"


class BadRequest(RequestError):
    status = 400
    code = "bad_request"


class ImageNotFound(RequestError):
    status = 404
    code = "image_not_found"


class IdempotencyConflict(RequestError):
    status = 409
    code = "idempotency_key_in_use"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PayloadTooLarge(RequestError):
    status = 413
    code = "payload_too_large"


class UnsupportedImage(RequestError):
    status = 415
    code = "unsupported_media_type"


class IdempotencyKeyReused(RequestError):
    status = 422
    code = "idempotency_key_reused"


class Overloaded(ImageCoreError):
    """Too many uploads are being decoded at once: answered 503 with `Retry-After`."""

    status = 503
    code = "busy"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class DependencyError(ImageCoreError):
    status = 503
    code = "dependency_unavailable"
    reason = "dependency"


class StorageError(DependencyError):
    code = "storage_unavailable"
    reason = "s3"


class MetadataError(DependencyError):
    code = "metadata_unavailable"
    reason = "dynamodb"


class LegacyWriteError(DependencyError):
    code = "legacy_write_failed"
    reason = "postgresql"
