"""What the alias actions share: reading an alias and the versions it serves, and the note a
flip leaves in the version it publishes (which is how a rollback finds the version to go back to).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from watchtower.runbook.actions._aws import call

ALIAS = r"(?!^[0-9]+$)[A-Za-z0-9_-]{1,128}"  # an alias name (a bare number is a version)
VERSION = r"[0-9]{1,10}"
_RECORDED = re.compile(r"alias (\S+) was at version ([0-9]+)")


@dataclass(frozen=True, kw_only=True)
class AliasState:
    function: str
    alias: str
    version: str  # the version it routes to
    weights: dict[str, float] = field(default_factory=dict)  # further versions and their shares
    revision: str | None = None
    config: dict[str, Any] = field(default_factory=dict)  # the version's configuration

    @property
    def variables(self) -> dict[str, str]:
        return dict((self.config.get("Environment") or {}).get("Variables") or {})

    @property
    def recorded_previous(self) -> str | None:
        """The version the alias served before the flip that published this one, if recorded."""
        found = _RECORDED.search(self.config.get("Description") or "")
        return found.group(2) if found and found.group(1) == self.alias else None


def read_alias(client: Any, function: str, alias: str) -> AliasState:
    what = f"alias {alias!r} of function {function!r}"
    answer = call(client, "GetAlias", what, FunctionName=function, Name=alias)
    version = str(answer["FunctionVersion"])
    weights = (answer.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
    config = call(
        client,
        "GetFunctionConfiguration",
        f"function {function!r} version {version}",
        FunctionName=function,
        Qualifier=version,
    )
    return AliasState(
        function=function,
        alias=alias,
        version=version,
        weights={str(k): float(v) for k, v in weights.items()},
        revision=answer.get("RevisionId"),
        config=dict(config),
    )


def flip_description(name: str, value: str | None, state: AliasState, execution_id: str) -> str:
    """The published version's description: what changed and the version to roll back to."""
    change = f"{name} unset" if value is None else f"{name}={value}"
    text = (
        f"watchtower: {change}; alias {state.alias} was at version {state.version} "
        f"(runbook run {execution_id[:8]})"
    )
    return text[:256]


def move_request(state: AliasState, version: str) -> dict[str, Any]:
    request: dict[str, Any] = {
        "FunctionName": state.function,
        "Name": state.alias,
        "FunctionVersion": version,
        "RoutingConfig": {"AdditionalVersionWeights": {}},
    }
    if state.revision:
        request["RevisionId"] = state.revision
    return request
