"""The doctor's look at the account: every call here reads, none changes anything."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from watchtower.checks import registry as check_registry
from watchtower.config import Settings
from watchtower.doctor import Finding
from watchtower.doctor.contract import Need, needs
from watchtower.probes.credential import CredentialError, ProbeCredential

MakeClient = Callable[..., Any]
DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError"}
NOT_FOUND = {
    "ResourceNotFoundException",
    "NoSuchEntity",
    "NoSuchDistribution",
    "404",
    "NoSuchBucket",
}

# The calls that change things, per action the shipped runbooks use: asked of the simulator.
MUTATING = {
    "lambda.set_environment_variable": ["lambda:UpdateFunctionConfiguration"],
    "lambda.set_alias_variable": [
        "lambda:UpdateFunctionConfiguration",
        "lambda:PublishVersion",
        "lambda:UpdateAlias",
    ],
    "lambda.move_alias": ["lambda:UpdateAlias"],
    "lambda.set_reserved_concurrency": ["lambda:PutFunctionConcurrency"],
    "lambda.set_provisioned_concurrency": ["lambda:PutProvisionedConcurrencyConfig"],
    "dynamodb.set_billing_mode": ["dynamodb:UpdateTable"],
    "cloudfront.create_invalidation": ["cloudfront:CreateInvalidation"],
}


def _code(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def _why(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code')}: {' '.join(str(error.get('Message', '')).split())[:160]}"
    return type(exc).__name__  # botocore's own messages may quote a whole HTML error page


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
        findings += self.targets()
        findings += self.checks()
        findings += self.probe()
        findings += self.actions()
        findings += self.cutover()
        return findings

    # -- targets ----------------------------------------------------------------------------------

    def _try(
        self, feature: str, source: str, call: Callable[[], Any], fix_missing: str, iam: str
    ) -> Finding:
        try:
            call()
        except (ClientError, BotoCoreError) as exc:
            code = _code(exc)
            if code in DENIED:
                return Finding(
                    feature=feature,
                    source=source,
                    state="missing",
                    detail=f"permission denied ({iam})",
                    fix=f"grant {iam} (docs/deployment.md)",
                )
            return Finding(
                feature=feature, source=source, state="missing", detail=_why(exc), fix=fix_missing
            )
        return Finding(feature=feature, source=source, state="ok", detail="exists and readable")

    def targets(self) -> list[Finding]:
        s = self.settings
        out = [
            self._try(
                "target function",
                f"lambda function {s.lambda_function!r}",
                lambda: self.client("lambda").get_function_configuration(
                    FunctionName=s.lambda_function
                ),
                "deploy it, or set WATCHTOWER_LAMBDA_FUNCTION to its name",
                "lambda:GetFunctionConfiguration",
            ),
            self._try(
                "target table",
                f"dynamodb table {s.table!r}",
                lambda: self.client("dynamodb").describe_table(TableName=s.table),
                "create it (python -m image_core bootstrap), or set WATCHTOWER_TABLE",
                "dynamodb:DescribeTable",
            ),
            self._try(
                "target bucket",
                f"s3 bucket {s.bucket!r}",
                lambda: self.client("s3").head_bucket(Bucket=s.bucket),
                "create it (python -m image_core bootstrap), or set WATCHTOWER_BUCKET",
                "s3:ListBucket",
            ),
        ]
        if s.lambda_alias:
            out.append(
                self._try(
                    "target alias",
                    f"lambda alias {s.lambda_function}:{s.lambda_alias}",
                    lambda: self.client("lambda").get_alias(
                        FunctionName=s.lambda_function, Name=s.lambda_alias
                    ),
                    "create the alias, or unset WATCHTOWER_LAMBDA_ALIAS (served unqualified)",
                    "lambda:GetAlias",
                )
            )
        else:
            out.append(
                Finding(
                    feature="target alias",
                    source="WATCHTOWER_LAMBDA_ALIAS",
                    state="off",
                    detail="unset: the function is taken to be served unqualified ($LATEST)",
                    fix="set it when traffic goes through an alias (live, prod)",
                )
            )
        if s.cloudfront_distribution_id:
            out.append(
                self._try(
                    "target distribution",
                    f"cloudfront distribution {s.cloudfront_distribution_id}",
                    lambda: self.client("cloudfront").get_distribution(
                        Id=s.cloudfront_distribution_id
                    ),
                    "set WATCHTOWER_CLOUDFRONT_DISTRIBUTION_ID to the images' distribution",
                    "cloudfront:GetDistribution",
                )
            )
        else:
            out.append(
                Finding(
                    feature="target distribution",
                    source="WATCHTOWER_CLOUDFRONT_DISTRIBUTION_ID",
                    state="off",
                    detail="unset: cloudfront_hit_rate is unknown",
                    fix="set it to the distribution in front of the images",
                )
            )
        return out

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
            if _code(exc) in DENIED:
                return Finding(
                    feature="",
                    source=source,
                    state="missing",
                    detail="permission denied (cloudwatch:ListMetrics)",
                    fix="grant cloudwatch:ListMetrics and cloudwatch:GetMetricData",
                )
            return Finding(feature="", source=source, state="unknown", detail=_why(exc))
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
        group = self.settings.log_group
        source = f"REPORT lines in log group {group}"
        start = self.now - timedelta(hours=1)
        try:
            answer = self.client("logs").filter_log_events(
                logGroupName=group,
                filterPattern='?REPORT ?"platform.report"',
                startTime=int(start.timestamp() * 1000),
                endTime=int(self.now.timestamp() * 1000),
                limit=1,
            )
        except (ClientError, BotoCoreError) as exc:
            code = _code(exc)
            if code in DENIED:
                return Finding(
                    feature="",
                    source=source,
                    state="missing",
                    detail="permission denied (logs:FilterLogEvents)",
                    fix="grant logs:FilterLogEvents on the log group",
                )
            if code == "ResourceNotFoundException":
                return Finding(
                    feature="",
                    source=source,
                    state="missing",
                    detail="the log group does not exist",
                    fix="set WATCHTOWER_LAMBDA_LOG_GROUP, or invoke the function once",
                )
            return Finding(feature="", source=source, state="unknown", detail=_why(exc))
        if answer.get("events"):
            return Finding(feature="", source=source, state="ok", detail="REPORT lines found")
        return Finding(
            feature="",
            source=source,
            state="missing",
            detail="no REPORT line in the last hour",
            fix="an idle function writes none; else check WATCHTOWER_LAMBDA_LOG_GROUP",
        )

    def _flag(self) -> Finding:
        s = self.settings
        qualifier = f":{s.lambda_alias}" if s.lambda_alias else " ($LATEST)"
        source = f"lambda configuration of {s.lambda_function}{qualifier}"
        try:
            if s.lambda_alias:
                alias = self.client("lambda").get_alias(
                    FunctionName=s.lambda_function, Name=s.lambda_alias
                )
                config = self.client("lambda").get_function_configuration(
                    FunctionName=s.lambda_function, Qualifier=alias["FunctionVersion"]
                )
            else:
                config = self.client("lambda").get_function_configuration(
                    FunctionName=s.lambda_function
                )
        except (ClientError, BotoCoreError) as exc:
            denied = _code(exc) in DENIED
            return Finding(
                feature="",
                source=source,
                state="missing",
                detail="permission denied" if denied else _why(exc),
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
        source = "legacy table gallery_images and pg_stat_user_tables"
        if self._sql is None:
            return Finding(
                feature="",
                source=source,
                state="off",
                detail="no legacy database configured",
                fix="set WATCHTOWER_LEGACY_DATABASE_URL (a read-only role)",
            )
        try:
            self._sql.scalar("SELECT count(*) FROM gallery_images WHERE false", {})
            stats = self._sql.scalar(
                "SELECT n_tup_ins FROM pg_stat_user_tables WHERE relid = to_regclass(%(t)s)",
                {"t": "gallery_images"},
            )
        except Exception as exc:  # SourceError from the adapter
            return Finding(
                feature="",
                source=source,
                state="missing",
                detail=str(exc),
                fix="grant SELECT on gallery_images to Watchtower's role, or fix the URL",
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

    # -- the probe --------------------------------------------------------------------------------

    def probe(self) -> list[Finding]:
        s = self.settings
        base = s.image_api_url.rstrip("/")
        feature = "probe upload_get"
        try:
            answer = self._http.request("GET", f"{base}/healthz", timeout=5, retries=False)
            reachable = answer.status == 200
            detail = f"HTTP {answer.status}"
        except Exception as exc:  # urllib3's errors: the API is not reachable
            reachable, detail = False, f"{type(exc).__name__}"
        out = [
            Finding(
                feature=feature,
                source=f"image API {base}/healthz",
                state="ok" if reachable else "missing",
                detail="answers" if reachable else f"not reachable ({detail})",
                fix="set WATCHTOWER_IMAGE_API_URL to the image API's public URL",
            )
        ]
        if self._credential is None:
            headers = {"X-User-Id": s.probe_user}
            how = "X-User-Id (no token configured)"
        else:
            try:
                headers = {"Authorization": f"Bearer {self._credential.bearer()}"}
            except CredentialError as exc:
                return [
                    *out,
                    Finding(
                        feature=feature,
                        source=f"the probe's token from {self._credential.source}",
                        state="missing",
                        detail=str(exc),
                        fix="fix WATCHTOWER_PROBE_TOKEN_FILE / _COMMAND",
                    ),
                ]
            how = f"a bearer token from {self._credential.source}"
        if not reachable:
            return out
        try:
            answer = self._http.request(
                "GET", f"{base}/images?limit=1", headers=headers, timeout=5, retries=False
            )
            status = answer.status
        except Exception as exc:
            status, detail = 0, type(exc).__name__
        signed_in = status == 200
        out.append(
            Finding(
                feature=feature,
                source=f"sign-in with {how}",
                state="ok" if signed_in else "missing",
                detail="signed in" if signed_in else f"the probe could not sign in ({status})",
                fix="give the probe a token (WATCHTOWER_PROBE_TOKEN_FILE or _COMMAND) its "
                "issuer signs, and list its subject in IMAGE_SYNTHETIC_USER_IDS",
            )
        )
        return out

    # -- runbook actions --------------------------------------------------------------------------

    def actions(self) -> list[Finding]:
        principal, why = self._principal()
        out: list[Finding] = []
        for action, iam_actions in MUTATING.items():
            if principal is not None:
                found = self._simulate(action, iam_actions, principal)
                if found.state != "unknown":
                    out.append(found)
                    continue
                principal, why = None, found.detail.split("(", 1)[-1].rstrip(")")
            if principal is None:
                out.append(
                    Finding(
                        feature=f"action {action}",
                        source=", ".join(iam_actions),
                        state="unknown",
                        detail=f"not verified: the policy simulator was not allowed ({why})",
                        fix="grant iam:SimulatePrincipalPolicy to let doctor check it, or "
                        "compare with docs/deployment.md by hand",
                    )
                )
                continue
            out.append(self._simulate(action, iam_actions, principal))
        return out

    def _principal(self) -> tuple[str | None, str]:
        try:
            arn = str(self.client("sts").get_caller_identity()["Arn"])
        except Exception as exc:  # botocore's errors, or no credentials at all
            return None, _why(exc)
        # An assumed role's session ARN is simulated as its role.
        if ":assumed-role/" in arn:
            account = arn.split(":")[4]
            role = arn.split(":assumed-role/")[1].split("/")[0]
            arn = f"arn:aws:iam::{account}:role/{role}"
        return arn, ""

    def _simulate(self, action: str, iam_actions: list[str], principal: str) -> Finding:
        try:
            answer = self.client("iam").simulate_principal_policy(
                PolicySourceArn=principal, ActionNames=iam_actions
            )
        except Exception as exc:
            return Finding(
                feature=f"action {action}",
                source=", ".join(iam_actions),
                state="unknown",
                detail=f"not verified: the policy simulator was not allowed ({_why(exc)})",
                fix="grant iam:SimulatePrincipalPolicy, or compare with docs/deployment.md",
            )
        denied = [
            r["EvalActionName"]
            for r in answer.get("EvaluationResults", [])
            if r.get("EvalDecision") != "allowed"
        ]
        if denied:
            return Finding(
                feature=f"action {action}",
                source=", ".join(iam_actions),
                state="missing",
                detail=f"not granted: {', '.join(denied)}",
                fix="grant them (docs/deployment.md, Runbook actions)",
            )
        return Finding(
            feature=f"action {action}",
            source=", ".join(iam_actions),
            state="ok",
            detail="granted",
        )

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
