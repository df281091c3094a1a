"""Calls through a boto3 client, with botocore's errors translated into ActionError at the edge."""

from __future__ import annotations

import re
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from watchtower.runbook.errors import ActionError


def call(client: Any, operation: str, what: str, **parameters: Any) -> Any:
    """`client.<operation>(**parameters)`; ActionError naming `what` when it fails."""
    method = getattr(client, re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower())
    try:
        return method(**parameters)
    except ClientError as exc:
        raise ActionError(f"{what}: {operation} failed: {said(exc)}") from exc
    except BotoCoreError as exc:
        raise ActionError(f"{what}: {operation} failed: {exc}") from exc


def code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def said(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    message = " ".join(str(error.get("Message", "")).split())[:200]
    name = error.get("Code") or f"HTTP {status}"
    return f"{name}: {message}" if message and not message.startswith("<") else str(name)


FUNCTION = r"[A-Za-z0-9_:.-]{1,140}"  # a Lambda function's name or ARN
TABLE = r"[A-Za-z0-9_.-]{3,255}"
DISTRIBUTION = r"[A-Z0-9]{1,64}"
