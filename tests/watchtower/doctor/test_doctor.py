"""`watchtower doctor` against the moto server: an empty account names every missing piece and
exits 1; an account with everything in place reports it present. The moto server lacks IAM's
policy simulator (SimulatePrincipalPolicy answers 500), so its verdicts come from botocore's
Stubber on the IAM client, and for that call only."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from click.testing import CliRunner

from image_core.app import Components
from tests.helpers import create_function
from watchtower.cli import main
from watchtower.config import Settings
from watchtower.doctor import Finding, failed
from watchtower.doctor.contract import needs
from watchtower.doctor.permissions import _principal, _simulate
from watchtower.doctor.run import diagnose
from watchtower.runtime import Watchtower
from watchtower.sandbox.servers import MotoServer

MakeWatchtower = Callable[..., Watchtower]


def by_source(findings: list[Finding]) -> dict[str, Finding]:
    return {f"{f.feature} | {f.source}": f for f in findings}


def test_an_empty_account_names_every_missing_piece(moto: MotoServer, tmp_path: Any) -> None:
    env = {
        "AWS_ENDPOINT_URL": moto.url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "WATCHTOWER_DATABASE_URL": f"sqlite:///{tmp_path / 'w.sqlite'}",
        "WATCHTOWER_IMAGE_API_URL": "http://127.0.0.1:9",
        "WATCHTOWER_LAMBDA_ALIAS": "live",
    }
    result = CliRunner().invoke(main, ["doctor", "--json"], env=env)
    assert result.exit_code == 1, result.output
    document = json.loads(result.stdout)
    assert document["ok"] is False
    missing = {f["source"] for f in document["findings"] if f["state"] == "missing"}
    assert {
        "lambda function 'image-api'",
        "lambda alias image-api:live",
        "dynamodb table 'images'",
        "s3 bucket 'images'",
        "REPORT lines in log group /aws/lambda/image-api",
        "lambda configuration of image-api:live",
        "image API http://127.0.0.1:9/healthz",
    } <= missing
    # Every metric the image core must publish is named; throttling metrics are absent when
    # healthy, so their absence is no gap.
    for need in needs(Settings()):
        if need.kind == "metric" and need.namespace == "ImageService":
            assert f"metric {need.name}" in missing
        if need.sparse:
            assert f"metric {need.name}" not in missing
    fixes = {f["source"]: f["fix"] for f in document["findings"]}
    assert "WATCHTOWER_LAMBDA_ALIAS" in fixes["lambda alias image-api:live"]
    off = {f["source"] for f in document["findings"] if f["state"] == "off"}
    assert {"WATCHTOWER_CLOUDFRONT_DISTRIBUTION_ID"} <= off

    lines = CliRunner().invoke(main, ["doctor"], env=env)
    assert lines.exit_code == 1
    assert lines.stdout.strip().splitlines()[-1].startswith("watchtower doctor: gaps found (")


def _publish_everything(
    moto_url: str, settings: Settings, now: datetime, *, stream_version: str | None = None
) -> None:
    """Everything the checks read; the REPORT line in the stream of the alias's version (or of
    `stream_version`), named as Lambda names streams."""
    client = functools.cache(
        lambda service: boto3.client(service, endpoint_url=moto_url, region_name="us-east-1")
    )
    lam = client("lambda")
    create_function(client("iam"), lam, "image-api", {"ENABLE_DYNAMODB_DUAL_WRITE": "true"})
    version = lam.publish_version(FunctionName="image-api")["Version"]
    lam.create_alias(FunctionName="image-api", Name="live", FunctionVersion=version)
    logs = client("logs")
    logs.create_log_group(logGroupName="/aws/lambda/image-api")
    stream = f"{now:%Y/%m/%d}/[{stream_version or version}]0123456789abcdef"
    logs.create_log_stream(logGroupName="/aws/lambda/image-api", logStreamName=stream)
    logs.put_log_events(
        logGroupName="/aws/lambda/image-api",
        logStreamName=stream,
        logEvents=[
            {
                "timestamp": int(now.timestamp() * 1000) - 60_000,
                "message": "REPORT RequestId: r1 Duration: 12.00 ms Billed Duration: 13 ms",
            }
        ],
    )
    for need in needs(settings):
        if need.kind != "metric" or need.sparse:
            continue
        client("cloudwatch").put_metric_data(
            Namespace=need.namespace,
            MetricData=[
                {
                    "MetricName": need.metric,
                    "Dimensions": [{"Name": d, "Value": "x"} for d in need.dimensions],
                    "Value": 1.0,
                    "Timestamp": now,
                }
            ],
        )


def test_an_account_with_everything_in_place_is_reported_present(
    moto: MotoServer,
    make_watchtower: MakeWatchtower,
    make_components: Callable[..., Components],
    serve_api: Callable[[Components], str],
) -> None:
    components = make_components()  # bootstraps the table and the bucket; trusts X-User-Id
    api = serve_api(components)
    wt = make_watchtower(
        clock=time.time,
        aws_endpoint_url=moto.url,
        image_api_url=api,
        lambda_alias="live",
        cloudfront_distribution_id=None,
    )
    _publish_everything(moto.url, wt.settings, datetime.now(UTC))

    findings, text = diagnose(wt)

    assert not failed(findings), text
    states = {f.state for f in findings}
    assert states <= {"ok", "off", "unknown"}, text
    seen = by_source(findings)
    assert seen["probe upload_get | sign-in with X-User-Id (no token configured)"].state == "ok"
    assert seen["target alias | lambda alias image-api:live"].state == "ok"
    flag = seen[
        "check dual_write, lambda_cold_starts, postgres_inserts"
        " | lambda configuration of image-api:live"
    ]
    assert flag.detail == "readable; ENABLE_DYNAMODB_DUAL_WRITE=true"
    assert text.splitlines()[-1].startswith(
        "watchtower doctor: everything configured is in place ("
    )
    report = seen["check lambda_cold_starts | REPORT lines in log group /aws/lambda/image-api"]
    assert report.detail == "REPORT lines found (1 of version 1)"


def test_report_lines_of_a_version_the_alias_does_not_serve_are_a_gap(
    moto: MotoServer, make_watchtower: MakeWatchtower
) -> None:
    # The alias serves version 1; the only REPORT line is $LATEST's, which the cold-start check
    # does not count.
    wt = make_watchtower(clock=time.time, aws_endpoint_url=moto.url, lambda_alias="live")
    _publish_everything(moto.url, wt.settings, datetime.now(UTC), stream_version="$LATEST")

    findings, text = diagnose(wt)

    report = by_source(findings)[
        "check lambda_cold_starts | REPORT lines in log group /aws/lambda/image-api"
    ]
    assert report.state == "missing", text
    assert report.detail == ("1 REPORT line(s) in the last hour, none from the served version(s) 1")
    assert "WATCHTOWER_LAMBDA_ALIAS" in report.fix


@pytest.mark.parametrize(("decision", "state"), [("allowed", "ok"), ("implicitDeny", "missing")])
def test_permissions_to_change_things_are_asked_of_the_policy_simulator(
    moto: MotoServer, decision: str, state: str
) -> None:
    real = functools.cache(
        lambda service: boto3.client(service, endpoint_url=moto.url, region_name="us-east-1")
    )
    iam = boto3.client(
        "iam", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    stub = Stubber(iam)  # the moto server has no SimulatePrincipalPolicy
    stub.add_response(
        "simulate_principal_policy",
        {"EvaluationResults": [{"EvalActionName": "lambda:UpdateAlias", "EvalDecision": decision}]},
        {
            "PolicySourceArn": "arn:aws:iam::123456789012:role/watchtower",
            "ActionNames": ["lambda:UpdateAlias"],
        },
    )
    sts = boto3.client(
        "sts", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    sts_stub = Stubber(sts)  # an assumed role's session, simulated as its role
    sts_stub.add_response(
        "get_caller_identity",
        {
            "Arn": "arn:aws:sts::123456789012:assumed-role/watchtower/session-1",
            "Account": "123456789012",
            "UserId": "AROA:session-1",
        },
    )

    def make(service: str, region: str | None = None) -> Any:
        return {"iam": iam, "sts": sts}.get(service) or real(service)

    with stub, sts_stub:
        principal, _ = _principal(make)
        assert principal == "arn:aws:iam::123456789012:role/watchtower"
        found = _simulate(make, "lambda.move_alias", ["lambda:UpdateAlias"], principal)
    assert found.state == state
    if state == "missing":
        assert found.detail == "not granted: lambda:UpdateAlias"
