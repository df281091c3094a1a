"""POST /api/v1/alerts and GET /api/v1/executions, through Flask, with the real history store
and the real runbook engine over runbooks/ (its worker not started: runs stay pending, so what
the webhook did can be read exactly). tests/alerts/test_end_to_end.py runs the worker too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.watchtower.alerts.test_alerting import am_alert, payload
from watchtower.alerting import AlertStart
from watchtower.runtime import Watchtower
from watchtower.web import create_app

TOKEN = "hook-secret"
HOOK = {"Authorization": f"Bearer {TOKEN}"}
VIEWER = {"Authorization": "Bearer view-secret"}


@pytest.fixture
def watchtower(make_watchtower: Callable[..., Watchtower]) -> Watchtower:
    return make_watchtower(
        clock=time.time,
        webhook_token=TOKEN,
        webhook_max_bytes=4096,
        users=(("olive", "operator", "op-secret"), ("vic", "viewer", "view-secret")),
        anonymous_role=None,
        secret_key="k",
    )


@pytest.fixture
def app(watchtower: Watchtower) -> Flask:
    return create_app(watchtower)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def post(client: FlaskClient, body: Any, headers: dict[str, str] | None = None) -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(
        "/api/v1/alerts",
        data=data,
        headers=HOOK if headers is None else headers,
        content_type="application/json",
    )


def outcomes(watchtower: Watchtower) -> dict[str, float]:
    registry = watchtower.metrics.registry
    names = ("accepted", "unauthenticated", "forbidden", "too_large", "malformed", "failed")
    return {
        o: registry.get_sample_value("watchtower_alert_notifications_total", {"outcome": o}) or 0
        for o in names
    }


def executions(client: FlaskClient, **query: Any) -> list[dict[str, Any]]:
    answer = client.get("/api/v1/executions", query_string=query, headers=VIEWER)
    assert answer.status_code == 200, answer.json
    runs: list[dict[str, Any]] = answer.json["executions"]
    return runs


def test_the_bearer_token_alertmanager_sends_is_required(
    client: FlaskClient, watchtower: Watchtower
) -> None:
    missing = post(client, payload(), headers={})
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    basic = {"Authorization": "Basic b2xpdmU6b3Atc2VjcmV0"}
    assert post(client, payload(), headers=basic).status_code == 401
    assert post(client, payload(), headers={"Authorization": "Bearer nope"}).status_code == 403
    # A user's token is not the webhook's, whatever the user's role.
    assert post(client, payload(), headers={"Authorization": "Bearer op-secret"}).status_code == 403
    assert executions(client) == [] and watchtower.store.firing_alerts() == []
    assert outcomes(watchtower)["unauthenticated"] == 2
    assert outcomes(watchtower)["forbidden"] == 2


def test_without_a_configured_token_the_webhook_is_off(
    make_watchtower: Callable[..., Watchtower],
) -> None:
    answer = post(create_app(make_watchtower(clock=time.time)).test_client(), payload())
    assert answer.status_code == 503
    assert "WATCHTOWER_WEBHOOK_TOKEN" in answer.json["error"]["message"]


def test_a_body_over_the_limit_is_413(client: FlaskClient, watchtower: Watchtower) -> None:
    big = payload(am_alert(), am_alert(fingerprint="ab"))
    big["alerts"][1]["annotations"]["description"] = "x" * 5000
    assert post(client, big).status_code == 413
    assert outcomes(watchtower)["too_large"] == 1
    assert watchtower.store.firing_alerts() == [] and executions(client) == []


def test_a_malformed_payload_is_400_naming_the_field(
    client: FlaskClient, watchtower: Watchtower
) -> None:
    answer = post(client, payload(am_alert(), am_alert(table="x\ny", fingerprint="ab")))
    assert answer.status_code == 400
    assert answer.json["error"]["field"] == "alerts[1].labels.table"
    assert answer.json["error"]["message"].startswith("alerts[1].labels.table: ")
    assert post(client, b"not json").json["error"]["field"] == "body"
    # Nothing of a malformed notification is acted on, not even its valid alerts.
    assert executions(client) == [] and watchtower.store.firing_alerts() == []
    assert outcomes(watchtower)["malformed"] == 2


FIRING = payload(
    am_alert("ImageUploadProbeFailing", fingerprint="aa", probe="upload_get"),
    am_alert("LegacyInsertsAfterCutover", fingerprint="bb", check="postgres_inserts"),
    am_alert("SomethingUnrouted", fingerprint="cc", check="dual_write"),
)


def test_firing_alerts_start_their_runbooks_once_and_resolutions_reach_them(
    client: FlaskClient, watchtower: Watchtower
) -> None:
    answer = post(client, FIRING)
    assert answer.status_code == 202
    assert answer.json["received"] == 3
    assert [(s["alertname"], s["runbook"], s["mode"]) for s in answer.json["started"]] == [
        ("ImageUploadProbeFailing", "image-upload-failures", "automatic"),
        ("LegacyInsertsAfterCutover", "find-legacy-writer", "suggest"),
    ]
    ids = [s["execution"] for s in answer.json["started"]]
    assert all(ids)
    assert {a.fingerprint for a in watchtower.store.firing_alerts()} == {"aa", "bb", "cc"}
    runs = executions(client)
    assert [(r["id"], r["runbook"], r["mode"], r["alert"]["fingerprint"]) for r in runs] == [
        (ids[1], "find-legacy-writer", "suggest", "bb"),
        (ids[0], "image-upload-failures", "automatic", "aa"),
    ]
    assert {r["status"] for r in runs} == {"pending"}
    assert [s["id"] for s in runs[1]["steps"]][:2] == ["upload-success", "probe-history"]
    assert {s["status"] for s in runs[1]["steps"]} == {"pending"}

    # Alertmanager's other replica, or its retry, sends the same: nothing new starts.
    again = post(client, FIRING)
    assert again.status_code == 202
    assert [s["execution"] for s in again.json["started"]] == [None, None]
    assert len(executions(client)) == 2

    resolved = payload(
        am_alert(
            "ImageUploadProbeFailing",
            fingerprint="aa",
            probe="upload_get",
            status="resolved",
            ends_at="2026-11-27T10:07:00Z",
        ),
        status="resolved",
    )
    answer = post(client, resolved)
    assert answer.status_code == 202 and answer.json["resolved"] == ["aa"]
    assert {a.fingerprint for a in watchtower.store.firing_alerts()} == {"bb", "cc"}
    closed = next(r for r in executions(client) if r["id"] == ids[0])
    assert closed["resolved_at"] == "2026-11-27T10:07:00+00:00"
    assert closed["status"] == "cancelled"  # it had not started: no longer needed
    # The firing notification retried late, after the resolution: stale, nothing starts.
    late = post(client, FIRING)
    assert late.json["stale"] == ["aa"]
    assert len(executions(client)) == 2
    assert outcomes(watchtower)["accepted"] == 4


def test_a_runbook_that_fails_to_start_asks_alertmanager_to_retry(
    client: FlaskClient, watchtower: Watchtower, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = watchtower.runbooks
    real = engine.start_from_alerts

    def flaky(starts: Sequence[AlertStart]) -> list[str | Exception | None]:
        """One runbook's starts fail (the engine reports what a start raised); others start."""
        down = [s for s in starts if s.runbook == "image-upload-failures"]
        others = iter(real([s for s in starts if s not in down]))
        return [
            RuntimeError("the runbook store is down") if s in down else next(others) for s in starts
        ]

    both = payload(
        am_alert("ImageUploadProbeFailing", fingerprint="aa"),
        am_alert("ImageDynamoDBThrottling", fingerprint="bb"),
    )
    monkeypatch.setattr(engine, "start_from_alerts", flaky)
    answer = post(client, both)
    assert answer.status_code == 503
    assert [f["runbook"] for f in answer.json["failed"]] == ["image-upload-failures"]
    assert [s["runbook"] for s in answer.json["started"]] == ["dynamodb-throttling"]
    monkeypatch.setattr(engine, "start_from_alerts", real)
    retry = post(client, both)  # Alertmanager retries the whole notification
    assert retry.status_code == 202
    assert [(s["runbook"], bool(s["execution"])) for s in retry.json["started"]] == [
        ("image-upload-failures", True),
        ("dynamodb-throttling", False),  # already open: not started twice
    ]
    assert sorted(r["runbook"] for r in executions(client)) == [
        "dynamodb-throttling",
        "image-upload-failures",
    ]
    assert outcomes(watchtower)["failed"] == 1


def test_labels_reach_the_engine_validated(client: FlaskClient) -> None:
    # A label value the runbook's parameter pattern refuses: the run is recorded as failed,
    # saying why, and nothing runs (the engine's rule); the webhook still answers 202.
    answer = post(client, payload(am_alert("ImageDynamoDBThrottling", table="no such table!")))
    assert answer.status_code == 202
    (run,) = executions(client)
    assert (run["runbook"], run["status"]) == ("dynamodb-throttling", "failed")
    assert "table" in run["reason"] and "no such table!" in run["reason"]
    assert {s["status"] for s in run["steps"]} == {"pending"}


def test_executions_are_listed_for_viewers_newest_first(client: FlaskClient) -> None:
    post(
        client,
        payload(
            am_alert("ImageUploadProbeFailing", fingerprint="aa"),
            am_alert("ImageDynamoDBThrottling", fingerprint="bb"),
        ),
    )
    assert client.get("/api/v1/executions").status_code == 401
    assert [r["runbook"] for r in executions(client)] == [
        "dynamodb-throttling",
        "image-upload-failures",
    ]
    assert len(executions(client, limit=1)) == 1
    for bad in ("0", "501", "many", "²"):
        answer = client.get("/api/v1/executions", query_string={"limit": bad}, headers=VIEWER)
        assert answer.status_code == 400


def test_past_its_in_flight_limit_the_webhook_sheds_load_with_503(
    client: FlaskClient, app: Flask, watchtower: Watchtower
) -> None:
    from watchtower.web.alerts import SLOTS

    slots = app.extensions[SLOTS]
    held = 0
    while slots.acquire(blocking=False):  # every slot busy with another notification
        held += 1
    try:
        answer = post(client, FIRING)
    finally:
        for _ in range(held):
            slots.release()
    assert held == watchtower.settings.webhook_max_in_flight
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
    assert answer.json["error"]["code"] == "busy"
    assert watchtower.store.firing_alerts() == []  # shed before anything was stored
    assert post(client, FIRING).status_code == 202  # and served once a slot is free
