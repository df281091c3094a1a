"""The cutover's records: the window, its evidence samples, the pre-flight report. Pure.

A window opens when ENABLE_DYNAMODB_DUAL_WRITE is turned off; it is cut into slots of
`interval_seconds` aligned on the epoch, and each slot gets one `Sample`: raw `Reading`s of every
source, never a verdict. `watchtower.cutover.judge` turns samples into the verdict, so a change
of threshold re-judges the same evidence.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from watchtower.config import Settings

# LatencyOver<N>ms at the image core's default IMAGE_LATENCY_THRESHOLDS_MS (the cutover mirrors the
# configured list in WATCHTOWER_CUTOVER_LATENCY_THRESHOLDS_MS)
LATENCY_THRESHOLDS_MS = (250, 500, 800, 1000)

# The evidence every sample carries, one reading each; the judge has one rule per criterion.
CRITERIA = (
    "flag",
    "legacy_inserts",
    "dynamodb_writes",
    "upload_success",
    "upload_latency",
    "dual_write_errors",
    "critical_alerts",
    "user_operations",
)
OPERATIONS = ("get", "list", "delete")  # users' operations judged beside uploads


# Not a criterion: the reading that marks a sample read back after a gap (`cutover.backfill`).
BACKFILL = "backfill"


class CloseReason(enum.StrEnum):
    SIGNED = "signed"
    ROLLED_BACK = "rolled_back"
    ABANDONED = "abandoned"


@dataclass(frozen=True, kw_only=True)
class LatencyCounts:
    """How many uploads had their latency recorded, and how many of them were over each
    threshold (LatencyOver<N>ms Sums over Latency SampleCount)."""

    samples: float
    over: Mapping[int, float]

    def as_json(self) -> dict[str, Any]:
        return {"samples": self.samples, "over": {str(k): v for k, v in sorted(self.over.items())}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LatencyCounts:
        return cls(samples=data["samples"], over={int(k): v for k, v in data["over"].items()})


@dataclass(frozen=True, kw_only=True)
class Baseline:
    """The days before the flip, fetched once when the window opens."""

    start: datetime
    end: datetime
    days: int
    writes_by_hour: tuple[float, ...] = ()  # mean write units in each UTC hour of the day (24)
    latency: LatencyCounts | None = None  # user uploads over the whole baseline
    error: str | None = None  # why it could not be fetched (retried by the sampler)
    # The legacy table's write counters (pg_stat_user_tables) when the window opened: the first
    # sample's deltas start from them. None when they could not be read.
    legacy_writes: Mapping[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        data = {
            "start": iso(self.start),
            "end": iso(self.end),
            "days": self.days,
            "writes_by_hour": list(self.writes_by_hour),
            "latency": self.latency.as_json() if self.latency else None,
            "error": self.error,
        }
        if self.legacy_writes is not None:
            data["legacy_writes"] = dict(self.legacy_writes)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Baseline:
        return cls(
            start=parse_iso(data["start"]),
            end=parse_iso(data["end"]),
            days=data["days"],
            writes_by_hour=tuple(data.get("writes_by_hour") or ()),
            latency=LatencyCounts.from_json(data["latency"]) if data.get("latency") else None,
            error=data.get("error"),
            legacy_writes=data.get("legacy_writes"),
        )


@dataclass(frozen=True, kw_only=True)
class Window:
    id: str
    opened_at: datetime  # when the flag was flipped to false
    opened_by: str  # who flipped it: a person, or a runbook run
    via: str  # runbook, detected (then confirmed), cli, web
    duration_seconds: int
    interval_seconds: int
    recorded_at: datetime
    confirmed_by: str | None = None
    comment: str = ""
    baseline: Baseline | None = None
    closed_at: datetime | None = None
    close_reason: CloseReason | None = None
    closed_by: str | None = None
    close_comment: str = ""

    @property
    def ends_at(self) -> datetime:
        return self.opened_at + timedelta(seconds=self.duration_seconds)

    @property
    def is_open(self) -> bool:
        return self.closed_at is None


@dataclass(frozen=True, kw_only=True)
class Reading:
    """What one source said for one slot (`figures`), or why it could not be read (`error`)."""

    figures: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def readable(self) -> bool:
        return self.error is None

    def as_json(self) -> dict[str, Any]:
        return {"figures": dict(self.figures), "error": self.error}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Reading:
        return cls(figures=dict(data.get("figures") or {}), error=data.get("error"))


@dataclass(frozen=True, kw_only=True)
class Sample:
    window_id: str
    at: datetime  # the end of its slot (a multiple of the interval)
    taken_at: datetime
    metrics_start: datetime  # the CloudWatch interval it read (the slot, shifted by the lag)
    metrics_end: datetime
    readings: Mapping[str, Reading]

    def reading(self, criterion: str) -> Reading:
        return self.readings.get(criterion) or Reading(error="not sampled")


@dataclass(frozen=True, kw_only=True)
class SignOff:
    window_id: str
    name: str  # the stakeholder, as they sign
    role: str  # one of the required stakeholder roles
    comment: str
    at: datetime
    user: str  # the login that signed: one login signs at most one role of a window
    evidence_hash: str  # sha256 of the evidence they saw (window, coverage, criteria, timeline)
    # How that login signed in: "session" (the login form), "token", "basic" or "proxy"; None
    # for sign-offs recorded before it was kept.
    via: str | None = None


@dataclass(frozen=True, kw_only=True)
class AuditEntry:
    """One line of the append-only audit log; `hash` chains it to the line before."""

    id: int
    at: datetime
    actor: str
    action: str  # window-opened, window-closed, signed, report-frozen, preflight, override, ...
    window_id: str | None
    detail: Mapping[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True, kw_only=True)
class StoredReport:
    window_id: str
    frozen_at: datetime
    document: str  # canonical JSON
    sha256: str


# -- the pre-flight report ------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class DayRow:
    start: datetime
    end: datetime
    successes: float
    failures: float

    @property
    def attempts(self) -> float:
        return self.successes + self.failures

    @property
    def success_ratio(self) -> float | None:
        return self.successes / self.attempts if self.attempts else None


@dataclass(frozen=True, kw_only=True)
class Reconciliation:
    """Images created in the window that still exist, per side; see `evidence.reconcile`."""

    dynamodb_images: int | None
    postgres_rows: int | None
    upload_requests: float | None  # context only: counts replays and since-deleted images
    dynamodb_error: str | None = None
    postgres_error: str | None = None
    # By identity (`cutover.reconcile`): the ids on one side only (the first 100) and how many.
    by_identity: bool = False
    missing_from_postgres: tuple[str, ...] = ()
    missing_from_postgres_count: int = 0
    missing_from_dynamodb: tuple[str, ...] = ()
    missing_from_dynamodb_count: int = 0
    legacy_table: str = Settings.legacy_table  # the PostgreSQL side (WATCHTOWER_LEGACY_TABLE)

    @property
    def differing(self) -> int | None:
        """How many images differ: by identity, every id on one side only."""
        if self.by_identity:
            return self.missing_from_postgres_count + self.missing_from_dynamodb_count
        return None if self.difference is None else abs(self.difference)

    @property
    def difference(self) -> int | None:
        if self.dynamodb_images is None or self.postgres_rows is None:
            return None
        return self.dynamodb_images - self.postgres_rows


@dataclass(frozen=True, kw_only=True)
class PreflightReport:
    start: datetime
    end: datetime
    days: int
    successes: float
    failures: float
    failures_by_reason: Mapping[str, float]
    daily: tuple[DayRow, ...]
    reconciliation: Reconciliation
    metrics_error: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def attempts(self) -> float:
        return self.successes + self.failures

    @property
    def success_ratio(self) -> float | None:
        return self.successes / self.attempts if self.attempts else None


# -- time ---------------------------------------------------------------------------------------


def iso(moment: datetime | None) -> str | None:
    """UTC, to the second or microsecond, with a `Z`: one spelling for every document."""
    if moment is None:
        return None
    text = moment.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
