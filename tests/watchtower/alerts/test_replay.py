"""Alert replay: every notification the webhook accepts is stored verbatim, and replaying one
(the button on its page, the API, `watchtower alerts replay ID --dry-run`) starts the routes'
runbooks from it in dry-run mode, which changes nothing: the AWS state (moto) is compared."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient

from tests.watchtower.alerts.test_alerting import am_alert, payload
from tests.watchtower.runbook.conftest import Aws
from watchtower.alerting import parse_routes
from watchtower.cli import main
from watchtower.runbook import alert_records as runbook_store
from watchtower.runtime import Watchtower
from watchtower.web import create_app

TOKEN = "hook-secret-3f9a"
HOOK = {"Authorization": f"Bearer {TOKEN}"}
OPERATOR = {"Authorization": "Bearer op-secret-77c1"}
VIEWER = {"Authorization": "Bearer view-secret-9e20"}
FUNCTION = "image-api"
ALERT = am_alert("LegacyInsertsAfterCutover", fingerprint="feedbeef")
# A route to a runbook that changes AWS (the Lambda function's flag), so a replay's dry run has
# something it must not change. The default table routes this alert to find-legacy-writer, which
# reads PostgreSQL only.
ROUTE_TABLE = {
    "routes": [
        {
            "matchers": ["alertname = LegacyInsertsAfterCutover"],
            "runbook": "rollback-dual-write",
            "mode": "suggest",
        }
    ]
}
ROUTES = parse_routes(ROUTE_TABLE, source="test")


@pytest.fixture
def aws(moto: Any) -> Aws:
    made = Aws(moto.url)
    made.function({"ENABLE_DYNAMODB_DUAL_WRITE": "false", "IMAGE_TABLE": "images"})
    return made


@pytest.fixture
def database(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'w.sqlite'}"


@pytest.fixture
def watchtower(database: str, aws: Aws, make_watchtower: Callable[..., Watchtower]) -> Watchtower:
    return make_watchtower(
        clock=time.time,
        database_url=database,
        aws_endpoint_url=aws.url,
        lambda_function=FUNCTION,
        webhook_token=TOKEN,
        users=(
            ("olive", "operator", OPERATOR["Authorization"].split()[1]),
            ("vic", "viewer", VIEWER["Authorization"].split()[1]),
        ),
        anonymous_role=None,
        secret_key="k" * 32,
        routes=ROUTES,
    )


@pytest.fixture
def client(watchtower: Watchtower) -> FlaskClient:
    return create_app(watchtower).test_client()


def deliver(client: FlaskClient, body: bytes) -> int:
    answer = client.post("/api/v1/alerts", data=body, headers=HOOK, content_type="application/json")
    assert answer.status_code == 202, answer.json
    number: int = answer.json["notification"]
    return number


def state(aws: Aws) -> dict[str, Any]:
    config = aws.client("lambda").get_function_configuration(FunctionName=FUNCTION)
    return {
        "environment": config["Environment"]["Variables"],
        "modified": config.get("LastModified"),
    }


def test_a_notification_is_stored_verbatim_and_shown_with_its_routes(
    client: FlaskClient, watchtower: Watchtower
) -> None:
    # Odd spacing and key order: what is kept is the bytes sent, not a re-encoding.
    body = json.dumps(payload(ALERT), indent=3, sort_keys=False).encode()
    number = deliver(client, body)
    assert watchtower.runbooks.store.notification(number).body.encode() == body
    page = client.get(f"/alerts/notifications/{number}", headers=VIEWER)
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "LegacyInsertsAfterCutover" in text and "rollback-dual-write" in text
    assert "Replay as a dry run" not in text  # a viewer sees no button
    assert "Replay as a dry run" in client.get(
        f"/alerts/notifications/{number}", headers=OPERATOR
    ).get_data(as_text=True)
    assert client.get("/alerts/notifications/999999", headers=VIEWER).status_code == 404
    assert client.get(f"/alerts/notifications/{number}").status_code in (302, 401)


def test_a_replay_starts_a_dry_run_that_changes_nothing(
    client: FlaskClient, watchtower: Watchtower, aws: Aws
) -> None:
    number = deliver(client, json.dumps(payload(ALERT)).encode())
    watchtower.runbooks.run_pending()  # the real (suggested) run: reads, then waits for a person
    before = state(aws)

    refused = client.post(f"/api/v1/notifications/{number}/replay", json={}, headers=OPERATOR)
    assert refused.status_code == 400 and refused.json["error"]["code"] == "bad_request"
    viewer = client.post(
        f"/api/v1/notifications/{number}/replay", json={"dry_run": True}, headers=VIEWER
    )
    assert viewer.status_code == 403
    missing = client.post(
        "/api/v1/notifications/424242/replay", json={"dry_run": True}, headers=OPERATOR
    )
    assert missing.status_code == 404 and missing.json["error"]["code"] == "not_found"

    answer = client.post(
        f"/api/v1/notifications/{number}/replay", json={"dry_run": True}, headers=OPERATOR
    )
    assert answer.status_code == 201, answer.json
    (run_id,) = answer.json["executions"]
    watchtower.runbooks.run_pending()
    run = watchtower.runbooks.get(run_id)
    assert run.dry_run and run.started_by == "olive"
    assert run.status.value == "succeeded", run.reason
    steps = {s.step_id: s for s in run.steps}
    assert steps["re-enable"].status.value == "planned"
    assert "UpdateFunctionConfiguration" in [c["operation"] for c in steps["re-enable"].plan]
    assert state(aws) == before  # nothing changed, to the revision

    # The button: one runbook selected, so straight to its execution's page.
    button = client.post(f"/alerts/notifications/{number}/replay", headers=OPERATOR)
    assert button.status_code == 303
    assert "/executions/" in button.headers["Location"]
    watchtower.runbooks.run_pending()
    assert state(aws) == before
    # A replay is no delivery: the alert's episode still has its one real run.
    real = [e for e in watchtower.runbooks.list() if not e.dry_run]
    assert len(real) == 1


def test_watchtower_alerts_replay_from_the_terminal(
    client: FlaskClient, watchtower: Watchtower, aws: Aws, database: str, tmp_path: Path
) -> None:
    number = deliver(client, json.dumps(payload(ALERT)).encode())
    before = state(aws)
    routes = tmp_path / "routes.yml"
    routes.write_text(json.dumps(ROUTE_TABLE))  # JSON is YAML
    env = {
        "AWS_ENDPOINT_URL": aws.url,
        "WATCHTOWER_DATABASE_URL": database,
        "WATCHTOWER_LAMBDA_FUNCTION": FUNCTION,
        "WATCHTOWER_ROUTES_FILE": str(routes),
    }
    runner = CliRunner()
    refused = runner.invoke(main, ["alerts", "replay", str(number)], env=env)
    assert refused.exit_code == 2 and "--dry-run" in refused.output
    done = runner.invoke(main, ["alerts", "replay", str(number), "--dry-run"], env=env)
    assert done.exit_code == 0, done.output
    assert "of rollback-dual-write (dry run): succeeded" in done.output
    assert state(aws) == before
    missing = runner.invoke(main, ["alerts", "replay", "99999", "--dry-run"], env=env)
    assert missing.exit_code == 1 and "no stored notification 99999" in missing.output


def test_retention_keeps_the_newest_notifications(watchtower: Watchtower) -> None:
    store = watchtower.runbooks.store
    now = watchtower.now()
    numbers = [
        store.keep_notification(
            "{}", received_at=now, receiver="r", status="firing", alerts=0, keep=5
        )
        for _ in range(12)
    ]
    kept = []
    for number in numbers:
        with contextlib.suppress(KeyError):
            kept.append(store.notification(number).id)
    assert kept == numbers[-5:]
    assert runbook_store.KEEP_NOTIFICATIONS >= 1000


def test_an_alert_still_firing_after_its_run_ended_is_shown_on_the_run_and_the_status_page(
    client: FlaskClient, watchtower: Watchtower
) -> None:
    body = json.dumps(payload(ALERT)).encode()
    deliver(client, body)
    (run,) = watchtower.runbooks.list()
    watchtower.runbooks.cancel(run.id, by="olive")
    deliver(client, body)  # repeat_interval: the same episode, after its run ended
    assert len(watchtower.runbooks.list()) == 1
    listed = client.get("/api/v1/executions", headers=VIEWER).json["executions"]
    assert listed[0]["still_firing"] is True and listed[0]["repeats_after_finish"] == 1
    page = client.get(f"/executions/{run.id}", headers=VIEWER).get_data(as_text=True)
    assert "still firing" in page
    status = client.get("/", headers=VIEWER).get_data(as_text=True)
    assert "alert still firing" in status
    metric = watchtower.metrics.registry.get_sample_value(
        "watchtower_alerts_still_firing_total", {"runbook": "rollback-dual-write"}
    )
    assert metric == 1
