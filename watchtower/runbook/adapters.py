"""The engine's ports, implemented over Watchtower's checks and sources, Prometheus' HTTP API and
the legacy PostgreSQL; and `build_engine`, which wires an Engine from settings.

Each adapter translates its library's errors into SourceError with a message that names what
could not be read.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import urllib3
from sqlalchemy import Engine as SqlEngine

from watchtower import aws
from watchtower.checks.base import Check, MetricQuery, Sources
from watchtower.checks.runner import run_checks
from watchtower.config import Settings
from watchtower.errors import SourceError
from watchtower.model import Result
from watchtower.runbook.engine import Engine
from watchtower.runbook.parser import catalog, default_dir, load
from watchtower.runbook.store import RunbookStore

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

        try:
            # Read-only at the session level, whatever the text says; and bounded in time.
            with psycopg.connect(
                self._legacy,
                connect_timeout=3,
                options="-c default_transaction_read_only=on -c statement_timeout=10000",
            ) as conn:
                cursor = conn.execute(text, dict(params))
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


def build_engine(
    settings: Settings,
    database: SqlEngine,
    *,
    sources: Sources,
    checks: Mapping[str, Check],
    http: urllib3.PoolManager,
    closers: list[Callable[[], None]],
) -> Engine:
    """The engine over the settings' runbooks directory; its worker is started by the caller."""
    store = RunbookStore(database)
    store.create_schema()
    known = catalog()
    directory = Path(settings.runbooks_dir) if settings.runbooks_dir else default_dir()
    runbooks, problems = load([directory], known)

    @functools.cache
    def client(service: str) -> Any:
        return aws.client(service, settings)

    redis_client: Callable[[], Any] | None = None
    if settings.image_redis_url:
        lock = threading.Lock()
        made: list[Any] = []

        def redis_client() -> Any:
            with lock:
                if not made:
                    import redis

                    made.append(
                        redis.Redis.from_url(
                            str(settings.image_redis_url),
                            socket_timeout=5,
                            socket_connect_timeout=2,
                            decode_responses=True,
                        )
                    )
                return made[0]

        def close_redis() -> None:
            with lock:
                for made_client in made:
                    made_client.close()
                made.clear()

        closers.append(close_redis)

    engine = Engine(
        store=store,
        runbooks=runbooks,
        catalog=known,
        settings=settings,
        checks=WatchtowerChecks(checks, settings, sources),
        queries=PlatformQueries(
            settings=settings,
            sources=sources,
            http=http,
            prometheus_url=settings.prometheus_url,
            legacy_database_url=settings.legacy_database_url,
        ),
        aws=client,
        redis=redis_client,
        problems=problems,
        approval_timeout=timedelta(seconds=settings.runbook_approval_timeout),
        workers=settings.runbook_workers,
        lease=timedelta(seconds=settings.runbook_lease_seconds),
    )
    closers.append(engine.stop_worker)
    return engine
