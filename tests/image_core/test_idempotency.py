"""The Idempotency-Key rules (image_core/idempotency.py): pure, no store, no clock."""

from __future__ import annotations

from dataclasses import replace

import pytest

from image_core import idempotency
from image_core.errors import BadRequest, IdempotencyConflict, IdempotencyKeyReused
from image_core.idempotency import IdempotencyRecord, is_live, judge_existing, validate_key

NOW = 1_700_000_000.0
BODY = {"id": "0" * 32, "content_type": "image/jpeg"}


def record(**changes: object) -> IdempotencyRecord:
    base = idempotency.new_claim(
        user_id="alice",
        key="k-1",
        fingerprint=idempotency.fingerprint(b"payload"),
        token="t-1",
        now=NOW,
        ttl_seconds=86400,
        in_progress_seconds=60,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def completed(**changes: object) -> IdempotencyRecord:
    return record(status="completed", response_status=201, response_body=BODY, **changes)


# -- validate_key ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("k", "k"),
        ("  padded  ", "padded"),
        ("8e03978e-40d5-43e8-bc93-6894a57f9324", "8e03978e-40d5-43e8-bc93-6894a57f9324"),
        ("x" * 255, "x" * 255),
        ('a b:c/d"e', 'a b:c/d"e'),
    ],
)
def test_valid_keys_are_accepted(raw: str, expected: str) -> None:
    assert validate_key(raw, required=False) == expected
    assert validate_key(raw, required=True) == expected


@pytest.mark.parametrize("raw", ["", "   ", "x" * 256, "caf\u00e9", "tab\there", "new\nline"])
def test_malformed_keys_are_rejected(raw: str) -> None:
    with pytest.raises(BadRequest) as caught:
        validate_key(raw, required=False)
    assert caught.value.code == "invalid_idempotency_key" and caught.value.status == 400


def test_a_missing_key_is_fine_unless_required() -> None:
    assert validate_key(None, required=False) is None
    with pytest.raises(BadRequest) as caught:
        validate_key(None, required=True)
    assert caught.value.code == "idempotency_key_required"


# -- claims ---------------------------------------------------------------------------------------


def test_new_claim_is_in_progress_with_both_deadlines() -> None:
    claim = record()
    assert claim.status == "in_progress" and claim.response_body is None
    assert claim.expires_at == NOW + 86400
    assert claim.in_progress_until == NOW + 60


def test_fingerprint_tells_payloads_apart() -> None:
    assert idempotency.fingerprint(b"a") == idempotency.fingerprint(b"a")
    assert idempotency.fingerprint(b"a") != idempotency.fingerprint(b"b")


# -- judge_existing -------------------------------------------------------------------------------


def test_completed_with_same_payload_replays_200_with_the_first_body() -> None:
    replay = judge_existing(completed(), fingerprint=record().fingerprint, now=NOW + 5)
    assert replay.status == 200  # the seed's choice; the IETF draft would replay the 201
    assert replay.body == BODY


def test_different_payload_is_422_whatever_the_state() -> None:
    other = idempotency.fingerprint(b"other payload")
    for existing in (completed(), record()):
        with pytest.raises(IdempotencyKeyReused) as caught:
            judge_existing(existing, fingerprint=other, now=NOW + 5)
        assert caught.value.status == 422 and caught.value.code == "idempotency_key_reused"


def test_in_flight_is_409_with_retry_after_until_the_claim_lapses() -> None:
    with pytest.raises(IdempotencyConflict) as caught:
        judge_existing(record(), fingerprint=record().fingerprint, now=NOW + 15.2)
    assert caught.value.status == 409
    assert caught.value.retry_after == 45  # ceil(60 - 15.2)


def test_retry_after_is_at_least_one_second() -> None:
    with pytest.raises(IdempotencyConflict) as caught:
        judge_existing(record(), fingerprint=record().fingerprint, now=NOW + 59.99)
    assert caught.value.retry_after == 1
    with pytest.raises(IdempotencyConflict) as caught:
        judge_existing(record(), fingerprint=record().fingerprint, now=NOW + 120)
    assert caught.value.retry_after == 1


def test_completed_without_a_stored_body_is_treated_as_in_flight() -> None:
    broken = record(status="completed", response_status=201, response_body=None)
    with pytest.raises(IdempotencyConflict):
        judge_existing(broken, fingerprint=record().fingerprint, now=NOW + 1)


# -- is_live --------------------------------------------------------------------------------------


def test_an_in_progress_claim_is_live_until_its_in_progress_deadline() -> None:
    claim = record()
    assert is_live(claim, now=NOW)
    assert is_live(claim, now=NOW + 59.9)
    assert not is_live(claim, now=NOW + 60)  # lapsed: a crashed request's retry may proceed
    assert not is_live(claim, now=NOW + 3600)


def test_a_completed_record_is_live_until_it_expires() -> None:
    done = completed()
    assert is_live(done, now=NOW + 3600)  # well past the in-progress deadline
    assert is_live(done, now=NOW + 86399)
    assert not is_live(done, now=NOW + 86400)  # expired, though the store has not swept it


def test_an_expired_in_progress_record_is_not_live() -> None:
    odd = record(in_progress_until=NOW + 200_000)  # in-progress deadline past the TTL
    assert not is_live(odd, now=NOW + 86400)
