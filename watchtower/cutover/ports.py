"""The small ports the cutover reads through, and their adapters (boto3, PostgreSQL).

The evidence sampler also reads through the checks' ports (`watchtower.checks.base`: metrics,
Lambda configuration, SQL) and the history store (probe results, alerts). Every adapter takes a
ready client and translates its library's errors into SourceError naming what could not be read.
The runbook engine's audit log is read through `RunbookEvents`, implemented in
`watchtower.runbook.adapters` (the runbook package depends on this one, never the other way).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from watchtower.checks.base import FunctionConfigSource, MetricSource, SqlSource
from watchtower.errors import SourceError
from watchtower.model import Alert, Result

# -- ports --------------------------------------------------------------------------------------


class ResultHistory(Protocol):
    def history(
        self, name: str | None = None, *, since: datetime, until: datetime | None = None
    ) -> list[Result]: ...


class FiringAlerts(Protocol):
    """The alerts table the Alertmanager webhook keeps (watchtower.store.HistoryStore)."""

    def firing_alerts(self) -> list[Alert]: ...


class ImageCounter(Protocol):
    def images_created(self, since: datetime, until: datetime) -> int:
        """Image records created in (since, until] that still exist."""


class MetricCatalog(Protocol):
    def dimension_values(self, namespace: str, metric: str, dimension: str) -> list[str]:
        """The values `dimension` takes on `metric` (metrics with data in the last two weeks)."""


@dataclass(frozen=True, kw_only=True)
class CostRow:
    start: date
    end: date  # exclusive, as Cost Explorer says it
    amount: float
    unit: str
    by_service: dict[str, float] = field(default_factory=dict)
    estimated: bool = False


class CostSource(Protocol):
    def monthly_costs(self, start: date, end: date, tag: tuple[str, str]) -> list[CostRow]: ...


@dataclass(frozen=True, kw_only=True)
class EvidencePorts:
    """What a sample reads."""

    metrics: MetricSource
    results: ResultHistory
    functions: FunctionConfigSource | None = None
    legacy_sql: SqlSource | None = None
    alerts: FiringAlerts | None = None


@dataclass(frozen=True, kw_only=True)
class PreflightPorts:
    metrics: MetricSource
    catalog: MetricCatalog | None = None
    images: ImageCounter | None = None
    legacy_sql: SqlSource | None = None


# -- adapters -----------------------------------------------------------------------------------


class DynamoDbImages:
    """Counts image records (`pk` IMAGE#…) by their `created_at`, with a paginated COUNT Scan.

    A Scan reads the whole table (its cost grows with the table, about 1 read unit per 8 KB with
    eventual consistency): it is for the pre-flight report, run a few times, never per sample.
    """

    def __init__(self, client: Any, table: str) -> None:
        self._client = client
        self._table = table
        self.calls = 0

    def id_pages(self, page_size: int) -> Any:
        """The same table read as pages of image ids (`cutover.reconcile`), for reconciliation
        by identity."""
        from watchtower.cutover.reconcile import DynamoDbImageIds

        return DynamoDbImageIds(self._client, self._table, page_size=page_size)

    def images_created(self, since: datetime, until: datetime) -> int:
        request: dict[str, Any] = {
            "TableName": self._table,
            "Select": "COUNT",
            "FilterExpression": "begins_with(pk, :image) AND created_at > :since "
            "AND created_at <= :until",
            "ExpressionAttributeValues": {
                ":image": {"S": "IMAGE#"},
                # The image core writes created_at as UTC isoformat with microseconds.
                ":since": {"S": since.isoformat(timespec="microseconds")},
                ":until": {"S": until.isoformat(timespec="microseconds")},
            },
        }
        total = 0
        try:
            while True:
                self.calls += 1
                answer = self._client.scan(**request)
                total += int(answer.get("Count", 0))
                key = answer.get("LastEvaluatedKey")
                if not key:
                    return total
                request["ExclusiveStartKey"] = key
        except (ClientError, BotoCoreError) as exc:
            raise SourceError(
                f"DynamoDB table {self._table!r} could not be scanned: {exc}"
            ) from exc


class CloudWatchCatalog:
    def __init__(self, client: Any) -> None:
        self._client = client

    def dimension_values(self, namespace: str, metric: str, dimension: str) -> list[str]:
        values: set[str] = set()
        try:
            paginator = self._client.get_paginator("list_metrics")
            for page in paginator.paginate(Namespace=namespace, MetricName=metric):
                for item in page.get("Metrics", []):
                    for dim in item.get("Dimensions", []):
                        if dim["Name"] == dimension:
                            values.add(dim["Value"])
        except (ClientError, BotoCoreError) as exc:
            raise SourceError(
                f"CloudWatch ListMetrics for {namespace}/{metric} failed: {exc}"
            ) from exc
        return sorted(values)


class CostExplorer:
    """GetCostAndUsage, monthly, for resources with one cost allocation tag, by AWS service."""

    METRIC = "UnblendedCost"

    def __init__(self, client: Any) -> None:
        self._client = client

    def monthly_costs(self, start: date, end: date, tag: tuple[str, str]) -> list[CostRow]:
        request: dict[str, Any] = {
            "TimePeriod": {"Start": start.isoformat(), "End": end.isoformat()},
            "Granularity": "MONTHLY",
            "Metrics": [self.METRIC],
            "Filter": {"Tags": {"Key": tag[0], "Values": [tag[1]], "MatchOptions": ["EQUALS"]}},
            "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"}],
        }
        rows: list[CostRow] = []
        try:
            while True:
                answer = self._client.get_cost_and_usage(**request)
                rows.extend(_cost_row(item) for item in answer.get("ResultsByTime", []))
                token = answer.get("NextPageToken")
                if not token:
                    return rows
                request["NextPageToken"] = token
        except (ClientError, BotoCoreError) as exc:
            raise SourceError(f"Cost Explorer GetCostAndUsage failed: {exc}") from exc


def _amount(metrics: dict[str, Any]) -> tuple[float, str] | None:
    chosen = metrics.get(CostExplorer.METRIC) or next(iter(metrics.values()), None)
    if not chosen:
        return None
    return float(chosen.get("Amount") or 0), str(chosen.get("Unit") or "USD")


def _cost_row(item: dict[str, Any]) -> CostRow:
    by_service: dict[str, float] = {}
    unit = "USD"
    for group in item.get("Groups") or []:
        found = _amount(group.get("Metrics") or {})
        if found is not None:
            name = " / ".join(group.get("Keys") or ["(unnamed)"])
            by_service[name] = by_service.get(name, 0.0) + found[0]
            unit = found[1]
    total = _amount(item.get("Total") or {})
    amount = total[0] if total is not None else sum(by_service.values())
    if total is not None:
        unit = total[1]
    period = item.get("TimePeriod") or {}
    return CostRow(
        start=date.fromisoformat(period.get("Start", "1970-01-01")),
        end=date.fromisoformat(period.get("End", "1970-01-01")),
        amount=amount,
        unit=unit,
        by_service=by_service,
        estimated=bool(item.get("Estimated")),
    )


# -- the runbook engine's cutover events ----------------------------------------------------------

RUNBOOK_EVENTS = ("cutover.window_started", "cutover.rolled_back")


@dataclass(frozen=True, kw_only=True)
class RunbookEvent:
    """A `cutover.record_event` step of a runbook run, as its audit log recorded it."""

    id: int
    at: datetime
    kind: str  # window_started or rolled_back
    execution_id: str
    runbook_id: str
    detail: dict[str, str]
    started_by: str = ""
    approved_by: tuple[str, ...] = ()

    @property
    def who(self) -> str:
        people = ", ".join(n for n in dict.fromkeys((self.started_by, *self.approved_by)) if n)
        run = f"runbook {self.runbook_id}, run {self.execution_id[:8]}"
        return f"{people} ({run})" if people else run


class RunbookEvents(Protocol):
    def cutover_events(self) -> list[RunbookEvent]: ...


def parse_event_comment(comment: str) -> dict[str, str]:
    """`event=window_started, function=image-api, at=…` (how the engine writes a record)."""
    detail = {}
    for part in comment.split(", "):
        key, sep, value = part.partition("=")
        if sep:
            detail[key.strip()] = value.strip()
    return detail
