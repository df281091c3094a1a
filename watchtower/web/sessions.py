"""Login sessions that the server can end: logout, a changed password or role, an admin's
"sign out everywhere", and idleness each end every copy of a session cookie.

The cookie stays Flask's signed cookie; beside the user it carries a random session id, a
fingerprint of the user's configured secret and role (an HMAC under the secret key, so it tells
nothing about the secret), the sign-out generations it was issued under, and when it was issued
and last used. A session is believed only while

* its id has not been ended (logout marks it ended in the ledger, for as long as a cookie lives),
* the user's configured secret and role still give its fingerprint (a password or role change,
  or the user's removal, ends it),
* the generations match (an admin's "sign out everywhere" raises them, for one user or all),
* it was used within WATCHTOWER_SESSION_IDLE_SECONDS, and issued within the cookie's lifetime.

The ledger is Redis when WATCHTOWER_REDIS_URL is set, so every replica sees the same ends.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, MutableMapping
from typing import Any

from watchtower.ledger import Ledger
from watchtower.web.accounts import Account, Accounts

_TOUCH_SECONDS = 60  # how stale `seen` may be before the cookie is re-issued
_EVERYONE = "gen:*"


def _user_key(name: str) -> str:
    return "gen:" + hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class Sessions:
    def __init__(
        self,
        ledger: Ledger,
        *,
        key: bytes,
        idle_seconds: int,
        max_age_seconds: int,
        clock: Callable[[], float],
    ) -> None:
        self._ledger = ledger
        self._key = key
        self._idle = idle_seconds
        self._max_age = max_age_seconds
        self._clock = clock

    def _fingerprint(self, account: Account) -> str:
        message = "\0".join((account.name, account.role, account.stored)).encode(
            "utf-8", "surrogatepass"
        )
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]

    def _generations(self, name: str, sid: str | None = None) -> tuple[list[int], bool]:
        keys = [_EVERYONE, _user_key(name)]
        values = self._ledger.values(*keys, *([f"ended:{sid}"] if sid else []))
        return values[:2], bool(sid and values[2])

    def start(self, session: MutableMapping[str, Any], account: Account) -> None:
        """Sign `account` in on this (fresh) session."""
        now = int(self._clock())
        generations, _ = self._generations(account.name)
        session.clear()
        session["user"] = (account.name, account.role)
        session["sid"] = secrets.token_urlsafe(16)
        session["fp"] = self._fingerprint(account)
        session["gen"] = generations
        session["iat"] = now
        session["seen"] = now

    def resume(self, session: MutableMapping[str, Any], accounts: Accounts) -> Account | None:
        """The signed-in user of this session, or None (and the session emptied) if it ended."""
        try:
            name, role = session["user"]
            sid, fp, issued, seen = session["sid"], session["fp"], session["iat"], session["seen"]
            issued_under = list(session["gen"])
        except (KeyError, TypeError, ValueError):
            account = None  # a cookie from before sessions could be ended: sign in again
        else:
            account = accounts.get(name)
            now = self._clock()
            if (
                account is None
                or account.role != role
                or not hmac.compare_digest(self._fingerprint(account), str(fp))
                or not (now - self._idle <= seen and now - self._max_age <= issued)
            ):
                account = None
            else:
                generations, ended = self._generations(name, str(sid))
                if ended or generations != issued_under:
                    account = None
                elif now - seen >= _TOUCH_SECONDS:
                    session["seen"] = int(now)
        if account is None:
            session.clear()
        return account

    def end(self, session: MutableMapping[str, Any]) -> None:
        """Logout: this session, and every copy of its cookie, ends."""
        sid = session.get("sid")
        if sid:
            self._ledger.mark(f"ended:{sid}", self._max_age)
        session.clear()

    def end_everywhere(self, name: str | None) -> None:
        """Every session of `name` ends (of everyone when None), on every replica."""
        self._ledger.bump(_EVERYONE if name is None else _user_key(name))
