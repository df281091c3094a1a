"""Canonical JSON and content hashes: what makes a frozen report and the audit log tamper-evident.

Canonical JSON is `json.dumps` with sorted keys, no insignificant whitespace, UTF-8 and no NaN:
the same document always gives the same bytes, so its sha256 identifies its content. The audit
log chains every entry to the one before (`prev_hash`), so an edited or deleted line breaks the
chain from there on. Pure.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from watchtower.cutover.model import AuditEntry, iso

GENESIS = "0" * 64  # the prev_hash of the first audit entry


def canonical(document: Any) -> str:
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def sha256(document: Any) -> str:
    return hashlib.sha256(canonical(document).encode("utf-8")).hexdigest()


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def entry_hash(
    *,
    prev_hash: str,
    at: Any,
    actor: str,
    action: str,
    window_id: str | None,
    detail: Mapping[str, Any],
) -> str:
    return sha256(
        {
            "prev": prev_hash,
            "at": iso(at),
            "actor": actor,
            "action": action,
            "window_id": window_id,
            "detail": dict(detail),
        }
    )


def verify_chain(entries: Iterable[AuditEntry]) -> list[str]:
    """Problems with the audit log, oldest first; empty when every link holds."""
    problems = []
    expected_prev = GENESIS
    for entry in entries:
        if entry.prev_hash != expected_prev:
            problems.append(
                f"audit entry {entry.id} ({entry.action}) does not follow the entry before it: "
                "an entry was removed or reordered"
            )
        recomputed = entry_hash(
            prev_hash=entry.prev_hash,
            at=entry.at,
            actor=entry.actor,
            action=entry.action,
            window_id=entry.window_id,
            detail=entry.detail,
        )
        if recomputed != entry.hash:
            problems.append(
                f"audit entry {entry.id} ({entry.action}) was edited after it was written"
            )
        expected_prev = entry.hash
    return problems
