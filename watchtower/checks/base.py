"""What a check is, the ports it reads through, and the registry that finds checks by name.

A check is one class in one module of this package, decorated with `@register`. It declares the
CloudWatch metrics it needs (so one cycle fetches the metrics of every due check in as few
GetMetricData calls as the API allows), reads anything else through the small ports below, and
judges with pure code. A source that cannot be read raises SourceError: the result is `unknown`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol

from watchtower.config import Settings
from watchtower.model import Result, Status
from watchtower.registry import Registry

Series = list[tuple[datetime, float]]


@dataclass(frozen=True, kw_only=True)
class MetricQuery:
    """One CloudWatch metric over a check's window. `key` is unique within the check."""

    key: str
    namespace: str
    metric: str
    dimensions: tuple[tuple[str, str], ...] = ()
    stat: str = "Sum"
    window_seconds: int = 300
    period_seconds: int | None = None  # None: one datapoint for the whole window
    region: str | None = None  # None: the settings' region (CloudFront: us-east-1)


class MetricSource(Protocol):
    def fetch(
        self, queries: Sequence[MetricQuery], *, now: datetime, region: str
    ) -> dict[MetricQuery, Series]:
        """Every query's datapoints (possibly none); raises SourceError if nothing could be read."""


class LogSource(Protocol):
    def messages(
        self, log_group: str, *, pattern: str, start: datetime, end: datetime, limit: int
    ) -> list[str]: ...

    def events(
        self, log_group: str, *, pattern: str, start: datetime, end: datetime, limit: int
    ) -> list[tuple[str, str]]:
        """(log stream name, message) of each matching event, oldest first."""


@dataclass(frozen=True, kw_only=True)
class ServedVersion:
    """One version of a function that takes traffic, with its share (1.0 when alone)."""

    version: str  # "$LATEST" when the function is served unqualified
    weight: float
    environment: Mapping[str, str]
    code_sha256: str = ""
    description: str = ""


class FunctionConfigSource(Protocol):
    def environment(self, function: str) -> dict[str, str]: ...

    def served(self, function: str, alias: str | None) -> list[ServedVersion]:
        """What `alias` serves (its version, and the weighted one if any); `$LATEST` when the
        alias is None. Raises SourceError when it cannot be read."""


@dataclass(frozen=True)
class TableSql:
    """SQL that names the legacy table as `{table}`: the adapter composes it as a quoted
    identifier (psycopg.sql.Identifier), never as text, and binds `%(table_regclass)s` (the name
    as `to_regclass` reads it) and `%(table_name)s` (its last part) as values."""

    template: str


class SqlSource(Protocol):
    # The legacy table (WATCHTOWER_LEGACY_TABLE): what `{table}` in a TableSql stands for.
    table: str

    def scalar(self, sql: str | TableSql, params: Mapping[str, Any]) -> Any: ...


@dataclass(frozen=True, kw_only=True)
class Sources:
    metrics: MetricSource
    logs: LogSource | None = None
    functions: FunctionConfigSource | None = None
    legacy_sql: SqlSource | None = None


@dataclass(frozen=True, kw_only=True)
class CheckContext:
    settings: Settings
    sources: Sources
    now: datetime
    params: dict[str, float]
    metrics: dict[str, Series] = field(default_factory=dict)  # this check's queries, by key
    metrics_error: str | None = None  # why the batch fetch failed, when it did

    @property
    def window(self) -> timedelta:
        return timedelta(seconds=self.params["window_seconds"])

    def metric(self, key: str) -> Series:
        """The datapoints of one declared query; raises SourceError when the fetch failed."""
        from watchtower.errors import SourceError

        if self.metrics_error is not None:
            raise SourceError(self.metrics_error)
        return self.metrics.get(key, [])


class Check:
    """Base of every check: a name, defaults for its thresholds, its metrics, and a judgement."""

    name: ClassVar[str]
    title: ClassVar[str]
    component: ClassVar[str]  # the status-page row it belongs to
    defaults: ClassVar[dict[str, float]] = {"window_seconds": 300}
    interval: ClassVar[int] = 60
    # What it reads besides its metric_queries (docs/metrics-contract.md): "lambda:configuration",
    # "logs:REPORT" (the function's log group), "sql:legacy_table" (WATCHTOWER_LEGACY_TABLE).
    reads: ClassVar[tuple[str, ...]] = ()

    def metric_queries(self, settings: Settings, params: Mapping[str, float]) -> list[MetricQuery]:
        return []

    def evaluate(self, ctx: CheckContext) -> Result:
        raise NotImplementedError

    def result(
        self,
        ctx: CheckContext,
        status: Status,
        reason: str,
        figures: Mapping[str, float | None] | None = None,
        thresholds: Mapping[str, float] | None = None,
    ) -> Result:
        return Result(
            name=self.name,
            kind="check",
            status=status,
            reason=reason,
            observed_at=ctx.now,
            figures=dict(figures or {}),
            thresholds=dict(thresholds if thresholds is not None else _thresholds(ctx.params)),
        )


def _thresholds(params: Mapping[str, float]) -> dict[str, float]:
    return {k: v for k, v in params.items() if k != "window_seconds"}


REGISTRY: Registry[Check] = Registry("check")
register = REGISTRY.register
registered = REGISTRY.registered


def total(series: Series) -> float | None:
    """The sum of a series, or None when it has no datapoints."""
    return sum(v for _, v in series) if series else None


def ratio(part: float | None, whole: float | None) -> float | None:
    if part is None or not whole:
        return None
    return part / whole


MakeCheck = Callable[[], Check]
