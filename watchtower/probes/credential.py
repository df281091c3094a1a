"""The probe's credential: a bearer token from a setting, a file it re-reads, or a command it
runs (as the AWS CLI runs a credential process), refreshed before it expires.

The token is a secret: it is never logged, never part of a result or an error message. Its
expiry is read from its `exp` claim without verifying it (the image API verifies it; the probe
only needs to know when to fetch the next one). A token without `exp` is fetched again from a
file or a command every `refresh_seconds`.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import threading
from collections.abc import Callable
from typing import Any

import jwt

REFRESH_BEFORE_SECONDS = 60.0  # fetch a new token this long before the current one expires
REFRESH_SECONDS = 300.0  # how long a token without `exp` is used before it is fetched again
COMMAND_TIMEOUT_SECONDS = 20.0


class CredentialError(Exception):
    """The token could not be had; the message says why and never holds the token."""


def expiry(token: str) -> float | None:
    """The token's `exp` (seconds since the epoch), read without verifying; None without one."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return None
    exp = claims.get("exp")
    return float(exp) if isinstance(exp, int | float) else None


class ProbeCredential:
    """`bearer()` is the token to send now. Thread-safe: probes may run from several threads."""

    def __init__(
        self,
        *,
        token: str | None = None,
        file: str | None = None,
        command: str | None = None,
        now: Callable[[], float],
        run: Callable[..., Any] = subprocess.run,
    ) -> None:
        if sum(x is not None for x in (token, file, command)) != 1:
            raise ValueError("give exactly one of a token, a file or a command")
        self._static, self._file, self._command = token, file, command
        self._now, self._run = now, run
        self._token: str | None = None
        self._fresh_until = 0.0
        self._file_stamp: tuple[float, int] | None = None
        self._lock = threading.Lock()

    @property
    def source(self) -> str:
        """Where the token comes from, for people (never the token)."""
        if self._file is not None:
            return f"the file {self._file}"
        if self._command is not None:
            return f"the command {shlex.split(self._command)[0]!r}"
        return "WATCHTOWER_PROBE_TOKEN"

    def bearer(self) -> str:
        with self._lock:
            if self._static is not None:
                return self._static
            now = self._now()
            if self._token is None or now >= self._fresh_until or self._file_changed():
                token = self._read_file() if self._file is not None else self._from_command()
                exp = expiry(token)
                self._token = token
                self._fresh_until = (
                    exp - REFRESH_BEFORE_SECONDS if exp is not None else now + REFRESH_SECONDS
                )
            return self._token

    def _file_changed(self) -> bool:
        return self._file is not None and self._stamp() != self._file_stamp

    def _stamp(self) -> tuple[float, int] | None:
        assert self._file is not None
        try:
            found = os.stat(self._file)
        except OSError:
            return None
        return (found.st_mtime, found.st_size)

    def _read_file(self) -> str:
        assert self._file is not None
        self._file_stamp = self._stamp()
        try:
            with open(self._file, encoding="utf-8") as handle:
                token = handle.read().strip()
        except OSError as exc:
            raise CredentialError(f"{self.source} could not be read: {exc.strerror}") from None
        if not token:
            raise CredentialError(f"{self.source} is empty")
        return token

    def _from_command(self) -> str:
        assert self._command is not None
        try:
            done = self._run(
                shlex.split(self._command),
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT_SECONDS,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            why = "timed out" if isinstance(exc, subprocess.TimeoutExpired) else exc.strerror
            raise CredentialError(f"{self.source} failed: {why}") from None
        if done.returncode != 0:
            # Its output may hold a secret: only the exit status is repeated.
            raise CredentialError(f"{self.source} failed: exit status {done.returncode}")
        return _token_in(done.stdout, self.source)


def _token_in(output: str, source: str) -> str:
    """The command's token: its output, or the `token` (`access_token`, `id_token`) of a JSON
    object it printed."""
    text = output.strip()
    if text.startswith("{"):
        try:
            answer = json.loads(text)
        except json.JSONDecodeError:
            raise CredentialError(f"{source} printed JSON that does not parse") from None
        for key in ("token", "access_token", "id_token"):
            if isinstance(answer.get(key), str) and answer[key].strip():
                return str(answer[key]).strip()
        raise CredentialError(f"{source} printed JSON without a token, access_token or id_token")
    if not text or len(text.split()) != 1:
        raise CredentialError(f"{source} printed no token (one word expected)")
    return text
