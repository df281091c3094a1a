"""The cutover sign-off's exceptions, one tree under watchtower.errors.WatchtowerError.

CutoverError
├── NoWindow        no cutover window has that id (or none was ever opened)
├── Refused         the window's state does not allow this now (the message says why and when)
│   └── NotSigner   this login may not sign that role (WATCHTOWER_CUTOVER_SIGNER_USERS)
└── ReportTampered  a frozen report's content no longer matches its recorded sha256
"""

from __future__ import annotations

from watchtower.errors import WatchtowerError


class CutoverError(WatchtowerError):
    """Base of every error the cutover sign-off raises on purpose."""


class NoWindow(CutoverError, LookupError):
    pass


class Refused(CutoverError):
    pass


class NotSigner(Refused):
    pass


class ReportTampered(CutoverError):
    pass
