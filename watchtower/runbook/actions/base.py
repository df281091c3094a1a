"""What an action is, what it is given, and the registry that finds actions by name. Pure.

An action is one class in one module of this package, decorated with `@register`. It declares its
inputs (validated before anything runs), says whether it changes anything (`mutating`: a dry-run
only plans it, and it is never retried or resumed after a restart) and whether it needs a
person's approval unless the route allows automation (`gated`). `plan` returns the exact calls it
would make; `run` makes them. Adapters (boto3, redis) and the cutover service are reached
through the context, which the engine fills from what the composition root handed it; tests
build it from their own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from watchtower.registry import Registry
from watchtower.runbook.errors import ParamError
from watchtower.runbook.model import ApiCall, Param

if TYPE_CHECKING:
    from watchtower.config import Settings


class CutoverPort(Protocol):
    """What the cutover actions use of the cutover service (watchtower.cutover.service)."""

    def preflight(self, *, now: datetime, days: int | None = None) -> Any: ...

    def record_preflight(
        self,
        preflight: Any,
        *,
        actor: str,
        now: datetime,
        override: Any = None,
        execution_id: str | None = None,
    ) -> Any: ...


@dataclass(frozen=True, kw_only=True)
class ActionContext:
    settings: Settings
    aws: Callable[[str], Any]  # service name -> a boto3 client (watchtower.aws builds them)
    redis: Callable[[], Any] | None  # the image service's Redis, when one is configured
    cutover: CutoverPort | None = None  # the running Watchtower's cutover service
    now: datetime
    execution_id: str
    step_id: str
    record: Callable[[str, Mapping[str, Any]], None]  # an entry in the run's audit log


class Action:
    name: ClassVar[str]
    title: ClassVar[str]
    mutating: ClassVar[bool] = True
    gated: ClassVar[bool] = True  # needs approval unless the execution is automatic
    inputs: ClassVar[tuple[Param, ...]] = ()

    @classmethod
    def input(cls, name: str) -> Param | None:
        return next((p for p in cls.inputs if p.name == name), None)

    def validate(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """The inputs typed and checked, defaults filled in; raises ParamError naming one."""
        unknown = sorted(set(raw) - {p.name for p in self.inputs})
        if unknown:
            raise ParamError(unknown[0], f"{self.name} takes no such input")
        values: dict[str, Any] = {}
        for param in self.inputs:
            if param.name in raw and raw[param.name] is not None:
                values[param.name] = param.coerce(raw[param.name])
            elif param.default is not None:
                values[param.name] = param.coerce(param.default)
            elif param.required:
                raise ParamError(param.name, f"{self.name} needs it")
            else:
                values[param.name] = None
        self.check(values)
        return values

    def check(self, values: dict[str, Any]) -> None:
        """Rules across inputs; raise ParamError."""

    def plan(self, values: Mapping[str, Any], ctx: ActionContext) -> list[ApiCall]:
        """The exact calls `run` would make. May read (never change) state to say so."""
        raise NotImplementedError

    def run(self, values: Mapping[str, Any], ctx: ActionContext) -> dict[str, Any]:
        """Make the calls; returns outputs (plain data) later steps and post-checks can read."""
        raise NotImplementedError


REGISTRY: Registry[Action] = Registry("action")
register = REGISTRY.register
registered = REGISTRY.registered
