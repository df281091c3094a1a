"""The one result shape every probe and check returns, and what consumers read. Pure."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Kind = Literal["probe", "check"]


class Status(enum.StrEnum):
    OK = "ok"
    WARNING = "warning"  # degraded: slow but working
    CRITICAL = "critical"
    UNKNOWN = "unknown"  # the source could not be read: never shown as ok

    @property
    def severity(self) -> int:
        return _SEVERITY[self]

    @classmethod
    def worst(cls, statuses: list[Status]) -> Status:
        return max(statuses, key=lambda s: s.severity, default=cls.OK)


_SEVERITY = {Status.OK: 0, Status.WARNING: 1, Status.UNKNOWN: 2, Status.CRITICAL: 3}


@dataclass(frozen=True, kw_only=True)
class StepResult:
    """One step of a probe: its name, whether it held, how long it took, and why not."""

    name: str
    ok: bool
    seconds: float
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class Result:
    name: str
    kind: Kind
    status: Status
    reason: str
    observed_at: datetime
    figures: dict[str, float | None] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    steps: tuple[StepResult, ...] = ()
    duration_seconds: float = 0.0
    attempt: int = 1  # 2 when this is the immediate retry that confirms a failure

    @property
    def failed_step(self) -> StepResult | None:
        return next((s for s in self.steps if not s.ok), None)


def unknown(
    name: str,
    kind: Kind,
    reason: str,
    observed_at: datetime,
    thresholds: dict[str, float] | None = None,
) -> Result:
    return Result(
        name=name,
        kind=kind,
        status=Status.UNKNOWN,
        reason=reason,
        observed_at=observed_at,
        thresholds=thresholds or {},
    )


@dataclass(frozen=True, kw_only=True)
class StatusCount:
    """How many first-attempt results of one probe or check in one UTC hour had one status."""

    name: str
    hour: datetime  # the hour's start, UTC
    status: Status
    count: int


@dataclass(frozen=True, kw_only=True)
class Alert:
    """One alert of an Alertmanager webhook notification (payload version 4), validated."""

    fingerprint: str
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None = None
    generator_url: str = ""

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")
