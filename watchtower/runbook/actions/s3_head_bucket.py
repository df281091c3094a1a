"""`s3.head_bucket`: whether Watchtower's credentials reach the bucket (read-only).

A 403 (no permission) or 404 (no bucket) is a finding, returned as `reachable: false` with the
status, not an error: the step's `expect:` judges it. Only a failure to ask at all raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from watchtower.runbook.actions._aws import said
from watchtower.runbook.actions.base import Action, ActionContext, register
from watchtower.runbook.errors import ActionError
from watchtower.runbook.model import ApiCall, Param

BUCKET = r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]"


@register
class HeadBucket(Action):
    name = "s3.head_bucket"
    title = "Check access to an S3 bucket"
    mutating = False
    gated = False
    inputs = (Param(name="bucket", pattern=BUCKET, required=True),)

    def plan(self, values: Mapping[str, Any], ctx: ActionContext) -> list[ApiCall]:
        return [
            ApiCall(service="s3", operation="HeadBucket", parameters={"Bucket": values["bucket"]})
        ]

    def run(self, values: Mapping[str, Any], ctx: ActionContext) -> dict[str, Any]:
        try:
            answer = ctx.aws("s3").head_bucket(Bucket=values["bucket"])
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            return {
                "bucket": values["bucket"],
                "reachable": False,
                "status_code": status,
                "error": {403: "access denied", 404: "no such bucket"}.get(status or 0, said(exc)),
            }
        except BotoCoreError as exc:
            raise ActionError(f"bucket {values['bucket']!r}: HeadBucket failed: {exc}") from exc
        return {
            "bucket": values["bucket"],
            "reachable": True,
            "status_code": answer["ResponseMetadata"]["HTTPStatusCode"],
            "region": answer.get("BucketRegion"),
            "error": "",
        }
