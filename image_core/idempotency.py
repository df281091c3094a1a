"""Idempotency-Key rules for uploads (Story 6.3; IETF httpapi idempotency-key draft). Pure.

A key is claimed with one conditional write, so it holds across processes. What a second request
with the same key gets is decided here:

* same payload, first one finished    -> 200 with the first response's body, `Idempotent-Replayed`
  (the seed asks for 200 on replay; the IETF draft would replay the 201 itself)
* same payload, first one in flight   -> 409 with Retry-After
* different payload, in any state     -> 422
A claim left in flight by a crashed request lapses after the in-progress timeout; a failed upload
releases its key; a finished one is remembered for the key's TTL (24 h by default).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from image_core.errors import BadRequest, IdempotencyConflict, IdempotencyKeyReused

MAX_KEY_LENGTH = 255

Status = Literal["in_progress", "completed"]


@dataclass(frozen=True, kw_only=True)
class IdempotencyRecord:
    user_id: str
    key: str
    fingerprint: str
    status: Status
    token: str
    expires_at: float  # the record as a whole (TTL)
    in_progress_until: float  # a claim older than this may be taken over
    response_status: int | None = None
    response_body: dict[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class Claimed:
    token: str


@dataclass(frozen=True, kw_only=True)
class Replay:
    status: int
    body: dict[str, Any]


class IdempotencyStore(Protocol):
    def claim(self, record: IdempotencyRecord, *, now: float) -> IdempotencyRecord | None:
        """Write `record` unless a live one holds the key; return that live one, else None."""

    def release(self, user_id: str, key: str, token: str) -> None:
        """Forget a claim that `token` still holds, so a retry runs again."""


def validate_key(raw: str | None, *, required: bool) -> str | None:
    if raw is None:
        if required:
            raise BadRequest(
                "the Idempotency-Key header is required", code="idempotency_key_required"
            )
        return None
    key = raw.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable() or not key.isascii():
        raise BadRequest(
            f"the Idempotency-Key header must be 1 to {MAX_KEY_LENGTH} printable ASCII characters",
            code="invalid_idempotency_key",
        )
    return key


def fingerprint(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def new_claim(
    *,
    user_id: str,
    key: str,
    fingerprint: str,
    token: str,
    now: float,
    ttl_seconds: int,
    in_progress_seconds: int,
) -> IdempotencyRecord:
    return IdempotencyRecord(
        user_id=user_id,
        key=key,
        fingerprint=fingerprint,
        status="in_progress",
        token=token,
        expires_at=now + ttl_seconds,
        in_progress_until=now + in_progress_seconds,
    )


def is_live(record: IdempotencyRecord, *, now: float) -> bool:
    """Whether `record` still holds its key (stores do not expire records on time)."""
    if record.expires_at <= now:
        return False
    return record.status == "completed" or record.in_progress_until > now


def judge_existing(existing: IdempotencyRecord, *, fingerprint: str, now: float) -> Replay:
    """What a request meets when a live record already holds its key. Raises unless a replay."""
    if existing.fingerprint != fingerprint:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was already used with a different payload; "
            "use a new key for a new upload"
        )
    if existing.status == "in_progress" or existing.response_body is None:
        retry_after = max(1, math.ceil(existing.in_progress_until - now))
        raise IdempotencyConflict(
            "a request with this Idempotency-Key is still in progress", retry_after=retry_after
        )
    return Replay(status=200, body=existing.response_body)
