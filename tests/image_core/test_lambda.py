"""The Lambda entry point: API Gateway HTTP API (payload v2) events against the moto server."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3

from image_core import lambda_handler
from image_core.app import Components, bootstrap, build
from image_core.config import Settings
from tests.helpers import image_bytes
from watchtower.sandbox import servers


def event(
    method: str,
    path: str,
    *,
    sub: str | None = "user-1",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    query: str = "",
) -> dict[str, Any]:
    """An HTTP API v2 event as API Gateway sends it, with JWT authorizer claims when `sub`."""
    context: dict[str, Any] = {
        "accountId": "123456789012",
        "apiId": "api",
        "domainName": "api.example.com",
        "http": {
            "method": method,
            "path": path,
            "protocol": "HTTP/1.1",
            "sourceIp": "203.0.113.7",
            "userAgent": "test",
        },
        "requestId": "req-1",
        "routeKey": "$default",
        "stage": "$default",
        "timeEpoch": 1_700_000_000_000,
    }
    if sub is not None:
        context["authorizer"] = {"jwt": {"claims": {"sub": sub}, "scopes": None}}
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {"host": "api.example.com", **(headers or {})},
        "requestContext": context,
        "body": base64.b64encode(body).decode() if body is not None else None,
        "isBase64Encoded": body is not None,
    }


def multipart(data: bytes) -> tuple[bytes, str]:
    body, content_type = urllib3.encode_multipart_formdata(
        {"file": ("photo.jpg", data, "image/jpeg")}
    )
    return body, content_type


@pytest.fixture
def lambda_env(
    monkeypatch: pytest.MonkeyPatch, moto: servers.MotoServer
) -> Iterator[list[Components]]:
    """Environment as the function's configuration sets it; the handler's cache starts empty.

    Yields the components the handler builds, so the test can close their clients afterwards.
    """
    env = {
        "AWS_ENDPOINT_URL": moto.url,
        "IMAGE_TABLE": "lambda-images",
        "IMAGE_BUCKET": "lambda-images",
        "IMAGE_METRICS_SINK": "emf",
        "IMAGE_METRICS_NAMESPACE": "LambdaTest",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("IMAGE_TRUST_USER_HEADER", raising=False)
    bootstrap(Settings.from_env())
    monkeypatch.setattr(lambda_handler, "_handler", None)

    built: list[Components] = []

    def recording_build(settings: Settings, **kwargs: Any) -> Components:
        components = build(settings, **kwargs)
        built.append(components)
        return components

    monkeypatch.setattr(lambda_handler, "build", recording_build)
    yield built
    for components in built:
        components.close()


def emf_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith('{"_aws"')]


def test_get_images_is_200_json(lambda_env: list[Components]) -> None:
    answer = lambda_handler.handler(event("GET", "/images"), None)
    assert answer["statusCode"] == 200
    headers = {k.lower(): v for k, v in answer["headers"].items()}
    assert headers["content-type"] == "application/json"
    assert json.loads(answer["body"]) == {"items": [], "next_cursor": None}


def test_upload_get_and_list_through_lambda(lambda_env: list[Components]) -> None:
    body, content_type = multipart(image_bytes("JPEG", (800, 600)))
    created = lambda_handler.handler(
        event("POST", "/images", headers={"content-type": content_type}, body=body), None
    )
    assert created["statusCode"] == 201, created["body"]
    image = json.loads(created["body"])
    assert image["thumbnail"]["width"] == 400

    got = lambda_handler.handler(event("GET", f"/images/{image['id']}"), None)
    assert got["statusCode"] == 200 and json.loads(got["body"])["id"] == image["id"]
    listed = lambda_handler.handler(event("GET", "/images", query="limit=5"), None)
    assert [i["id"] for i in json.loads(listed["body"])["items"]] == [image["id"]]
    # The claims decide who the caller is: another subject does not see the image.
    other = lambda_handler.handler(event("GET", f"/images/{image['id']}", sub="user-2"), None)
    assert other["statusCode"] == 404


def test_no_claims_is_401(lambda_env: list[Components]) -> None:
    answer = lambda_handler.handler(event("GET", "/images", sub=None), None)
    assert answer["statusCode"] == 401
    assert json.loads(answer["body"])["error"]["code"] == "unauthenticated"


def test_user_header_is_not_trusted_on_lambda(lambda_env: list[Components]) -> None:
    answer = lambda_handler.handler(
        event("GET", "/images", sub=None, headers={"x-user-id": "mallory"}), None
    )
    assert answer["statusCode"] == 401


def test_cold_start_is_counted_once(
    lambda_env: list[Components], capsys: pytest.CaptureFixture[str]
) -> None:
    for _ in range(3):
        assert lambda_handler.handler(event("GET", "/images"), None)["statusCode"] == 200
    docs = emf_lines(capsys.readouterr().out)
    cold = [d for d in docs if "ColdStarts" in d]
    assert len(cold) == 1 and cold[0]["ColdStarts"] == [1]
    assert cold[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "LambdaTest"
    assert len(lambda_env) == 1  # built once per container, reused by later invocations
    requests = [d for d in docs if "Requests" in d]
    assert len(requests) == 3
    assert all(d["Operation"] == "list" and d["Outcome"] == "success" for d in requests)


def test_auto_metrics_sink_is_emf_on_lambda(
    lambda_env: list[Components],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("IMAGE_METRICS_SINK")
    lambda_handler.handler(event("GET", "/images"), None)
    assert any("ColdStarts" in d for d in emf_lines(capsys.readouterr().out))
