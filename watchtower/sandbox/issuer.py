"""The sandbox's local token issuer: what an identity provider is to a real deployment.

The image API verifies bearer JWTs with a key only the issuer and it share (HS256, a random key
per sandbox, kept in a file only its owner reads); the traffic generator signs its users' tokens
with it, and Watchtower's probe gets its own from `python -m watchtower.sandbox.issuer KEYFILE
SUBJECT`, the command the demo configures as WATCHTOWER_PROBE_TOKEN_COMMAND. Nobody in the
sandbox is believed on an `X-User-Id` header.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from pathlib import Path

import jwt

ISSUER = "http://sandbox.watchtower.invalid/issuer"
AUDIENCE = "image-api"
LIFETIME_SECONDS = 900  # short, so the probe's refresh before expiry is exercised in the demo


class LocalIssuer:
    def __init__(self, key_file: Path, key: str | None = None) -> None:
        self.key_file = key_file
        if key is None:
            key = secrets.token_urlsafe(48)
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(key)
        self._key = key

    @classmethod
    def load(cls, key_file: Path) -> LocalIssuer:
        return cls(key_file, key_file.read_text(encoding="utf-8").strip())

    def token(self, subject: str, *, lifetime: int = LIFETIME_SECONDS) -> str:
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": subject, "iat": now, "exp": now + lifetime}
        return jwt.encode(claims, self._key, algorithm="HS256")

    def image_api_environment(self) -> dict[str, str]:
        """What the image API verifies tokens with."""
        return {
            "IMAGE_JWT_ISSUER": ISSUER,
            "IMAGE_JWT_AUDIENCE": AUDIENCE,
            "IMAGE_JWT_SHARED_KEY": self._key,
        }

    def command(self, subject: str) -> str:
        """The token command for `subject` (WATCHTOWER_PROBE_TOKEN_COMMAND)."""
        return f"{sys.executable} -m watchtower.sandbox.issuer {self.key_file} {subject}"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m watchtower.sandbox.issuer KEYFILE SUBJECT", file=sys.stderr)
        return 2
    print(LocalIssuer.load(Path(argv[0])).token(argv[1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
