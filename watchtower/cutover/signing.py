"""Signing a cutover window and its report: who signs (one login, one role), the frozen report,
its verification. A part of `CutoverService` (watchtower.cutover.service), split out to keep each
class small; every method takes `now`."""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from watchtower.config import Settings
from watchtower.cutover.canonical import canonical, sha256, text_sha256, verify_chain
from watchtower.cutover.config import CutoverSettings
from watchtower.cutover.document import evidence_hash, window_document
from watchtower.cutover.errors import NotSigner, Refused
from watchtower.cutover.judge import State, Verdict
from watchtower.cutover.model import (
    CloseReason,
    SignOff,
    StoredReport,
    Window,
)
from watchtower.cutover.store import CutoverStore

log = logging.getLogger(__name__)

MAX_TEXT = 2000  # characters of a comment or reason
MAX_NAME = 200
PREFLIGHT_FRESH = timedelta(days=1)  # an older pre-flight is not the one this flip followed


@dataclass(frozen=True, kw_only=True)
class Verification:
    ok: bool
    problems: tuple[str, ...]
    sha256: str


@dataclass(frozen=True, kw_only=True)
class Report:
    """A window's report: frozen (signed) with its verification, or a live draft."""

    document: dict[str, Any]
    sha256: str
    frozen: bool
    verification: Verification | None = None


def _text(value: str, what: str, *, limit: int = MAX_TEXT, required: bool = False) -> str:
    value = (value or "").strip()
    if required and not value:
        raise Refused(f"{what} is required")
    if len(value) > limit:
        raise Refused(f"{what} is longer than {limit} characters")
    if any(ord(c) < 32 and c not in "\n\t" for c in value):
        raise Refused(f"{what} has control characters")
    return value


class Signing:
    """Sign-offs and reports, over the service's store and settings."""

    settings: Settings
    cutover: CutoverSettings
    store: CutoverStore

    # The service judges and finds windows; these say what signing reads of it.
    def verdict(self, window_id: str | None = None, *, now: datetime) -> Verdict:
        raise NotImplementedError

    def window(self, window_id: str | None = None) -> Window:
        raise NotImplementedError

    def signoffs(self, window_id: str) -> list[SignOff]:
        return [
            SignOff(
                window_id=window_id,
                name=e.detail["name"],
                role=e.detail["role"],
                comment=e.detail.get("comment", ""),
                at=e.at,
                user=e.actor,
                evidence_hash=e.detail["evidence_hash"],
                via=e.detail.get("via"),
            )
            for e in self.store.audit(window_id)
            if e.action == "signed"
        ]

    def _preflight_at_open(self, window_id: str) -> dict[str, Any] | None:
        """The pre-flight summary recorded last before the window opened, if any."""
        window = self.store.window(window_id)
        earliest = window.recorded_at - PREFLIGHT_FRESH
        found = None
        for entry in self.store.audit():
            if entry.at > window.recorded_at:
                break
            if entry.action in ("preflight", "override") and entry.at >= earliest:
                found = {
                    **entry.detail.get("summary", {}),
                    "decision": entry.detail.get("decision"),
                }
        return found

    def document(self, window_id: str | None = None, *, now: datetime) -> dict[str, Any]:
        verdict = self.verdict(window_id, now=now)
        return window_document(
            verdict, cutover=self.cutover, preflight=self._preflight_at_open(verdict.window.id)
        )

    def sign(
        self,
        window_id: str,
        *,
        name: str,
        role: str,
        comment: str,
        user: str,
        via: str | None = None,
        now: datetime,
    ) -> SignOff:
        """Record `user`'s sign-off (the login, signed in `via`; `name` is as typed) for `role`;
        the last one required freezes the report. One login signs one role (docs/cutover.md)."""
        name = _text(name, "the name", limit=MAX_NAME, required=True)
        comment = _text(comment, "the comment")
        user = _text(user, "the signed-in user", limit=MAX_NAME, required=True)
        verdict = self.verdict(window_id, now=now)
        if not verdict.can_sign:
            raise Refused(verdict.refusal or "this window cannot be signed")
        if role not in verdict.missing_roles:
            signed = role in verdict.required_roles
            raise Refused(
                f"the {role!r} role has signed already"
                if signed
                else f"{role!r} is not a required role ({', '.join(verdict.required_roles)})"
            )
        allowed = self.cutover.allowed_signers(role)
        if allowed is not None and user not in allowed:
            raise NotSigner(
                f"{user} may not sign as {role!r}: WATCHTOWER_CUTOVER_SIGNER_USERS lets only "
                f"{', '.join(allowed)} sign it"
            )
        for earlier in (s for s in verdict.signoffs if s.user.casefold() == user.casefold()):
            raise Refused(
                f"{user} has signed this window already, as {earlier.role!r}: one login, one role"
            )
        if any(s.name.casefold() == name.casefold() for s in verdict.signoffs):
            raise Refused(f"{name} has signed this window already, for another role")
        document = window_document(
            verdict, cutover=self.cutover, preflight=self._preflight_at_open(window_id)
        )
        digest = evidence_hash(document)
        entry = self.store.append(
            at=now,
            actor=user,
            action="signed",
            window_id=window_id,
            detail=dict(name=name, role=role, comment=comment, evidence_hash=digest, via=via),
        )
        signoff = SignOff(
            window_id=window_id,
            name=name,
            role=role,
            comment=comment,
            at=entry.at,
            user=user,
            evidence_hash=digest,
            via=via,
        )
        after = self.verdict(window_id, now=now)
        if after.state is State.SIGNED and self.store.report(window_id) is None:
            # A sign-off at the same moment may have frozen it first.
            with contextlib.suppress(Refused):
                self._freeze(window_id, now=now, user=user)
        return signoff

    def _freeze(self, window_id: str, *, now: datetime, user: str) -> StoredReport:
        verdict = self.verdict(window_id, now=now)
        if verdict.state is not State.SIGNED:
            raise Refused(f"the window is {verdict.state.value}, not signed: nothing to freeze")
        document = window_document(
            verdict, cutover=self.cutover, preflight=self._preflight_at_open(window_id)
        )
        text = canonical(document)
        report = StoredReport(
            window_id=window_id, frozen_at=now, document=text, sha256=text_sha256(text)
        )
        self.store.freeze(report)
        self.store.append(
            at=now,
            actor=user,
            action="report-frozen",
            window_id=window_id,
            detail={"sha256": report.sha256, "state": verdict.state.value},
        )
        self.store.close(
            window_id,
            reason=CloseReason.SIGNED,
            by=user,
            at=now,
            comment="every required stakeholder signed",
        )
        return report

    def report(self, window_id: str | None = None, *, now: datetime) -> Report:
        """The frozen report, verified on read, or a live draft when the window is not signed."""
        window = self.window(window_id)
        stored = self.store.report(window.id)
        if stored is None:
            document = self.document(window.id, now=now)
            return Report(document=document, sha256=sha256(document), frozen=False)
        return Report(
            document=json.loads(stored.document),
            sha256=stored.sha256,
            frozen=True,
            verification=self.verify(stored),
        )

    def verify(self, stored: StoredReport) -> Verification:
        """Does the stored report still say what was signed? Three independent witnesses: the
        document's own hash, the hash written in the audit log when it was frozen, and the log's
        chain."""
        problems = []
        recomputed = text_sha256(stored.document)
        try:
            if canonical(json.loads(stored.document)) != stored.document:
                problems.append("the stored document is not in canonical form: it was rewritten")
        except ValueError:
            problems.append("the stored document is not valid JSON")
        if recomputed != stored.sha256:
            problems.append(
                f"the document's sha256 is {recomputed}, not the {stored.sha256} recorded with "
                "it: it was edited after it was frozen"
            )
        log_entries = self.store.audit()
        frozen = [
            e
            for e in log_entries
            if e.action == "report-frozen" and e.window_id == stored.window_id
        ]
        if not frozen:
            problems.append("the audit log has no record of this report being frozen")
        elif frozen[-1].detail.get("sha256") != recomputed:
            problems.append(
                f"the audit log recorded sha256 {frozen[-1].detail.get('sha256')} when it was "
                "frozen: the report was edited since"
            )
        problems.extend(verify_chain(log_entries))
        return Verification(ok=not problems, problems=tuple(problems), sha256=recomputed)
