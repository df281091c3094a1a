"""The doctor's look at the targets and at the image API the probe walks. Reads only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from watchtower.config import Settings
from watchtower.doctor import Finding
from watchtower.doctor.calls import DENIED, code, why
from watchtower.probes.credential import CredentialError, ProbeCredential


def _try(feature: str, source: str, call: Callable[[], Any], fix_missing: str, iam: str) -> Finding:
    try:
        call()
    except (ClientError, BotoCoreError) as exc:
        error = code(exc)
        if error in DENIED:
            return Finding(
                feature=feature,
                source=source,
                state="missing",
                detail=f"permission denied ({iam})",
                fix=f"grant {iam} (docs/deployment.md)",
            )
        return Finding(
            feature=feature, source=source, state="missing", detail=why(exc), fix=fix_missing
        )
    return Finding(feature=feature, source=source, state="ok", detail="exists and readable")


def target_findings(settings: Settings, client: Callable[..., Any]) -> list[Finding]:
    """The targets the settings name: the function (and its alias), table, bucket, distribution."""
    s = settings
    out = [
        _try(
            "target function",
            f"lambda function {s.lambda_function!r}",
            lambda: client("lambda").get_function_configuration(FunctionName=s.lambda_function),
            "deploy it, or set WATCHTOWER_LAMBDA_FUNCTION to its name",
            "lambda:GetFunctionConfiguration",
        ),
        _try(
            "target table",
            f"dynamodb table {s.table!r}",
            lambda: client("dynamodb").describe_table(TableName=s.table),
            "create it (python -m image_core bootstrap), or set WATCHTOWER_TABLE",
            "dynamodb:DescribeTable",
        ),
        _try(
            "target bucket",
            f"s3 bucket {s.bucket!r}",
            lambda: client("s3").head_bucket(Bucket=s.bucket),
            "create it (python -m image_core bootstrap), or set WATCHTOWER_BUCKET",
            "s3:ListBucket",
        ),
    ]
    if s.lambda_alias:
        out.append(
            _try(
                "target alias",
                f"lambda alias {s.lambda_function}:{s.lambda_alias}",
                lambda: client("lambda").get_alias(
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
            _try(
                "target distribution",
                f"cloudfront distribution {s.cloudfront_distribution_id}",
                lambda: client("cloudfront").get_distribution(Id=s.cloudfront_distribution_id),
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


def probe_findings(
    settings: Settings, http: Any, credential: ProbeCredential | None
) -> list[Finding]:
    """The image API answers, and the probe signs in (a read: GET /images?limit=1)."""
    s = settings
    base = s.image_api_url.rstrip("/")
    feature = "probe upload_get"
    try:
        answer = http.request("GET", f"{base}/healthz", timeout=5, retries=False)
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
    if credential is None:
        headers = {"X-User-Id": s.probe_user}
        how = "X-User-Id (no token configured)"
    else:
        try:
            headers = {"Authorization": f"Bearer {credential.bearer()}"}
        except CredentialError as exc:
            return [
                *out,
                Finding(
                    feature=feature,
                    source=f"the probe's token from {credential.source}",
                    state="missing",
                    detail=str(exc),
                    fix="fix WATCHTOWER_PROBE_TOKEN_FILE / _COMMAND",
                ),
            ]
        how = f"a bearer token from {credential.source}"
    if not reachable:
        return out
    try:
        answer = http.request(
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
