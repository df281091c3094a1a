"""The Lambda-flag follower: the image API picks up ENABLE_DYNAMODB_DUAL_WRITE of the version
that serves traffic.

On Lambda, traffic goes through an alias (`live`) pinned to a published version; publishing a
version with a new environment and moving the alias to it makes new containers with that
environment within seconds (writing `$LATEST` alone changes nothing users see). Served
unqualified, `$LATEST` is what serves. The sandbox's image API is one long-lived process, so this
follower reads what the alias serves (its version, then that version's configuration) from the
moto server every second and restarts the process (through the gateway: no request is refused)
whenever the flag it runs with differs. A weighted alias is followed by its main version (one
process cannot be two). `decide` is the judgement, pure; `FlagFollower` is the loop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from watchtower.sandbox.gateway import FLAG, ImageApi
from watchtower.sandbox.loop import Loop
from watchtower.sandbox.servers import ServerUnavailable

log = logging.getLogger(__name__)

UNQUALIFIED = "$LATEST"
# As the image core reads the flag (image_core/config.py): unset means off.
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def parse_flag(raw: str | None) -> bool | None:
    """The flag as the image core would read it; None when it would refuse to start."""
    if raw is None:
        return False
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return None


@dataclass(frozen=True, kw_only=True)
class Decision:
    restart: bool
    dual_write: bool | None = None  # the value to restart with
    reason: str


def decide(
    function_environment: Mapping[str, str],
    *,
    running: bool,
    held: bool,
    postgres: bool,
) -> Decision:
    """Should the image API restart to follow the function's flag, and with which value?"""
    raw = function_environment.get(FLAG)
    wanted = parse_flag(raw)
    if held:
        return Decision(restart=False, reason="held by the legacy-writes scenario")
    if wanted is None:
        return Decision(
            restart=False,
            reason=f"{FLAG}={raw!r} is not a boolean: the image core would not start with it; "
            "the running process keeps serving",
        )
    if wanted == running:
        return Decision(restart=False, reason=f"{FLAG} is {'on' if running else 'off'} in both")
    if wanted and not postgres:
        return Decision(
            restart=False,
            reason=f"{FLAG}=true needs PostgreSQL, which this sandbox runs without",
        )
    return Decision(
        restart=True,
        dual_write=wanted,
        reason=f"the function's {FLAG} is now {raw!r}",
    )


class FlagFollower:
    """Polls the served version's configuration and restarts the image API when its flag
    changed."""

    def __init__(
        self,
        lambda_client: Any,
        function: str,
        image_api: ImageApi,
        *,
        postgres: bool,
        alias: str | None = None,
        interval: float = 1.0,
        on_restart: Callable[[bool], None] = lambda _dual_write: None,
    ) -> None:
        self._client = lambda_client
        self._function = function
        self._alias = alias
        # The version whose configuration the image API runs with (its REPORT lines' stream).
        self.served_version = UNQUALIFIED
        self._image_api = image_api
        self._postgres = postgres
        self._on_restart = on_restart
        self._held = False
        # A step reads the function, decides and restarts under this lock, and `hold` takes it
        # too: a step that read the flag just before a scenario changed it never acts on it.
        self._lock = threading.Lock()
        self._last_reason = ""
        self.loop = Loop("flag-follower", interval, self.step, log=log)

    def hold(self, held: bool) -> None:
        """While held, the function's flag is not followed (the legacy-writes scenario)."""
        with self._lock:
            self._held = held

    @property
    def held(self) -> bool:
        return self._held

    def running_flag(self) -> bool:
        return parse_flag(self._image_api.environment.get(FLAG)) is True

    def step(self) -> None:
        with self._lock:
            self._step()

    def served(self) -> tuple[str, dict[str, str]]:
        """The version that serves traffic (the alias's main one, else `$LATEST`) and its
        environment."""
        version, qualifier = UNQUALIFIED, {}
        if self._alias:
            answer = self._client.get_alias(FunctionName=self._function, Name=self._alias)
            version = str(answer["FunctionVersion"])
            qualifier = {"Qualifier": version}
        answer = self._client.get_function_configuration(FunctionName=self._function, **qualifier)
        return version, dict((answer.get("Environment") or {}).get("Variables") or {})

    def _step(self) -> None:
        try:
            version, environment = self.served()
        except (ClientError, BotoCoreError) as exc:
            target = f"{self._function}:{self._alias}" if self._alias else self._function
            self._note(f"cannot read what {target} serves: {exc}")
            return
        decision = decide(
            environment, running=self.running_flag(), held=self._held, postgres=self._postgres
        )
        if not self._held and not decision.restart and decision.reason.endswith("in both"):
            self.served_version = version
        if not decision.restart:
            self._note(decision.reason, quiet=decision.reason.endswith("in both"))
            return
        value = "true" if decision.dual_write else "false"
        try:
            restarted = self._image_api.restart(decision.reason, **{FLAG: value})
        except ServerUnavailable as exc:
            self._note(f"the image API did not start with {FLAG}={value}: {exc}")
            return
        if restarted:
            self.served_version = version
            log.info(
                "flag follower: the image API now runs with %s=%s (version %s)",
                FLAG,
                value,
                version,
            )
            self._on_restart(bool(decision.dual_write))
        self._last_reason = ""

    def _note(self, reason: str, *, quiet: bool = False) -> None:
        """Log a reason once, not every second."""
        if reason != self._last_reason and not quiet:
            log.warning("flag follower: %s", reason)
        self._last_reason = reason

    def start(self) -> None:
        self.loop.start()

    def stop(self) -> None:
        self.loop.stop()
