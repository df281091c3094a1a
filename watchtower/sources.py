"""Adapters for the ports checks read through: CloudWatch, CloudWatch Logs, Lambda, PostgreSQL.

Each takes a ready client (or a URL) and translates its library's errors into SourceError, with
a message that names what could not be read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from watchtower.checks.base import MetricQuery, Series, ServedVersion, TableSql
from watchtower.config import regclass_text, table_parts
from watchtower.errors import SourceError

MAX_QUERIES_PER_CALL = 500  # the GetMetricData limit


class CloudWatchMetrics:
    """Fetches every query of a cycle with as few GetMetricData calls as the API allows."""

    def __init__(self, clients: Mapping[str, Any]) -> None:
        self._clients = clients  # region -> CloudWatch client
        self.calls = 0

    def fetch(
        self, queries: Sequence[MetricQuery], *, now: datetime, region: str
    ) -> dict[MetricQuery, Series]:
        out: dict[MetricQuery, Series] = {q: [] for q in queries}
        groups: dict[tuple[int, int], list[MetricQuery]] = {}
        for q in queries:
            period = q.period_seconds or q.window_seconds
            groups.setdefault((q.window_seconds, period), []).append(q)
        client = self._clients[region]
        for (window, period), group in groups.items():
            for start in range(0, len(group), MAX_QUERIES_PER_CALL):
                chunk = group[start : start + MAX_QUERIES_PER_CALL]
                self._fetch_chunk(
                    client, chunk, out, now=now, window=window, period=period, region=region
                )
        return out

    def _fetch_chunk(
        self,
        client: Any,
        chunk: list[MetricQuery],
        out: dict[MetricQuery, Series],
        *,
        now: datetime,
        window: int,
        period: int,
        region: str,
    ) -> None:
        ids = {f"q{i}": q for i, q in enumerate(chunk)}
        request: dict[str, Any] = {
            "MetricDataQueries": [
                {
                    "Id": qid,
                    "MetricStat": {
                        "Metric": {
                            "Namespace": q.namespace,
                            "MetricName": q.metric,
                            "Dimensions": [{"Name": k, "Value": v} for k, v in q.dimensions],
                        },
                        "Period": period,
                        "Stat": q.stat,
                    },
                    "ReturnData": True,
                }
                for qid, q in ids.items()
            ],
            "StartTime": now - timedelta(seconds=window),
            "EndTime": now,
            "ScanBy": "TimestampAscending",
        }
        try:
            while True:
                self.calls += 1
                answer = client.get_metric_data(**request)
                for item in answer.get("MetricDataResults", []):
                    query = ids.get(item["Id"])
                    if query is not None:
                        out[query].extend(
                            zip(item.get("Timestamps", []), item.get("Values", []), strict=False)
                        )
                token = answer.get("NextToken")
                if not token:
                    break
                request["NextToken"] = token
        except (ClientError, BotoCoreError) as exc:
            raise SourceError(f"CloudWatch GetMetricData in {region} failed: {exc}") from exc


class CloudWatchLogs:
    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls = 0

    def messages(
        self, log_group: str, *, pattern: str, start: datetime, end: datetime, limit: int
    ) -> list[str]:
        found = self.events(log_group, pattern=pattern, start=start, end=end, limit=limit)
        return [message for _, message in found]

    def events(
        self, log_group: str, *, pattern: str, start: datetime, end: datetime, limit: int
    ) -> list[tuple[str, str]]:
        """(log stream, message) of each matching event: Lambda names a stream by the version
        that wrote it, `YYYY/MM/DD/[VERSION]…`."""
        request: dict[str, Any] = {
            "logGroupName": log_group,
            "filterPattern": pattern,
            "startTime": int(start.timestamp() * 1000),
            "endTime": int(end.timestamp() * 1000),
        }
        found: list[tuple[str, str]] = []
        try:
            while len(found) < limit:
                self.calls += 1
                answer = self._client.filter_log_events(**request)
                found.extend(
                    (e.get("logStreamName") or "", e["message"]) for e in answer.get("events", [])
                )
                token = answer.get("nextToken")
                if not token:
                    break
                request["nextToken"] = token
        except (ClientError, BotoCoreError) as exc:
            raise SourceError(
                f"CloudWatch Logs group {log_group!r} could not be read: {exc}"
            ) from exc
        return found[:limit]


class LambdaConfig:
    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls = 0

    def environment(self, function: str) -> dict[str, str]:
        try:
            self.calls += 1
            answer = self._client.get_function_configuration(FunctionName=function)
        except (ClientError, BotoCoreError) as exc:
            raise SourceError(
                f"Lambda function {function!r} configuration could not be read: {exc}"
            ) from exc
        variables: dict[str, str] = (answer.get("Environment") or {}).get("Variables") or {}
        return variables

    def served(self, function: str, alias: str | None) -> list[ServedVersion]:
        """The versions `alias` routes to, each with its weight and configuration."""
        if not alias:
            return [self._version(function, "$LATEST", 1.0)]
        try:
            self.calls += 1
            answer = self._client.get_alias(FunctionName=function, Name=alias)
        except (ClientError, BotoCoreError) as exc:
            raise SourceError(
                f"alias {alias!r} of Lambda function {function!r} could not be read: {exc}"
            ) from exc
        extra = (answer.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
        main = 1.0 - sum(float(w) for w in extra.values())
        served = [self._version(function, str(answer["FunctionVersion"]), main)]
        served += [self._version(function, str(v), float(w)) for v, w in sorted(extra.items())]
        return served

    def _version(self, function: str, version: str, weight: float) -> ServedVersion:
        try:
            self.calls += 1
            answer = self._client.get_function_configuration(
                FunctionName=function, Qualifier=version
            )
        except (ClientError, BotoCoreError) as exc:
            raise SourceError(
                f"Lambda function {function!r} version {version} could not be read: {exc}"
            ) from exc
        return ServedVersion(
            version=version,
            weight=weight,
            environment=(answer.get("Environment") or {}).get("Variables") or {},
            code_sha256=answer.get("CodeSha256") or "",
            description=answer.get("Description") or "",
        )


class PostgresSql:
    """Read-only scalar queries against the legacy database; one short-lived connection each.

    `table` is the legacy table (WATCHTOWER_LEGACY_TABLE), validated here again: a TableSql's
    `{table}` becomes that name as a quoted identifier (psycopg.sql), never as text.
    """

    def __init__(self, url: str, *, table: str, connect_timeout: int = 3) -> None:
        self._url = url
        self._parts = table_parts(table)
        self.table = table
        self._connect_timeout = connect_timeout

    def scalar(self, sql: str | TableSql, params: Mapping[str, Any]) -> Any:
        import psycopg
        from psycopg import sql as pgsql

        values = dict(params)
        query: str | pgsql.Composed
        if isinstance(sql, TableSql):
            query = pgsql.SQL(sql.template).format(table=pgsql.Identifier(*self._parts))
            if "%(table_regclass)s" in sql.template:
                values["table_regclass"] = regclass_text(self.table)
            if "%(table_name)s" in sql.template:
                values["table_name"] = self._parts[-1]
        else:
            query = sql
        try:
            with psycopg.connect(
                self._url,
                connect_timeout=self._connect_timeout,
                options="-c default_transaction_read_only=on -c statement_timeout=5000",
            ) as conn:
                row = conn.execute(query, values).fetchone()
        except psycopg.Error as exc:
            # psycopg's messages span lines (a hint on the next); a reason is one line.
            message = " ".join(str(exc).split())
            raise SourceError(f"PostgreSQL could not be read: {message}") from exc
        return None if row is None else row[0]
