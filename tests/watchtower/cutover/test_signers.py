"""Issue 12, finding 2: a sign-off is bound to the login that signed, not to the typed name.

One login used to fill every role ("Operations lead" as one name, "Engineering lead" as
another) and close the window as signed. Now one login signs at most one role of a window, an
admin's included; WATCHTOWER_CUTOVER_SIGNER_USERS says which logins may sign which role; the
report names each login and how it signed in. Through HTTP against the app."""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from freezegun import freeze_time

from tests.watchtower.cutover.evidence import samples, window
from tests.watchtower.cutover.test_web import AFTER
from watchtower.config import Settings
from watchtower.cutover.canonical import canonical, text_sha256
from watchtower.cutover.config import CutoverSettings
from watchtower.cutover.service import CutoverService
from watchtower.errors import ConfigError
from watchtower.runtime import build
from watchtower.web import create_app
from watchtower.web.cutover import EXTENSION

OLIVE_TOKEN = secrets.token_urlsafe(32)
OSCAR_TOKEN = secrets.token_urlsafe(32)
ADA_TOKEN = secrets.token_urlsafe(32)
USERS = (
    ("olive", "operator", OLIVE_TOKEN),
    ("oscar", "operator", OSCAR_TOKEN),
    ("ada", "admin", ADA_TOKEN),
)
SIGNOFFS = f"/cutover/windows/{window().id}/signoffs"
JSON = {"Accept": "application/json"}


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[Any]:
    built = []

    def make(cutover: CutoverSettings | None = None, **settings: Any) -> Flask:
        wt = build(
            Settings(
                database_url=f"sqlite:///{tmp_path / f'c{len(built)}.sqlite'}",
                users=USERS,
                secret_key=secrets.token_urlsafe(32),
                **settings,
            ),
            cutover=cutover or CutoverSettings(),
        )
        wt.clock = lambda: time.time()  # through the module, so freezegun reaches it
        built.append(wt)
        app = create_app(wt)
        service: CutoverService = app.extensions[EXTENSION]
        service.store.add_window(window())
        for sample in samples(window()):
            service.store.add_sample(sample)
        return app

    yield make
    for wt in built:
        wt.close()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **JSON}


def _sign(client: FlaskClient, headers: dict[str, str], **form: str) -> Any:
    return client.post(SIGNOFFS, data={"comment": "", **form}, headers=headers)


def _signoffs(app: Flask) -> list[tuple[str, str, str | None]]:
    return [(s.user, s.role, s.via) for s in app.extensions[EXTENSION].signoffs(window().id)]


def _login(client: FlaskClient, name: str, password: str) -> str:
    client.get("/login")
    with client.session_transaction() as s:
        token = s["csrf"]
    answer = client.post("/login", data={"name": name, "password": password, "csrf_token": token})
    assert answer.status_code == 302
    client.get("/cutover")
    with client.session_transaction() as s:
        return str(s["csrf"])


def test_one_login_cannot_fill_two_roles_under_two_names(make_app: Any) -> None:
    app = make_app()
    client = app.test_client()
    with freeze_time(AFTER):
        csrf = _login(client, "olive", OLIVE_TOKEN)
        first = _sign(client, {}, csrf_token=csrf, name="Olive Ops", role="Operations lead")
        assert first.status_code == 303
        page = client.get("/cutover").get_data(as_text=True)
        # The form is gone for her: she signed, and says as what.
        assert "You signed this window as Operations lead" in page
        again = _sign(client, {}, csrf_token=csrf, name="Eve Engineer", role="Engineering lead")
        as_json = _sign(client, JSON, csrf_token=csrf, name="Eve Engineer", role="Engineering lead")
        state = client.get(f"/cutover/windows/{window().id}/report?format=json").get_json()
    assert again.status_code == 409
    assert "Not signed: olive has signed this window already, as &#39;Operations lead&#39;" in (
        again.get_data(as_text=True)
    )
    assert as_json.status_code == 409 and as_json.json["error"]["code"] == "refused"
    assert "one login, one role" in as_json.json["error"]["message"]
    assert _signoffs(app) == [("olive", "Operations lead", "session")]
    assert state["frozen"] is False and state["document"]["missing_roles"] == ["Engineering lead"]


def test_nor_can_an_admin_nor_the_same_login_another_way(make_app: Any) -> None:
    app = make_app()
    client = app.test_client()
    with freeze_time(AFTER):
        assert (
            _sign(client, _bearer(ADA_TOKEN), name="Ada", role="Engineering lead").status_code
            == 303
        )
        by_token = _sign(client, _bearer(ADA_TOKEN), name="Not Ada", role="Operations lead")
        basic = base64.b64encode(f"ada:{ADA_TOKEN}".encode()).decode()
        by_basic = _sign(
            client, {"Authorization": f"Basic {basic}", **JSON}, name="A.", role="Operations lead"
        )
    assert by_token.status_code == 409 and by_basic.status_code == 409
    assert _signoffs(app) == [("ada", "Engineering lead", "token")]


def test_a_login_not_listed_for_a_role_is_refused(make_app: Any) -> None:
    cutover = CutoverSettings(signer_users=(("Engineering lead", ("ada", "oscar")),))
    app = make_app(cutover)
    client = app.test_client()
    with freeze_time(AFTER):
        refused = _sign(client, _bearer(OLIVE_TOKEN), name="Olive", role="Engineering lead")
        csrf = _login(page_client := app.test_client(), "olive", OLIVE_TOKEN)
        page = page_client.get("/cutover").get_data(as_text=True)
        refused_page = _sign(page_client, {}, csrf_token=csrf, name="O", role="Engineering lead")
        # A role nobody listed stays open to any operator.
        allowed = _sign(client, _bearer(OLIVE_TOKEN), name="Olive", role="Operations lead")
    assert refused.status_code == 403
    assert refused.json["error"]["code"] == "not_a_signer"
    assert "olive may not sign as 'Engineering lead'" in refused.json["error"]["message"]
    assert "only ada, oscar" in refused.json["error"]["message"]
    assert refused_page.status_code == 403 and "Not signed: olive may not sign" in (
        refused_page.get_data(as_text=True)
    )
    # The form offers her only what she may sign.
    assert "<option>Operations lead</option>" in page
    assert "<option>Engineering lead</option>" not in page
    assert allowed.status_code == 303
    assert _signoffs(app) == [("olive", "Operations lead", "token")]


def test_two_people_sign_and_the_report_names_both_logins_and_how(make_app: Any) -> None:
    cutover = CutoverSettings(
        signer_users=(("Operations lead", ("olive",)), ("Engineering lead", ("oscar", "ada")))
    )
    app = make_app(cutover)
    olive, oscar = app.test_client(), app.test_client()
    with freeze_time(AFTER):
        csrf = _login(olive, "olive", OLIVE_TOKEN)
        assert (
            _sign(olive, {}, csrf_token=csrf, name="Olive Ops", role="Operations lead").status_code
            == 303
        )
        assert (
            _sign(
                oscar, _bearer(OSCAR_TOKEN), name="Oscar Eng", role="Engineering lead"
            ).status_code
            == 303
        )
        frozen = olive.get(f"/cutover/windows/{window().id}/report?format=json").get_json()
        html = olive.get(f"/cutover/windows/{window().id}/report").get_data(as_text=True)
        md = olive.get(f"/cutover/windows/{window().id}/report?format=md").get_data(as_text=True)
    assert frozen["frozen"] is True
    assert frozen["verification"] == {"ok": True, "problems": []}
    assert frozen["sha256"] == text_sha256(canonical(frozen["document"]))
    assert frozen["document"]["verdict"]["state"] == "signed"
    assert [
        (s["user"], s["via"], s["role"], s["name"]) for s in frozen["document"]["signoffs"]
    ] == [
        ("olive", "session", "Operations lead", "Olive Ops"),
        ("oscar", "token", "Engineering lead", "Oscar Eng"),
    ]
    assert "olive (login form)" in html and "oscar (bearer token)" in html
    assert "| Olive Ops | Operations lead | olive (login form) |" in md
    assert "| Oscar Eng | Engineering lead | oscar (bearer token) |" in md


def test_an_anonymous_operator_signs_nothing(make_app: Any) -> None:
    app = make_app(anonymous_role="operator")
    with freeze_time(AFTER):
        answer = _sign(app.test_client(), JSON, name="Nobody", role="Operations lead")
    assert answer.status_code == 403 and answer.json["error"]["code"] == "sign_in_required"
    assert _signoffs(app) == []


def test_sign_offs_recorded_before_the_method_was_kept_still_read(make_app: Any) -> None:
    """An existing database: the audit entry of an older sign-off has no `via`."""
    app = make_app()
    service: CutoverService = app.extensions[EXTENSION]
    digest = "0" * 64
    service.store.append(
        at=AFTER,
        actor="olive",
        action="signed",
        window_id=window().id,
        detail={"name": "Olive", "role": "Operations lead", "comment": "", "evidence_hash": digest},
    )
    with freeze_time(AFTER):
        md = app.test_client().get(f"/cutover/windows/{window().id}/report?format=md")
        refused = _sign(app.test_client(), _bearer(OLIVE_TOKEN), name="O2", role="Engineering lead")
    assert "olive (sign-in method not recorded)" in md.get_data(as_text=True)
    assert refused.status_code == 409  # the older sign-off binds her login too


def test_signer_users_from_the_environment() -> None:
    settings = CutoverSettings.from_env(
        {"WATCHTOWER_CUTOVER_SIGNER_USERS": "Operations lead:olive|oscar, Engineering lead:ada"}
    )
    assert settings.allowed_signers("Operations lead") == ("olive", "oscar")
    assert settings.allowed_signers("Engineering lead") == ("ada",)
    assert CutoverSettings().allowed_signers("Operations lead") is None


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("Release manager:ada", "not in WATCHTOWER_CUTOVER_SIGNERS"),
        ("Operations lead", "must be role:user1|user2"),
        ("Operations lead:", "must be role:user1|user2"),
        ("Operations lead:a,Operations lead:b", "listed twice"),
    ],
)
def test_bad_signer_users_stop_start_up(raw: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        CutoverSettings.from_env({"WATCHTOWER_CUTOVER_SIGNER_USERS": raw})
