"""Failed sign-ins limited per user name and per client address, across replicas.

The login form and basic auth check a password; each failure counts against the name tried and
the address it came from, in a window of WATCHTOWER_SIGNIN_WINDOW_SECONDS opened by the first
failure. Past WATCHTOWER_SIGNIN_MAX_FAILURES for a name, or
WATCHTOWER_SIGNIN_MAX_FAILURES_PER_ADDRESS for an address, sign-ins are answered 429 with
`Retry-After` until the window ends, without checking the password (the right one included, so
guessing on cannot tell when it was right). A success clears the name's count. Bearer tokens are
not counted: 32 random bytes are not guessed.

Every failure and refusal is logged (with the name when it is a configured one, never what was
typed otherwise) and counted in `watchtower_signins_total`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any

from watchtower.ledger import Ledger

log = logging.getLogger(__name__)


def _name_key(name: str) -> str:
    digest = hashlib.sha256(name.casefold().encode("utf-8", "surrogatepass")).hexdigest()
    return f"fail:name:{digest[:32]}"


class SigninThrottle:
    def __init__(
        self,
        ledger: Ledger,
        *,
        per_name: int,
        per_address: int,
        window: int,
        counter: Any = None,
        known: Callable[[str], bool] = lambda name: False,
    ) -> None:
        self._ledger = ledger
        self._limits = (per_name, per_address)
        self._window = window
        self._counter = counter
        self._known = known

    def _shown(self, name: str) -> str:
        """The name for the log: a configured one, never what someone typed (a password typed
        into the name field would otherwise be logged)."""
        return repr(name) if self._known(name) else "an unknown name"

    def _keys(self, name: str, address: str) -> tuple[tuple[str, int], tuple[str, int]]:
        return (_name_key(name), self._limits[0]), (f"fail:addr:{address}", self._limits[1])

    def retry_after(self, name: str, address: str, via: str) -> int | None:
        """Seconds until `name` may try again from `address`; None when it may now."""
        for key, limit in self._keys(name, address):
            count, left = self._ledger.peek(key)
            if count >= limit:
                log.warning(
                    "sign-in refused (%s) for %s from %s: %d failures, %d s left",
                    via,
                    self._shown(name),
                    address,
                    count,
                    left,
                )
                self._count(via, "throttled")
                return left
        return None

    def failed(self, name: str, address: str, via: str) -> None:
        for key, _ in self._keys(name, address):
            self._ledger.hit(key, self._window)
        log.warning("failed sign-in (%s) for %s from %s", via, self._shown(name), address)
        self._count(via, "failed")

    def succeeded(self, name: str, via: str) -> None:
        self._ledger.clear(_name_key(name))
        self._count(via, "ok")

    def _count(self, via: str, outcome: str) -> None:
        if self._counter is not None:
            self._counter.labels(via, outcome).inc()
