"""The AWS resources of the sandbox, created in the moto server as a deployment would create them.

The image core's own bootstrap creates its table and bucket; this adds what the deployment owns:
the CloudFront distribution in front of the bucket, the Lambda function's role and configuration
(its environment carries ENABLE_DYNAMODB_DUAL_WRITE, the flag runbooks flip), with `alias` a
published version and the alias serving it (as production traffic goes), and its log group.
The function's code is never run: the sandbox serves the image API from a process instead.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

SANDBOX_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "sandbox",
    "AWS_SECRET_ACCESS_KEY": "sandbox",
    "AWS_DEFAULT_REGION": "us-east-1",
}
ROLE = "image-api-sandbox-role"
_ASSUME_ROLE = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}
_HANDLER = '''"""A placeholder: the sandbox runs the image API as a local process instead."""


def handler(event, context):
    raise RuntimeError("the sandbox serves the image API from a process, not from this function")
'''


def client(service: str, endpoint_url: str, *, region: str = "us-east-1") -> Any:
    """A boto3 client for the moto server, with the sandbox's dummy credentials."""
    session = boto3.session.Session(
        aws_access_key_id=SANDBOX_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=SANDBOX_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=region,
    )
    config = Config(connect_timeout=2, read_timeout=10, retries={"mode": "standard"})
    make: Any = session.client  # the stubs want a literal service name
    return make(service, endpoint_url=endpoint_url, config=config)


@dataclass(frozen=True, kw_only=True)
class Resources:
    distribution_id: str
    distribution_domain: str
    function: str
    function_arn: str
    log_group: str
    alias: str | None = None  # what traffic goes through; None: the function unqualified
    version: str = "$LATEST"  # what the alias served when created


def create(
    endpoint_url: str,
    *,
    function: str,
    table: str,
    bucket: str,
    dual_write: bool,
    region: str = "us-east-1",
    alias: str | None = None,
) -> Resources:
    clients = {
        s: client(s, endpoint_url, region=region) for s in ("cloudfront", "iam", "lambda", "logs")
    }
    try:
        return _create(
            clients,
            function=function,
            table=table,
            bucket=bucket,
            dual_write=dual_write,
            region=region,
            alias=alias,
        )
    finally:
        for made in clients.values():
            made.close()


def _create(
    clients: dict[str, Any],
    *,
    function: str,
    table: str,
    bucket: str,
    dual_write: bool,
    region: str,
    alias: str | None,
) -> Resources:
    distribution = clients["cloudfront"].create_distribution(
        DistributionConfig={
            "CallerReference": f"watchtower-sandbox-{bucket}",
            "Comment": f"thumbnails and originals from s3://{bucket} (sandbox)",
            "Enabled": True,
            "Origins": {
                "Quantity": 1,
                "Items": [
                    {
                        "Id": "images-s3",
                        "DomainName": f"{bucket}.s3.{region}.amazonaws.com",
                        "S3OriginConfig": {"OriginAccessIdentity": ""},
                    }
                ],
            },
            "DefaultCacheBehavior": {
                "TargetOriginId": "images-s3",
                "ViewerProtocolPolicy": "redirect-to-https",
                # AWS's managed CachingOptimized policy
                "CachePolicyId": "658327ea-f89d-4fab-a63d-7e88639e58f6",
            },
        }
    )["Distribution"]

    role = clients["iam"].create_role(
        RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(_ASSUME_ROLE)
    )["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", _HANDLER)
    created = clients["lambda"].create_function(
        FunctionName=function,
        Runtime="python3.11",
        Role=role,
        Handler="handler.handler",
        Code={"ZipFile": code.getvalue()},
        MemorySize=1024,
        Timeout=30,
        Description="the image API (sandbox)",
        Environment={
            "Variables": {
                "ENABLE_DYNAMODB_DUAL_WRITE": "true" if dual_write else "false",
                "IMAGE_TABLE": table,
                "IMAGE_BUCKET": bucket,
            }
        },
    )
    version = "$LATEST"
    if alias:
        version = str(
            clients["lambda"].publish_version(
                FunctionName=function, Description="the first deployment (sandbox)"
            )["Version"]
        )
        clients["lambda"].create_alias(FunctionName=function, Name=alias, FunctionVersion=version)
    log_group = f"/aws/lambda/{function}"
    clients["logs"].create_log_group(logGroupName=log_group)
    return Resources(
        alias=alias,
        version=version,
        distribution_id=distribution["Id"],
        distribution_domain=distribution["DomainName"],
        function=function,
        function_arn=created["FunctionArn"],
        log_group=log_group,
    )
