"""The doctor's look at the account: every call here reads, none changes anything."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from watchtower.checks import registry as check_registry
from watchtower.checks.base import TableSql
from watchtower.checks.lambda_cold_starts import by_version
from watchtower.checks.postgres_inserts import INSERTED_SINCE_STATS_RESET
from watchtower.config import Settings
from watchtower.doctor import Finding
from watchtower.doctor.calls import DENIED, code, why
from watchtower.doctor.contract import Need, needs
from watchtower.doctor.permissions import action_findings
from watchtower.doctor.reach import probe_findings, target_findings
from watchtower.probes.credential import ProbeCredential

MakeClient = Callable[..., Any]
REPORT_LINES_READ = 50  # the newest lines, enough to see which versions write them
# The legacy table is `{table}` (TableSql): composed by the SQL adapter as an identifier.
LEGACY_EXISTS = TableSql("SELECT to_regclass(%(table_regclass)s) IS NOT NULL")
LEGACY_READABLE = TableSql("SELECT count(*) FROM (SELECT 1 FROM {table} LIMIT 1) one")


class Examiner:
    def __init__(
        self,
        settings: Settings,
        make_client: MakeClient,
        *,
        http: Any,
        legacy_sql: Any = None,
        credential: ProbeCredential | None = None,
        now: datetime | None = None,
    ) -> None:
        self.settings = settings
        self._make = make_client
        self._http = http
        self._sql = legacy_sql
        self._credential = credential
        self.now = now or datetime.now(UTC)
        self._seen: dict[str, Finding] = {}

    def client(self, service: str, region: str | None = None) -> Any:
        return self._make(service, region=region) if region else self._make(service)

    # -- the whole look -------------------------------------------------------------------------

    def examine(self) -> list[Finding]:
        findings: list[Finding] = []
        findings += target_findings(self.settings, self.client)
        findings += self.checks()
        findings += probe_findings(self.settings, self._http, self._credential)
        findings += action_findings(self.client)
        findings += self.cutover()
        return findings

    # -- checks -----------------------------------------------------------------------------------

    def checks(self) -> list[Finding]:
        out = []
        for need in needs(self.settings, check_registry()):
            feature = "check " + ", ".join(need.checks)
            out.append(self.need(feature, need))
        return out

    def need(self, feature: str, need: Need) -> Finding:
        key = f"{need.kind}:{need.name}"
        if key not in self._seen:
            self._seen[key] = self._look(need)
        found = self._seen[key]
        return Finding(
            feature=feature,
            source=found.source,
            state=found.state,
            detail=found.detail,
            fix=found.fix,
        )

    def _look(self, need: Need) -> Finding:
        if need.kind == "metric":
            return self._metric(need)
        if need.kind == "logs":
            return self._logs(need)
        if need.kind == "lambda":
            return self._flag()
        return self._legacy(need)

    def _metric(self, need: Need) -> Finding:
        s = self.settings
        source = f"metric {need.name}"
        if need.namespace == "AWS/CloudFront" and not s.cloudfront_distribution_id:
            return Finding(
                feature="",
                source=source,
                state="off",
                detail="no distribution configured",
                fix="set WATCHTOWER_CLOUDFRONT_DISTRIBUTION_ID",
            )
        try:
            listed = self.client("cloudwatch", need.region).list_metrics(
                Namespace=need.namespace, MetricName=need.metric, RecentlyActive="PT3H"
            )
        except (ClientError, BotoCoreError) as exc:
            if code(exc) in DENIED:
                return Finding(
                    feature="",
                    source=source,
                    state="missing",
                    detail="permission denied (cloudwatch:ListMetrics)",
                    fix="grant cloudwatch:ListMetrics and cloudwatch:GetMetricData",
                )
            return Finding(feature="", source=source, state="unknown", detail=why(exc))
        wanted = set(need.dimensions)
        present = any(
            {d["Name"] for d in m.get("Dimensions", [])} == wanted
            for m in listed.get("Metrics", [])
        )
        if present:
            return Finding(feature="", source=source, state="ok", detail="published recently")
        if need.sparse:
            return Finding(
                feature="",
                source=source,
                state="ok",
                detail="not published now, as expected: only when requests are throttled",
            )
        if need.opt_in:
            return Finding(
                feature="",
                source=source,
                state="missing",
                detail="no datapoints: CloudFront's additional metrics are off",
                fix="turn on the distribution's additional metrics (CloudFront console, "
                "Telemetry > Monitoring), or CreateMonitoringSubscription",
            )
        publisher = (
            "the image core (IMAGE_METRICS_NAMESPACE, IMAGE_METRICS_SINK)"
            if need.namespace == s.metrics_namespace
            else need.namespace.split("/")[-1]
        )
        return Finding(
            feature="",
            source=source,
            state="missing",
            detail="not published in the last 3 hours",
            fix=f"check that {publisher} publishes it in {need.region or s.region} "
            "(docs/metrics-contract.md)",
        )

    def _logs(self, need: Need) -> Finding:
        """REPORT lines of the version(s) that serve traffic: lines of a version rolled away from,
        or in streams not named by version, are not what the cold-start check counts."""
        group = self.settings.log_group
        source = f"REPORT lines in log group {group}"
        start = self.now - timedelta(hours=1)
        try:
            versions = self._served_versions()
            answer = self.client("logs").filter_log_events(
                logGroupName=group,
                filterPattern='?REPORT ?"platform.report"',
                startTime=int(start.timestamp() * 1000),
                endTime=int(self.now.timestamp() * 1000),
                limit=REPORT_LINES_READ,
            )
        except (ClientError, BotoCoreError) as exc:
            error = code(exc)
            if error in DENIED:
                return Finding(
                    feature="",
                    source=source,
                    state="missing",
                    detail=f"permission denied ({getattr(exc, 'operation_name', 'a read')})",
                    fix="grant logs:FilterLogEvents on the log group (and lambda:GetAlias)",
                )
            if error == "ResourceNotFoundException":
                return Finding(
                    feature="",
                    source=source,
                    state="missing",
                    detail="the log group (or the alias) does not exist",
                    fix="set WATCHTOWER_LAMBDA_LOG_GROUP (and WATCHTOWER_LAMBDA_ALIAS), "
                    "or invoke the function once",
                )
            return Finding(feature="", source=source, state="unknown", detail=why(exc))
        events = answer.get("events") or []
        wanted, left_out = by_version(
            ((e.get("logStreamName", ""), e.get("message", "")) for e in events), versions
        )
        served = ", ".join(versions)
        found = {v: len(lines) for v, lines in wanted.items() if lines}
        if found:
            counts = ", ".join(f"{n} of version {v}" for v, n in found.items())
            return Finding(
                feature="", source=source, state="ok", detail=f"REPORT lines found ({counts})"
            )
        if left_out:
            return Finding(
                feature="",
                source=source,
                state="missing",
                detail=f"{left_out} REPORT line(s) in the last hour, none from the served "
                f"version(s) {served}",
                fix="the cold-start check counts only the served versions' log streams "
                "(YYYY/MM/DD/[VERSION]...): check WATCHTOWER_LAMBDA_ALIAS",
            )
        return Finding(
            feature="",
            source=source,
            state="missing",
            detail="no REPORT line in the last hour",
            fix="an idle function writes none; else check WATCHTOWER_LAMBDA_LOG_GROUP",
        )

    def _served_versions(self) -> list[str]:
        s = self.settings
        if not s.lambda_alias:
            return ["$LATEST"]
        alias = self.client("lambda").get_alias(FunctionName=s.lambda_function, Name=s.lambda_alias)
        extra = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
        return [str(alias["FunctionVersion"]), *sorted(str(v) for v in extra)]

    def _flag(self) -> Finding:
        s = self.settings
        qualifier = f":{s.lambda_alias}" if s.lambda_alias else " ($LATEST)"
        source = f"lambda configuration of {s.lambda_function}{qualifier}"
        try:
            if s.lambda_alias:
                config = self.client("lambda").get_function_configuration(
                    FunctionName=s.lambda_function, Qualifier=self._served_versions()[0]
                )
            else:
                config = self.client("lambda").get_function_configuration(
                    FunctionName=s.lambda_function
                )
        except (ClientError, BotoCoreError) as exc:
            denied = code(exc) in DENIED
            return Finding(
                feature="",
                source=source,
                state="missing",
                detail="permission denied" if denied else why(exc),
                fix="grant lambda:GetFunctionConfiguration and lambda:GetAlias"
                if denied
                else "set WATCHTOWER_LAMBDA_FUNCTION (and WATCHTOWER_LAMBDA_ALIAS)",
            )
        variables = (config.get("Environment") or {}).get("Variables") or {}
        flag = variables.get("ENABLE_DYNAMODB_DUAL_WRITE", "unset")
        return Finding(
            feature="",
            source=source,
            state="ok",
            detail=f"readable; ENABLE_DYNAMODB_DUAL_WRITE={flag}",
        )

    def _legacy(self, need: Need) -> Finding:
        table = self.settings.legacy_table
        source = f"legacy table {table} (WATCHTOWER_LEGACY_TABLE) and pg_stat_user_tables"
        if self._sql is None:
            return Finding(
                feature="",
                source=source,
                state="off",
                detail="no legacy database configured",
                fix="set WATCHTOWER_LEGACY_DATABASE_URL (a read-only role)",
            )
        try:
            exists = self._sql.scalar(LEGACY_EXISTS, {})
            if not exists:
                return Finding(
                    feature="",
                    source=source,
                    state="missing",
                    detail=f"no table {table} in the legacy database (on its search_path)",
                    fix="set WATCHTOWER_LEGACY_TABLE to the legacy table (schema.table when it "
                    "is not on the role's search_path)",
                )
            self._sql.scalar(LEGACY_READABLE, {})
            stats = self._sql.scalar(INSERTED_SINCE_STATS_RESET, {})
        except Exception as exc:  # SourceError from the adapter
            return Finding(
                feature="",
                source=source,
                state="missing",
                detail=str(exc),
                fix=f"grant SELECT on {table} to Watchtower's role, or fix the URL",
            )
        if stats is None:
            return Finding(
                feature="",
                source=source,
                state="missing",
                detail="the table is readable, its statistics are not",
                fix="grant pg_read_all_stats (or run Watchtower's role as the table's owner)",
            )
        return Finding(feature="", source=source, state="ok", detail="table and statistics read")

    # -- the cutover ------------------------------------------------------------------------------

    def cutover(self) -> list[Finding]:
        wanted = {"metric", "lambda", "sql"}
        out = []
        for need in needs(self.settings, check_registry()):
            if (
                need.kind in wanted
                and (need.kind != "metric" or need.metric in ("DualWrites", "Requests", "Latency"))
                and need.namespace in ("", self.settings.metrics_namespace)
            ):
                out.append(self.need("cutover", need))
        return out


def examine(
    settings: Settings,
    make_client: MakeClient,
    *,
    http: Any,
    legacy_sql: Any = None,
    credential: ProbeCredential | None = None,
    clock: Callable[[], float] = time.time,
) -> list[Finding]:
    now = datetime.fromtimestamp(clock(), UTC)
    return Examiner(
        settings, make_client, http=http, legacy_sql=legacy_sql, credential=credential, now=now
    ).examine()
