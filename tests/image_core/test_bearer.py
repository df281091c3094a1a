"""The image API as a server verifies bearer JWTs itself (image_core/auth.py), with
IMAGE_TRUST_USER_HEADER off: the probe signs in with its token, a wrong or expired one is a 401,
and the synthetic marker counts only for the probe's identity, never from a user's own token."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from image_core.app import Components
from image_core.config import ConfigError, Settings
from tests.helpers import image_bytes
from tests.image_core.test_image_security import client_for, traffic_of_uploads, upload

MakeComponents = Callable[..., Components]
ISSUER = "https://issuer.test"
AUDIENCE = "image-api"
KEY = "k" * 40  # the shared HS256 key of these tests
PROBE = "watchtower-probe"


def token(
    sub: str, *, key: Any = KEY, alg: str = "HS256", expires_in: int = 300, **over: Any
) -> str:
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "exp": int(time.time()) + expires_in}
    claims.update(over)
    headers = {"kid": "k1"} if alg != "HS256" else None
    return jwt.encode(claims, key, algorithm=alg, headers=headers)


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}", "X-User-Id": ""}


@pytest.fixture
def verified(make_components: MakeComponents) -> Components:
    return make_components(
        trust_user_header=False,
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        jwt_shared_key=KEY,
        synthetic_user_ids=(PROBE,),
    )


def test_the_probes_token_signs_in_and_its_marker_counts(verified: Components) -> None:
    client = client_for(verified)
    answer = upload(client, image_bytes(), {**bearer(token(PROBE)), "X-Synthetic-Traffic": "1"})
    assert answer.status_code == 201, answer.json
    assert traffic_of_uploads(verified) == {"user": None, "synthetic": 1}


def test_a_users_own_token_with_the_marker_is_user_traffic(verified: Components) -> None:
    client = client_for(verified)
    answer = upload(client, image_bytes(), {**bearer(token("mallory")), "X-Synthetic-Traffic": "1"})
    assert answer.status_code == 201
    assert traffic_of_uploads(verified) == {"user": 1, "synthetic": None}


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (lambda: token(PROBE, expires_in=-120), "expired"),
        (lambda: token(PROBE, key="x" * 40), "not valid"),
        (lambda: token(PROBE, aud="another-api"), "not valid"),
        (lambda: token(PROBE, iss="https://elsewhere.test"), "not valid"),
        (lambda: token(PROBE, exp=None), "not valid"),
        (lambda: "not.a.jwt", "not valid"),
    ],
)
def test_a_wrong_or_expired_token_is_401(
    verified: Components, make: Callable[[], str], said: str
) -> None:
    answer = upload(client_for(verified), image_bytes(), bearer(make()))
    assert answer.status_code == 401
    assert answer.json["error"]["code"] == "unauthenticated"
    assert said in answer.json["error"]["message"]


def test_the_user_header_is_not_believed_with_trust_off(verified: Components) -> None:
    answer = upload(client_for(verified), image_bytes(), {"X-User-Id": PROBE})
    assert answer.status_code == 401


@pytest.fixture
def jwks() -> Iterator[tuple[str, Any]]:
    """A local issuer's JWKS endpoint serving one RSA key; yields its URL and the private key."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    body = json.dumps({"keys": [{**public, "kid": "k1", "alg": "RS256", "use": "sig"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json", private
    finally:
        server.shutdown()
        server.server_close()


def test_keys_from_a_jwks_url(make_components: MakeComponents, jwks: tuple[str, Any]) -> None:
    url, private = jwks
    components = make_components(
        trust_user_header=False, jwt_issuer=ISSUER, jwt_audience=AUDIENCE, jwt_jwks_url=url
    )
    client = client_for(components)
    good = upload(client, image_bytes(), bearer(token(PROBE, key=private, alg="RS256")))
    assert good.status_code == 201, good.json
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = upload(client, image_bytes(), bearer(token(PROBE, key=other, alg="RS256")))
    assert forged.status_code == 401
    # An HS256 token "signed" with the public key (algorithm confusion) is refused too.
    assert upload(client, image_bytes(), bearer(token(PROBE))).status_code == 401


@pytest.mark.parametrize(
    "environ",
    [
        {"IMAGE_JWT_ISSUER": ISSUER},
        {"IMAGE_JWT_ISSUER": ISSUER, "IMAGE_JWT_AUDIENCE": AUDIENCE},
        {
            "IMAGE_JWT_ISSUER": ISSUER,
            "IMAGE_JWT_AUDIENCE": AUDIENCE,
            "IMAGE_JWT_SHARED_KEY": KEY,
            "IMAGE_JWT_JWKS_URL": "https://issuer.test/jwks",
        },
        {
            "IMAGE_JWT_ISSUER": ISSUER,
            "IMAGE_JWT_AUDIENCE": AUDIENCE,
            "IMAGE_JWT_SHARED_KEY": "short",
        },
    ],
)
def test_an_incomplete_verifier_is_refused_at_start(environ: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="IMAGE_JWT"):
        Settings.from_env(environ)


def test_the_shared_key_is_never_in_the_repr() -> None:
    settings = Settings.from_env(
        {"IMAGE_JWT_ISSUER": ISSUER, "IMAGE_JWT_AUDIENCE": AUDIENCE, "IMAGE_JWT_SHARED_KEY": KEY}
    )
    assert KEY not in repr(settings)
