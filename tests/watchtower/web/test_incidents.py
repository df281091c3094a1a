"""Incident history: a page per component and day linked from each bar, /incidents, notes."""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable
from datetime import timedelta

import pytest
from flask import Flask

from tests.watchtower.web.conftest import T0
from tests.watchtower.web.history import check
from watchtower.model import Alert, Status
from watchtower.runtime import Watchtower
from watchtower.web import create_app

OPERATOR = secrets.token_urlsafe(40)
VIEWER = secrets.token_urlsafe(40)
YESTERDAY = T0 - timedelta(days=1)
ATTACK = "<script>alert(1)</script>"


@pytest.fixture
def wt(make_watchtower: Callable[..., Watchtower]) -> Watchtower:
    return make_watchtower(users=(("olive", "operator", OPERATOR), ("vic", "viewer", VIEWER)))


@pytest.fixture
def app(wt: Watchtower) -> Flask:
    return create_app(wt)


def as_(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def an_incident_yesterday(wt: Watchtower) -> None:
    wt.store.add(
        [
            *(
                check("dynamodb_throttling", YESTERDAY + timedelta(minutes=m), Status.OK, "fine")
                for m in range(10)
            ),
            check(
                "dynamodb_throttling",
                YESTERDAY + timedelta(minutes=10),
                Status.CRITICAL,
                f"42 throttled requests {ATTACK}",
            ),
            check("dynamodb_throttling", YESTERDAY + timedelta(minutes=11), Status.OK, "fine"),
        ]
    )
    fired = Alert(
        fingerprint="f1",
        status="resolved",
        labels={"alertname": "DynamoDbThrottling", "severity": "critical"},
        annotations={},
        starts_at=YESTERDAY + timedelta(minutes=10),
        ends_at=YESTERDAY + timedelta(minutes=20),
        generator_url="http://prometheus:9090/graph?g0.expr=throttles",
    )
    wt.store.record_alert(fired, received_at=YESTERDAY + timedelta(minutes=20))
    older = Alert(
        fingerprint="f0",
        status="resolved",
        labels={"alertname": "LongAgo"},
        annotations={},
        starts_at=YESTERDAY - timedelta(days=3),
        ends_at=YESTERDAY - timedelta(days=3) + timedelta(minutes=5),
        generator_url="javascript:alert(1)",
    )
    wt.store.record_alert(older, received_at=YESTERDAY)


def test_each_bar_links_to_its_day_and_the_day_lists_what_went_wrong(
    wt: Watchtower, app: Flask
) -> None:
    an_incident_yesterday(wt)
    client = app.test_client()
    page = client.get("/", headers=as_(VIEWER)).get_data(as_text=True)
    day = YESTERDAY.date().isoformat()
    assert f'<a href="/incidents/dynamodb/{day}"><rect class="day day-down"' in page

    answer = client.get(f"/incidents/dynamodb/{day}", headers=as_(VIEWER))
    assert answer.status_code == 200
    body = answer.get_data(as_text=True)
    assert "Down (critical)" in body
    assert "42 throttled requests &lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert ATTACK not in body
    assert "DynamoDbThrottling" in body
    assert 'href="http://prometheus:9090/graph?g0.expr=throttles"' in body
    assert "LongAgo" not in body  # another day's episode
    assert "<script" not in body


def test_incidents_lists_the_last_90_days_newest_first(wt: Watchtower, app: Flask) -> None:
    an_incident_yesterday(wt)
    wt.store.add([check("gallery_cache", T0 - timedelta(minutes=5), Status.WARNING, "misses")])
    body = app.test_client().get("/incidents", headers=as_(VIEWER)).get_data(as_text=True)
    links = re.findall(r'href="(/incidents/[^"]+)"', body)
    assert links == [
        f"/incidents/cache/{T0.date().isoformat()}",
        f"/incidents/dynamodb/{YESTERDAY.date().isoformat()}",
    ]


def test_an_operator_adds_an_escaped_audited_note(
    wt: Watchtower, app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    an_incident_yesterday(wt)
    client = app.test_client()
    path = f"/incidents/dynamodb/{YESTERDAY.date().isoformat()}"
    refused = client.post(f"{path}/notes", data={"note": "hi"}, headers=as_(VIEWER))
    assert refused.status_code == 403
    with caplog.at_level(logging.INFO, logger="watchtower.audit"):
        added = client.post(
            f"{path}/notes",
            data={"note": f"Throttled by a backfill {ATTACK}"},
            headers=as_(OPERATOR),
        )
    assert added.status_code == 303 and added.headers["Location"].endswith(path)
    assert any(getattr(r, "author", None) == "olive" for r in caplog.records)
    body = client.get(path, headers=as_(VIEWER)).get_data(as_text=True)
    assert "Throttled by a backfill &lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "olive, " in body
    assert wt.store.notes("dynamodb", YESTERDAY.date())[0][1] == "olive"


@pytest.mark.parametrize(
    ("path", "note", "code", "error"),
    [
        ("/incidents/nowhere/2026-11-26", "x", 404, "unknown_component"),
        ("/incidents/dynamodb/yesterday", "x", 400, "bad_day"),
        ("/incidents/dynamodb/2026-11-26", "", 400, "empty_note"),
        ("/incidents/dynamodb/2026-11-26", "x" * 281, 400, "note_too_long"),
    ],
)
def test_bad_notes_are_refused_with_a_json_error(
    app: Flask, path: str, note: str, code: int, error: str
) -> None:
    answer = app.test_client().post(f"{path}/notes", data={"note": note}, headers=as_(OPERATOR))
    assert answer.status_code == code
    assert answer.json is not None and answer.json["error"]["code"] == error
