"""Bearer JWTs, verified by the image API itself when it runs as a server.

On Lambda, API Gateway's HTTP API JWT authorizer verifies the token and hands the claims over
(api.py reads them). Served any other way, the API verifies `Authorization: Bearer <JWT>`
itself with PyJWT: the signature (keys from the issuer's JWKS URL, cached, or a shared HS256
key for tests and the local demo), the issuer, the audience, and an expiry, which is required.
The caller is the token's `sub`. A token is never logged; a refusal says why, not what.
"""

from __future__ import annotations

from typing import Any

import jwt

from image_core.config import Settings
from image_core.errors import Unauthenticated

ASYMMETRIC = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]
LEEWAY_SECONDS = 30  # clock skew allowed on exp, nbf, iat


class BearerVerifier:
    """Verifies one issuer's tokens for one audience; `user(header)` is the caller or None."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks_url: str | None = None,
        shared_key: str | None = None,
    ) -> None:
        if (jwks_url is None) == (shared_key is None):
            raise ValueError("give a JWKS URL or a shared key, exactly one")
        self.issuer = issuer
        self.audience = audience
        self._shared_key = shared_key
        self._jwks = (
            jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300, timeout=5)
            if jwks_url
            else None
        )

    def _key(self, token: str) -> Any:
        if self._jwks is None:
            return self._shared_key
        try:
            return self._jwks.get_signing_key_from_jwt(token).key
        except jwt.PyJWKClientError as exc:
            raise Unauthenticated(f"the bearer token's signing key is not known: {exc}") from None

    def user(self, authorization: str | None) -> str | None:
        """The verified token's subject; None without a bearer token; Unauthenticated (401)
        for a token that does not verify (bad signature, issuer, audience, expired)."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        token = token.strip()
        try:
            claims = jwt.decode(
                token,
                self._key(token),
                algorithms=["HS256"] if self._jwks is None else ASYMMETRIC,
                issuer=self.issuer,
                audience=self.audience,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the bearer token has expired") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"the bearer token is not valid: {exc}") from None
        return str(claims["sub"])


def verifier(settings: Settings) -> BearerVerifier | None:
    """The verifier the settings configure (IMAGE_JWT_*), or None: bearer tokens not read."""
    if not settings.jwt_issuer:
        return None
    return BearerVerifier(
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience or "",
        jwks_url=settings.jwt_jwks_url,
        shared_key=settings.jwt_shared_key,
    )
