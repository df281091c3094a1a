"""The configured users (WATCHTOWER_USERS), looked up the cheap way for tokens and by name for
passwords.

A bearer token is a plain secret of at least 32 random bytes (start-up refuses weaker ones), so
it needs no slow hash: its SHA-256 is compared in constant time with each user's, and a wrong
token costs microseconds whatever the number of users. A password (basic auth, the login form)
is checked against the one user it names; a name nobody has is checked against a dummy hash made
the same way as the configured ones, so the time taken does not tell which names exist.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from werkzeug.security import check_password_hash, generate_password_hash

HASHED = ("pbkdf2:", "scrypt:")


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True)
class Account:
    name: str
    role: str
    stored: str = field(repr=False)  # a plain secret, or a werkzeug password hash

    @property
    def hashed(self) -> bool:
        return self.stored.startswith(HASHED)


class Accounts:
    def __init__(self, users: Iterable[tuple[str, str, str]]) -> None:
        accounts = [Account(name, role, stored) for name, role, stored in users]
        self._by_name = {a.name: a for a in accounts}
        # Only plain secrets are tokens: a password hash is never run for a bearer token.
        self._tokens = tuple((_digest(a.stored), a) for a in accounts if not a.hashed)
        methods = [a.stored.split("$", 1)[0] for a in accounts if a.hashed]
        # An unknown name costs what a configured hash costs (none configured: nothing to hide).
        self._dummy = (
            generate_password_hash(secrets.token_urlsafe(16), method=methods[0])
            if methods
            else None
        )

    def get(self, name: str) -> Account | None:
        return self._by_name.get(name)

    def by_token(self, token: str) -> Account | None:
        """The user whose plain secret this is: one SHA-256, constant-time compares."""
        offered = _digest(token)
        found = None
        for digest, account in self._tokens:
            if hmac.compare_digest(digest, offered):
                found = account
        return found

    def by_password(self, name: str, password: str) -> Account | None:
        """The user `name`, when `password` is theirs."""
        account = self._by_name.get(name)
        if account is None:
            if self._dummy is not None:
                check_password_hash(self._dummy, password)
            return None
        if account.hashed:
            ok = check_password_hash(account.stored, password)
        else:
            ok = hmac.compare_digest(_digest(account.stored), _digest(password))
        return account if ok else None
