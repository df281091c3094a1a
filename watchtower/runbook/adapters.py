"""The engine's ports, implemented over Watchtower's checks and sources, Prometheus' HTTP API and
the legacy PostgreSQL; and the cutover's reader of the engine's audit log. The composition root
(watchtower.runtime) builds them.

Each adapter translates its library's errors into SourceError with a message that names what
could not be read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import urllib3
from sqlalchemy import Engine as SqlEngine
from sqlalchemy import select

from watchtower.checks.base import Check, MetricQuery, Sources
from watchtower.checks.runner import run_checks
from watchtower.config import Settings, table_parts
from watchtower.cutover.ports import RUNBOOK_EVENTS, RunbookEvent, parse_event_comment
from watchtower.errors import SourceError
from watchtower.model import Result
from watchtower.runbook.errors import ExecutionNotFound
from watchtower.runbook.store import RunbookStore
from watchtower.runbook.tables import audit_log

MAX_ROWS = 100
MAX_MESSAGES = 50
MAX_SERIES = 50


class WatchtowerChecks:
    """Runs a registered check now, with some parameters (its window, thresholds) overridden.

    The result goes to the step, not to the history store: a runbook's 7-day window must not
    show up as the check's latest status.
    """

    def __init__(self, checks: Mapping[str, Check], settings: Settings, sources: Sources) -> None:
        self._checks = checks
        self._settings = settings
        self._sources = sources

    def run_check(self, name: str, overrides: Mapping[str, float], *, now: datetime) -> Result:
        check = self._checks[name]
        current = self._settings.check_overrides
        settings = replace(
            self._settings,
            check_overrides={**current, name: {**current.get(name, {}), **overrides}},
        )
        [result] = run_checks([check], settings=settings, sources=self._sources, now=now)
        return result


class PlatformQueries:
    """`query` steps: PromQL over Prometheus' HTTP API, CloudWatch metrics and Logs through
    Watchtower's sources, and read-only SQL against the legacy PostgreSQL."""

    def __init__(
        self,
        *,
        settings: Settings,
        sources: Sources,
        http: urllib3.PoolManager,
        prometheus_url: str | None = None,
        legacy_database_url: str | None = None,
    ) -> None:
        self._settings = settings
        self._sources = sources
        self._http = http
        self._prometheus = prometheus_url
        self._legacy = legacy_database_url

    def promql(self, query: str, *, now: datetime) -> dict[str, Any]:
        if not self._prometheus:
            raise SourceError("Prometheus is not configured (WATCHTOWER_PROMETHEUS_URL)")
        try:
            answer = self._http.request(
                "GET",
                f"{self._prometheus}/api/v1/query",
                fields={"query": query, "time": f"{now.timestamp():.3f}"},
                timeout=urllib3.Timeout(connect=2, read=10),
                retries=False,
            )
            body = json.loads(answer.data)
        except (urllib3.exceptions.HTTPError, ValueError) as exc:
            raise SourceError(f"Prometheus at {self._prometheus} could not be read: {exc}") from exc
        if answer.status != 200 or body.get("status") != "success":
            error = body.get("error", f"HTTP {answer.status}") if isinstance(body, dict) else ""
            raise SourceError(f"Prometheus refused the query {query!r}: {error}")
        data = body["data"]
        if data.get("resultType") == "scalar":
            value = _number(data["result"][1])
            return {"value": value, "series": [], "count": 0}
        series = [
            {"labels": item.get("metric", {}), "value": _number(item["value"][1])}
            for item in data.get("result", [])
            if "value" in item
        ]
        return {
            "value": series[0]["value"] if series else None,
            "series": series[:MAX_SERIES],
            "count": len(series),
        }

    def cloudwatch(self, spec: Mapping[str, Any], *, now: datetime) -> dict[str, Any]:
        window = int(spec.get("window", 300))
        stat = str(spec.get("stat", "Sum"))
        region = str(spec.get("region") or self._settings.region)
        query = MetricQuery(
            key="query",
            namespace=str(spec["namespace"]),
            metric=str(spec["metric"]),
            dimensions=tuple(
                sorted((str(k), str(v)) for k, v in spec.get("dimensions", {}).items())
            ),
            stat=stat,
            window_seconds=window,
            period_seconds=int(spec.get("period", window)),
            region=region,
        )
        series = self._sources.metrics.fetch([query], now=now, region=region)[query]
        values = [v for _, v in series]
        summary = _summary(stat, values)
        return {
            "value": summary,
            "datapoints": [{"at": at.isoformat(), "value": v} for at, v in sorted(series)],
            "count": len(values),
        }

    def logs(self, spec: Mapping[str, Any], *, now: datetime) -> dict[str, Any]:
        if self._sources.logs is None:
            raise SourceError("no CloudWatch Logs source is configured")
        window = int(spec.get("window", 900))
        limit = int(spec.get("limit", MAX_MESSAGES))
        messages = self._sources.logs.messages(
            str(spec.get("group") or self._settings.log_group),
            pattern=str(spec.get("pattern", "")),
            start=now - timedelta(seconds=window),
            end=now,
            limit=limit,
        )
        return {
            "count": len(messages),
            "messages": [m.strip()[:500] for m in messages[:MAX_MESSAGES]],
        }

    def sql(self, text: str, params: Mapping[str, Any]) -> dict[str, Any]:
        if not self._legacy:
            raise SourceError(
                "the legacy database is not configured (WATCHTOWER_LEGACY_DATABASE_URL)"
            )
        import psycopg
        from psycopg import sql

        # `{legacy_table}` is the configured legacy table, as a quoted identifier, never text.
        query = sql.SQL(text).format(
            legacy_table=sql.Identifier(*table_parts(self._settings.legacy_table))
        )
        try:
            # Read-only at the session level, whatever the text says; and bounded in time.
            with psycopg.connect(
                self._legacy,
                connect_timeout=3,
                options="-c default_transaction_read_only=on -c statement_timeout=10000",
            ) as conn:
                cursor = conn.execute(query, dict(params))
                names = [c.name for c in cursor.description or []]
                rows = [
                    dict(zip(names, map(_cell, row), strict=True))
                    for row in cursor.fetchmany(MAX_ROWS)
                ]
        except psycopg.Error as exc:
            message = " ".join(str(exc).split())
            raise SourceError(f"PostgreSQL query failed: {message}") from exc
        first = next(iter(rows[0].values()), None) if rows else None
        return {"rows": rows, "count": len(rows), "value": first}


def _summary(stat: str, values: list[float]) -> float | None:
    """The window's figure from its datapoints, as the statistic means it."""
    if not values:
        return None
    if stat == "Maximum":
        return max(values)
    if stat == "Minimum":
        return min(values)
    if stat == "Average":
        return sum(values) / len(values)
    return sum(values)  # Sum, SampleCount


def _number(raw: Any) -> float | None:
    try:
        return float(raw)
    except (TypeError, ValueError):
        return None


def _cell(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


class RunbookAuditEvents:
    """The cutover's `RunbookEvents` port: `cutover.record_event` entries of the engine's audit
    log, with who started and approved each run (read-only)."""

    def __init__(self, engine: SqlEngine, runs: RunbookStore) -> None:
        self._engine = engine
        self._runs = runs

    def cutover_events(self) -> list[RunbookEvent]:
        query = (
            select(audit_log).where(audit_log.c.action.in_(RUNBOOK_EVENTS)).order_by(audit_log.c.id)
        )
        with self._engine.connect() as conn:
            rows = list(conn.execute(query))
        runs = self._runs
        out = []
        for row in rows:
            started_by, approved = "", tuple[str, ...]()
            try:
                execution = runs.get(row.execution_id)
                started_by = execution.started_by
                approved = tuple(
                    s.approval.decided_by
                    for s in execution.steps
                    if s.approval is not None
                    and s.approval.decision == "approved"
                    and s.approval.decided_by
                )
            except ExecutionNotFound:
                pass
            at = row.at if row.at.tzinfo is not None else row.at.replace(tzinfo=UTC)
            out.append(
                RunbookEvent(
                    id=row.id,
                    at=at,
                    kind=row.action.removeprefix("cutover."),
                    execution_id=row.execution_id,
                    runbook_id=row.runbook_id,
                    detail=parse_event_comment(row.comment or ""),
                    started_by=started_by,
                    approved_by=approved,
                )
            )
        return out
