"""The probe signs in with a bearer token against the image API with IMAGE_TRUST_USER_HEADER
off: it passes with its token, reports `the probe could not sign in (401)` with a wrong or
expired one (distinct from "upload failed"), and gets its token from a setting, a file it
re-reads or a command, refreshed before expiry and never logged."""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

import jwt
import pytest

from image_core.app import Components
from tests.watchtower.probes.conftest import PROBE_USER, leftovers
from watchtower.config import ConfigError, Settings
from watchtower.model import Status
from watchtower.probes.base import ProbeContext
from watchtower.probes.credential import CredentialError, ProbeCredential
from watchtower.probes.upload_get import STEPS, UploadGet

MakeCtx = Callable[..., ProbeContext]
ISSUER, AUDIENCE, KEY = "https://issuer.test", "image-api", "s" * 40


def token(sub: str = PROBE_USER, *, expires_at: float | None = None, key: str = KEY) -> str:
    exp = int(expires_at if expires_at is not None else time.time() + 300)
    return jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "exp": exp}, key, "HS256")


@pytest.fixture
def components(make_components: Callable[..., Components]) -> Components:
    """The image core as a server behind nothing: bearer JWTs only, the user header not believed."""
    return make_components(
        trust_user_header=False,
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        jwt_shared_key=KEY,
        synthetic_user_ids=(PROBE_USER,),
    )


def with_token(ctx: ProbeContext, source: Callable[[], str]) -> ProbeContext:
    return dataclasses.replace(ctx, token=source)


def test_the_probe_passes_with_its_token(
    image_api: str, components: Components, probe_ctx: MakeCtx, caplog: pytest.LogCaptureFixture
) -> None:
    good = token()
    with caplog.at_level(logging.DEBUG):
        result = UploadGet().run(with_token(probe_ctx(image_api), lambda: good))
    assert result.status is Status.OK, result.reason
    assert [s.name for s in result.steps] == list(STEPS)
    assert leftovers(components) == []
    assert good not in caplog.text and good not in repr(result)


def test_without_a_token_the_user_header_is_refused(image_api: str, probe_ctx: MakeCtx) -> None:
    result = UploadGet().run(probe_ctx(image_api))
    assert result.status is Status.CRITICAL
    assert result.reason.startswith("the probe could not sign in (401)")


@pytest.mark.parametrize(
    "bad",
    [
        token(expires_at=time.time() - 600),  # expired
        token(key="w" * 40),  # signed by someone else
    ],
)
def test_a_wrong_or_expired_token_is_a_distinct_critical(
    image_api: str, probe_ctx: MakeCtx, bad: str
) -> None:
    result = UploadGet().run(with_token(probe_ctx(image_api), lambda: bad))
    assert result.status is Status.CRITICAL
    assert result.reason.startswith("the probe could not sign in (401): HTTP 401 unauthenticated")
    assert "upload failed" not in result.reason
    assert bad not in result.reason


def test_a_token_that_cannot_be_had_is_a_sign_in_failure(probe_ctx: MakeCtx) -> None:
    def broken() -> str:
        raise CredentialError("the command 'get-token' failed: exit status 2")

    result = UploadGet().run(with_token(probe_ctx("http://127.0.0.1:9"), broken))
    assert result.status is Status.CRITICAL
    assert result.reason == (
        "the probe could not sign in (the command 'get-token' failed: exit status 2)"
    )
    assert result.steps == ()


# -- where the token comes from ------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_a_file_is_re_read_when_it_changes_and_before_expiry(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "token"
    first = token(expires_at=clock.now + 600)
    path.write_text(first + "\n")
    credential = ProbeCredential(file=str(path), now=clock)
    assert credential.bearer() == first
    second = token(expires_at=clock.now + 1200)
    path.write_text(second)  # a sidecar refreshed it
    assert credential.bearer() == second
    path.unlink()
    with pytest.raises(CredentialError, match="could not be read"):
        credential.bearer()


def test_a_command_runs_again_only_near_expiry(tmp_path: Path) -> None:
    clock = Clock()
    counter = tmp_path / "runs"
    script = tmp_path / "get_token.py"
    script.write_text(
        "import json, pathlib, sys\n"
        f"p = pathlib.Path({str(counter)!r})\n"
        "n = int(p.read_text()) + 1 if p.exists() else 1\n"
        "p.write_text(str(n))\n"
        "print(json.dumps({'access_token': sys.argv[n]}))\n"
    )
    one, two = token(expires_at=clock.now + 600), token(expires_at=clock.now + 1800)
    credential = ProbeCredential(command=f"{sys.executable} {script} {one} {two}", now=clock)
    assert credential.bearer() == one
    clock.now += 400  # 200 s left: still fresh
    assert credential.bearer() == one and counter.read_text() == "1"
    clock.now += 150  # 50 s left: inside the refresh margin
    assert credential.bearer() == two and counter.read_text() == "2"


def test_a_failing_command_says_its_exit_status_never_its_output(tmp_path: Path) -> None:
    secret = token()
    credential = ProbeCredential(
        command=f"{sys.executable} -c \"print('{secret}'); raise SystemExit(3)\"", now=Clock()
    )
    with pytest.raises(CredentialError) as raised:
        credential.bearer()
    assert "exit status 3" in str(raised.value) and secret not in str(raised.value)


def test_the_token_settings_are_one_of_three_and_the_token_is_never_shown() -> None:
    settings = Settings.from_env({"WATCHTOWER_PROBE_TOKEN": "t0ps3cret-token"})
    assert "t0ps3cret-token" not in repr(settings)
    with pytest.raises(ConfigError, match="not several"):
        Settings.from_env(
            {"WATCHTOWER_PROBE_TOKEN": "x", "WATCHTOWER_PROBE_TOKEN_FILE": "/run/token"}
        )
