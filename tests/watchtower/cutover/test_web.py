"""/cutover: the live window, the sign-off form (login + CSRF; viewers cannot sign), the frozen
report and its verification, rollback. The web edge reads the clock: freezegun sets it."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from freezegun import freeze_time
from sqlalchemy import update

from tests.watchtower.cutover.evidence import FLIP, samples, window
from watchtower.cutover.canonical import canonical, text_sha256
from watchtower.cutover.service import CutoverService
from watchtower.cutover.store import reports
from watchtower.runtime import Watchtower
from watchtower.web import create_app
from watchtower.web.cutover import EXTENSION

USERS = (
    ("olive", "operator", "op-secret"),
    ("ada", "admin", "admin-secret"),
    ("vic", "viewer", "view-secret"),
)
HOUR_23 = FLIP + timedelta(hours=23)
AFTER = FLIP + timedelta(hours=24, minutes=5)


@pytest.fixture
def wt(make_watchtower: Callable[..., Watchtower]) -> Watchtower:
    # The clock through the module, so freezegun reaches it.
    return make_watchtower(users=USERS, secret_key="k", clock=lambda: time.time())


@pytest.fixture
def app(wt: Watchtower) -> Flask:
    app = create_app(wt)
    service: CutoverService = app.extensions[EXTENSION]
    service.store.add_window(window())
    for sample in samples(window()):
        service.store.add_sample(sample)
    return app


def login(client: FlaskClient, name: str, password: str) -> str:
    client.get("/login")
    with client.session_transaction() as s:
        token = s["csrf"]
    answer = client.post(
        "/login", data={"name": name, "password": password, "csrf_token": token, "next": "/"}
    )
    assert answer.status_code == 302, answer.get_data(as_text=True)
    client.get("/cutover")
    with client.session_transaction() as s:
        return str(s["csrf"])


def sign(client: FlaskClient, token: str, **form: str):
    return client.post(
        f"/cutover/windows/{window().id}/signoffs", data={"csrf_token": token, **form}
    )


def test_the_page_shows_the_window_live_under_a_strict_csp(app: Flask) -> None:
    with freeze_time(HOUR_23):
        answer = app.test_client().get("/cutover")
    assert answer.status_code == 200
    html = answer.get_data(as_text=True)
    assert "default-src 'none'" in answer.headers["Content-Security-Policy"]
    assert "style-src 'self'" in answer.headers["Content-Security-Policy"]
    assert "<script" not in html and "style=" not in html and "<style" not in html
    assert "Collecting evidence, hour 24 of 24" in html
    assert html.count('class="cutover-chart"') == 8  # one per criterion, user_operations included
    assert 'class="cutover-timeline"' in html
    for title in (
        "PostgreSQL writes stopped",
        "Upload latency stable",
        "Dual-write flag still off",
    ):
        assert title in html
    assert "The window is not over: it ends at 2026-06-02 10:03:27 UTC" in html
    assert "/runbooks/rollback-dual-write" in html
    assert "signoffs" not in re.findall(r'action="([^"]+)"', html)  # no sign-off form


def test_a_sign_off_at_hour_23_is_refused(app: Flask) -> None:
    client = app.test_client()
    with freeze_time(HOUR_23):  # sessions are signed with the time: log in at the same moment
        token = login(client, "olive", "op-secret")
        answer = sign(client, token, name="Olive", role="Operations lead")
    assert answer.status_code == 409
    assert "Not signed: The window is not over" in answer.get_data(as_text=True)
    assert app.extensions[EXTENSION].signoffs(window().id) == []


def test_viewers_cannot_sign_and_forms_need_the_csrf_token(app: Flask) -> None:
    client = app.test_client()
    with freeze_time(AFTER):
        viewer = client.post(
            f"/cutover/windows/{window().id}/signoffs",
            data={"name": "Vic", "role": "Operations lead"},
            headers={"Authorization": "Bearer view-secret", "Accept": "application/json"},
        )
        assert viewer.status_code == 403
        anonymous = client.post(
            f"/cutover/windows/{window().id}/signoffs", data={"name": "x", "role": "y"}
        )
        assert anonymous.status_code in (302, 401)
        login(client, "olive", "op-secret")
        forged = sign(client, "not-the-token", name="Olive", role="Operations lead")
        assert forged.status_code == 400
    assert app.extensions[EXTENSION].signoffs(window().id) == []


def test_stakeholders_sign_and_the_report_is_frozen_with_its_hash(app: Flask) -> None:
    olive, ada = app.test_client(), app.test_client()
    with freeze_time(AFTER):
        olive_token = login(olive, "olive", "op-secret")
        ada_token = login(ada, "ada", "admin-secret")
        page = olive.get("/cutover").get_data(as_text=True)
        assert "Sign: the evidence above holds" in page and "READY FOR SIGN-OFF" in page.upper()
        first = sign(olive, olive_token, name="Olive Ops", role="Operations lead", comment="ok")
        assert first.status_code == 303
        again = sign(olive, olive_token, name="Olive Ops", role="Engineering lead")
        assert again.status_code == 409 and "has signed this window already" in again.get_data(
            as_text=True
        )
        second = sign(ada, ada_token, name="Ada Lovelace", role="Engineering lead")
        assert second.status_code == 303
        frozen = olive.get(f"/cutover/windows/{window().id}/report?format=json").get_json()
        html = olive.get("/cutover").get_data(as_text=True)
        md = olive.get(f"/cutover/windows/{window().id}/report?format=md").get_data(as_text=True)
    assert frozen["frozen"] is True
    assert frozen["verification"] == {"ok": True, "problems": []}
    assert frozen["sha256"] == text_sha256(canonical(frozen["document"]))
    doc = frozen["document"]
    assert doc["verdict"]["state"] == "signed"
    assert [(s["name"], s["role"], s["user"]) for s in doc["signoffs"]] == [
        ("Olive Ops", "Operations lead", "olive"),
        ("Ada Lovelace", "Engineering lead", "ada"),
    ]
    assert doc["signoffs"][0]["evidence_hash"] == doc["signoffs"][1]["evidence_hash"]
    assert "Verified on read" in html and frozen["sha256"] in html
    assert f"`{frozen['sha256']}`" in md and "| Olive Ops | Operations lead |" in md
    window_row = app.extensions[EXTENSION].store.window(window().id)
    assert window_row.close_reason.value == "signed"
    actions = [e.action for e in app.extensions[EXTENSION].store.audit()]
    assert actions == ["signed", "signed", "report-frozen"]


def test_an_edit_of_the_frozen_report_is_visible(app: Flask) -> None:
    service: CutoverService = app.extensions[EXTENSION]
    with freeze_time(AFTER):
        service.sign(
            window().id, name="O", role="Operations lead", comment="", user="olive", now=AFTER
        )
        service.sign(
            window().id, name="A", role="Engineering lead", comment="", user="ada", now=AFTER
        )
    stored = service.store.report(window().id)
    assert stored is not None and service.verify(stored).ok
    edited = stored.document.replace('"figure":"0 rows since the flip"', '"figure":"0 rows!"')
    assert edited != stored.document
    with service.store.engine.begin() as conn:
        conn.execute(update(reports).values(document=edited))
    with freeze_time(AFTER):
        html = app.test_client().get("/cutover").get_data(as_text=True)
        data = (
            app.test_client().get(f"/cutover/windows/{window().id}/report?format=json").get_json()
        )
    assert "Verification failed: this report was changed after it was signed." in html
    assert data["verification"]["ok"] is False
    assert any("edited after it was frozen" in p for p in data["verification"]["problems"])
    # Rewriting the recorded hash as well still leaves the audit log's witness.
    with service.store.engine.begin() as conn:
        conn.execute(update(reports).values(sha256=text_sha256(edited)))
    problems = service.verify(service.store.report(window().id)).problems  # type: ignore[arg-type]
    assert any("audit log recorded sha256" in p for p in problems)


def test_an_operator_records_a_rollback(app: Flask) -> None:
    client = app.test_client()
    with freeze_time(FLIP + timedelta(hours=6)):
        token = login(client, "olive", "op-secret")
        answer = client.post(
            f"/cutover/windows/{window().id}/rollback",
            data={"csrf_token": token, "reason": "uploads failing since the flip"},
        )
        assert answer.status_code == 303
        html = client.get("/cutover").get_data(as_text=True)
    assert "Rolled back at 2026-06-01 16:03:27 UTC by olive" in html
    assert "uploads failing since the flip" in html


def test_a_detected_flip_is_confirmed_by_an_operator(wt: Watchtower) -> None:
    from watchtower.model import Result, Status

    app = create_app(wt)
    flip = FLIP + timedelta(minutes=1)
    wt.store.add(
        [
            Result(
                name="dual_write",
                kind="check",
                status=Status.OK,
                reason="",
                observed_at=FLIP + timedelta(minutes=m),
                figures={"flag": 1.0 if m < 1 else 0.0},
            )
            for m in range(0, 5)
        ]
    )
    client = app.test_client()
    with freeze_time(FLIP + timedelta(minutes=10)):
        token = login(client, "olive", "op-secret")
        page = client.get("/cutover").get_data(as_text=True)
        assert "Dual-write turned off, no window yet" in page
        answer = client.post(
            "/cutover/windows",
            data={
                "csrf_token": token,
                "at": flip.isoformat(),
                "comment": "seen on the status page",
            },
        )
        assert answer.status_code == 303
        page = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "Dual-write turned off, no window yet" not in page
    opened = app.extensions[EXTENSION].store.open_window()
    assert opened.opened_at == flip and opened.confirmed_by == "olive" and opened.via == "detected"


def test_the_preflight_report_needs_an_operator(app: Flask) -> None:
    answer = app.test_client().get(
        "/cutover/preflight", headers={"Authorization": "Bearer view-secret"}
    )
    assert answer.status_code == 403


def test_the_json_api_carries_the_live_document(app: Flask) -> None:
    with freeze_time(HOUR_23):
        body = app.test_client().get("/api/v1/cutover").get_json()
    assert body["window"]["frozen"] is False
    assert body["window"]["document"]["verdict"]["state"] == "collecting"
    assert body["detected_flip"] is None
