"""How guessable a configured secret is, estimated from its length and character classes.

The estimate is deliberately conservative: a secret is credited with log2 of the size of the
character classes it uses (lower case, upper case, digits, `-`/`_`, other punctuation) per
character, at most what is left of it once compressed (zlib, 8 bits a byte, less the format's
overhead), and nothing under ten distinct characters, so `aaaa…` or `changeme` repeated does not
pass for random. `secrets.token_urlsafe(32)` (43
characters, about 256 bits) and `secrets.token_hex(32)` (64 characters) pass; a word, a
name or a short phrase does not.
"""

from __future__ import annotations

import math
import string
import zlib

from watchtower.errors import ConfigError

MIN_BITS = 256  # 32 bytes
GENERATE = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'
_CLASSES = (
    frozenset(string.ascii_lowercase),
    frozenset(string.ascii_uppercase),
    frozenset(string.digits),
    frozenset("-_"),
)
_URLSAFE = frozenset().union(*_CLASSES)  # secrets.token_urlsafe's alphabet, 64 characters
_OTHER = 32  # the rest of printable ASCII punctuation, and anything else, counted as one class
_MIN_DISTINCT = 10
_ZLIB_OVERHEAD = 8  # bytes of header, checksum and block header around what a secret holds


def estimated_bits(secret: str) -> float:
    """A lower-bound guess at the entropy of `secret`, in bits."""
    if len(set(secret)) < _MIN_DISTINCT:
        return 0.0
    pool = sum(len(chars) for chars in _CLASSES if chars.intersection(secret))
    used = set(secret)
    if used <= _URLSAFE and used & _CLASSES[0] and used & _CLASSES[1]:
        # Both cases from base64url's alphabet only: a generated token, credited with the whole
        # alphabet even when chance left out its digits or `-`/`_` (1 token_urlsafe(32) in 1,500
        # has no digit; judged by the classes present, it would be refused).
        pool = len(_URLSAFE)
    if any(not any(c in chars for chars in _CLASSES) for c in secret):
        pool += _OTHER
    compressed = len(zlib.compress(secret.encode("utf-8", "surrogatepass"), 9)) - _ZLIB_OVERHEAD
    return min(len(secret) * math.log2(pool), 8.0 * compressed)


def require_strong(variable: str, secret: str, what: str = "the value") -> str:
    """`secret`, or a ConfigError naming `variable` when it is under 32 bytes of entropy."""
    bits = estimated_bits(secret)
    if bits < MIN_BITS:
        raise ConfigError(
            f"{variable}: {what} is too weak (about {int(bits)} bits of entropy; at least "
            f"{MIN_BITS} are needed, 32 random bytes). Generate one with: {GENERATE}"
        )
    return secret
