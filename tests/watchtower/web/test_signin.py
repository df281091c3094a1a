"""Issue 12, findings 3 to 7, each reproduced through HTTP against the app and now failing:
hashes run for any Authorization header, the open redirect after login, unthrottled password
guessing and weak secrets, sessions that outlive logout, and unlimited bodies."""

from __future__ import annotations

import io
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.security import generate_password_hash

from tests.watchtower.alerts.test_alerting import payload
from watchtower.config import Settings
from watchtower.entropy import GENERATE, estimated_bits
from watchtower.errors import ConfigError
from watchtower.runtime import Watchtower
from watchtower.web import accounts, create_app
from watchtower.web.auth import current_user, require

OLIVE_TOKEN = secrets.token_urlsafe(32)
ADA_PASSWORD = "correct horse battery staple"
USERS = (
    ("olive", "operator", OLIVE_TOKEN),
    ("ada", "admin", generate_password_hash(ADA_PASSWORD, method="pbkdf2:sha256:1000")),
    ("vic", "viewer", generate_password_hash("vic-password", method="pbkdf2:sha256:1000")),
)
HOOK_TOKEN = secrets.token_urlsafe(32)
SECRET_KEY = secrets.token_hex(32)


@pytest.fixture
def make_app(make_watchtower: Callable[..., Watchtower]) -> Any:
    def make(**settings: Any) -> Flask:
        values: dict[str, Any] = {
            "users": USERS,
            "anonymous_role": None,
            "secret_key": SECRET_KEY,
            "webhook_token": HOOK_TOKEN,
        }
        app = create_app(make_watchtower(clock=time.time, **{**values, **settings}))

        @app.get("/api/v1/whoami")
        @require("viewer")
        def whoami() -> Any:
            user = current_user()
            assert user is not None
            return {"name": user.name, "role": user.role, "via": user.via}

        return app

    return make


def csrf(client: FlaskClient) -> str:
    client.get("/login")
    with client.session_transaction() as s:
        return str(s["csrf"])


def login(client: FlaskClient, name: str, password: str, next_: str = "/") -> Any:
    return client.post(
        "/login",
        data={"name": name, "password": password, "csrf_token": csrf(client), "next": next_},
    )


# -- 3: no password hash for a bearer token; the webhook never authenticates users ---------------


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every password hash checked, by the hash's method."""
    seen: list[str] = []
    check = accounts.check_password_hash

    def counting(stored: str, password: str) -> bool:
        seen.append(stored.split("$", 1)[0])
        return check(stored, password)

    monkeypatch.setattr(accounts, "check_password_hash", counting)
    return seen


def test_a_wrong_bearer_token_runs_no_password_hash(make_app: Any, hashes: list[str]) -> None:
    scrypt = [(f"u{n}", "viewer", generate_password_hash(f"pw-{n}")) for n in range(5)]
    app = make_app(users=(*USERS, *scrypt))
    client = app.test_client()
    started = time.process_time()
    for _ in range(20):
        assert (
            client.get("/api/v1/whoami", headers={"Authorization": "Bearer nope"}).status_code
            == 401
        )
    per_request = (time.process_time() - started) / 20
    assert hashes == []
    assert per_request < 0.05  # one scrypt alone takes longer; the attack cost 560 ms
    # Tokens still work, and passwords still work where they belong: basic auth and the form.
    ok = client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {OLIVE_TOKEN}"})
    assert ok.json == {"name": "olive", "role": "operator", "via": "token"}
    assert client.get("/api/v1/whoami", auth=("u3", "pw-3")).json["name"] == "u3"
    assert hashes == ["scrypt:32768:8:1"]  # u3's own hash, once
    # A password is not a token: no hash is run for it as one.
    assert client.get("/api/v1/whoami", headers={"Authorization": "Bearer pw-3"}).status_code == 401
    assert len(hashes) == 1


def test_a_password_is_checked_against_the_one_user_named(make_app: Any, hashes: list[str]) -> None:
    client = make_app().test_client()
    assert client.get("/api/v1/whoami", auth=("ada", "wrong")).status_code == 401
    assert client.get("/api/v1/whoami", auth=("nobody", "wrong")).status_code == 401
    # An unknown name costs the same hash as a known one, so timing does not tell names apart.
    assert hashes == ["pbkdf2:sha256:1000", "pbkdf2:sha256:1000"]
    assert client.get("/api/v1/whoami", auth=("ada", ADA_PASSWORD)).json["name"] == "ada"
    assert client.get("/api/v1/whoami", auth=("olive", OLIVE_TOKEN)).json["via"] == "basic"


@pytest.mark.parametrize(
    "authorization",
    ["Bearer nope", "Basic YWRhOndyb25n", "Bearer {olive}"],  # ada:wrong
)
def test_the_webhook_never_runs_user_authentication(
    make_app: Any, hashes: list[str], authorization: str
) -> None:
    client = make_app().test_client()
    headers = {"Authorization": authorization.format(olive=OLIVE_TOKEN)}
    refused = client.post("/api/v1/alerts", json=payload(), headers=headers)
    assert refused.status_code in (401, 403)
    assert hashes == []
    hook = {"Authorization": f"Bearer {HOOK_TOKEN}"}
    assert client.post("/api/v1/alerts", json=payload(), headers=hook).status_code == 202
    assert hashes == []


# -- 4: `next` only ever a path on this site -----------------------------------------------------


@pytest.mark.parametrize(
    "next_",
    [
        "/%09/evil.example",
        "/\t/evil.example",
        "/%2509/evil.example",
        "//evil.example",
        "/%2F/evil.example",
        "/\\evil.example",
        "/%5Cevil.example",
        "https://evil.example/",
        "evil.example",
        "/\n/evil.example",
        "/ /evil.example",
        "/\u3000/evil.example",
        "/runbooks%20/x",
        "javascript:alert(1)",
    ],
)
def test_login_never_redirects_off_site(make_app: Any, next_: str) -> None:
    client = make_app().test_client()
    client.get("/login", query_string={"next": next_})
    answer = login(client, "ada", ADA_PASSWORD, next_)
    assert answer.status_code == 302 and answer.headers["Location"] == "/"


def test_the_attack_url_itself_leads_home(make_app: Any) -> None:
    client = make_app().test_client()
    page = client.get("/login?next=/%09/evil.example").get_data(as_text=True)
    assert 'name="next" value="/"' in page
    token = csrf(client)
    answer = client.post(
        "/login?next=/%09/evil.example",
        data={"name": "ada", "password": ADA_PASSWORD, "csrf_token": token},
    )
    assert answer.headers["Location"] == "/"


@pytest.mark.parametrize(
    "next_, location",
    [
        ("/", "/"),
        ("/runbooks?status=open", "/runbooks?status=open"),
        ("/runbooks?q=disk%20full", "/runbooks?q=disk%20full"),
        ("/é", "/%C3%A9"),
    ],
)
def test_a_path_on_this_site_is_kept(make_app: Any, next_: str, location: str) -> None:
    client = make_app().test_client()
    assert login(client, "ada", ADA_PASSWORD, next_).headers["Location"] == location


# -- 5: failed sign-ins throttled; weak secrets refused at start-up ------------------------------


def test_guessing_passwords_is_stopped_and_the_right_one_then_waits(
    make_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app()
    client = app.test_client()
    token = csrf(client)
    statuses = [
        client.post(
            "/login", data={"name": "ada", "password": f"guess{n}", "csrf_token": token}
        ).status_code
        for n in range(300)
    ]
    assert statuses[:10] == [401] * 10 and set(statuses[10:]) == {429}
    right = client.post(
        "/login", data={"name": "ada", "password": ADA_PASSWORD, "csrf_token": token}
    )
    assert right.status_code == 429 and 0 < int(right.headers["Retry-After"]) <= 900
    assert "Too many failed sign-ins" in right.get_data(as_text=True)
    assert client.get("/api/v1/whoami", auth=("ada", ADA_PASSWORD)).status_code == 429
    assert "failed sign-in (form) for 'ada' from 127.0.0.1" in caplog.text
    assert "sign-in refused" in caplog.text
    get = app.extensions["watchtower"].metrics.registry.get_sample_value
    assert get("watchtower_signins_total", {"via": "form", "outcome": "failed"}) == 10
    assert get("watchtower_signins_total", {"via": "form", "outcome": "throttled"}) == 291
    # Another user from another address is not held back by it.
    other = app.test_client()
    answer = other.get(
        "/api/v1/whoami", auth=("vic", "vic-password"), environ_base={"REMOTE_ADDR": "10.0.0.2"}
    )
    assert answer.json["name"] == "vic"


def test_what_is_typed_as_a_name_is_never_logged(
    make_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_app().test_client()
    typo = "correct horse battery stapler"  # a password typed into the name field
    assert client.get("/api/v1/whoami", auth=(typo, "x")).status_code == 401
    assert "failed sign-in (basic) for an unknown name from 127.0.0.1" in caplog.text
    assert typo not in caplog.text


def test_basic_auth_guessing_is_throttled_per_address_too(make_app: Any) -> None:
    app = make_app(signin_max_failures_per_address=5, signin_window_seconds=60)
    client = app.test_client()
    for n in range(5):  # a different name each time: the address's count still rises
        assert client.get("/api/v1/whoami", auth=(f"user{n}", "x")).status_code == 401
    refused = client.get("/api/v1/whoami", auth=("ada", ADA_PASSWORD))
    assert refused.status_code == 429 and refused.json["error"]["code"] == "too_many_sign_ins"
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    # Bearer tokens are not guessed, so not throttled.
    ok = client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {OLIVE_TOKEN}"})
    assert ok.status_code == 200


def test_a_success_clears_the_names_count(make_app: Any) -> None:
    client = make_app(signin_max_failures=3).test_client()
    for _ in range(2):
        assert client.get("/api/v1/whoami", auth=("ada", "x")).status_code == 401
    assert client.get("/api/v1/whoami", auth=("ada", ADA_PASSWORD)).status_code == 200
    for _ in range(2):
        assert client.get("/api/v1/whoami", auth=("ada", "x")).status_code == 401
    assert client.get("/api/v1/whoami", auth=("ada", ADA_PASSWORD)).status_code == 200


def test_the_limit_holds_across_replicas_through_redis(make_app: Any, redis_url: str) -> None:
    one, two = make_app(redis_url=redis_url), make_app(redis_url=redis_url)
    for _ in range(10):
        assert one.test_client().get("/api/v1/whoami", auth=("ada", "x")).status_code == 401
    assert two.test_client().get("/api/v1/whoami", auth=("ada", ADA_PASSWORD)).status_code == 429


@pytest.mark.parametrize(
    "variable, raw",
    [
        ("WATCHTOWER_SECRET_KEY", "changeme"),
        ("WATCHTOWER_SECRET_KEY", "k" * 100),
        ("WATCHTOWER_SECRET_KEY", secrets.token_hex(16)),
        ("WATCHTOWER_WEBHOOK_TOKEN", "hook-secret"),
        ("WATCHTOWER_WEBHOOK_TOKEN", "abcdefghij" * 7),
        ("WATCHTOWER_WEBHOOK_TOKEN", "the-same-key-" + "k" * 40),
        ("WATCHTOWER_USERS", "olive:operator:op-secret"),
        ("WATCHTOWER_USERS", f"ada:admin:{secrets.token_urlsafe(32)},vic:viewer:vic-token"),
    ],
    # Named by position: random values in test ids differ between pytest-xdist's workers.
    ids=lambda value: value if value.startswith("WATCHTOWER_") else "",
)
def test_start_up_refuses_weak_secrets(variable: str, raw: str) -> None:
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({variable: raw})
    message = str(refused.value)
    assert variable in message and GENERATE in message
    assert raw not in message  # the secret itself is never echoed


def test_the_forged_session_attack_stops_at_start_up() -> None:
    from watchtower.wsgi import create_app as wsgi_app

    with pytest.raises(ConfigError, match="WATCHTOWER_SECRET_KEY"):
        wsgi_app({"WATCHTOWER_SECRET_KEY": "changeme", "WATCHTOWER_DATABASE_URL": "sqlite://"})


def test_a_generated_token_passes_whatever_classes_chance_left_out() -> None:
    # 43 characters of token_urlsafe's alphabet with no digit, and with no digit nor `-`/`_`:
    # about one generated token in 1,500 looks like the first; both are 256 bits all the same.
    no_digit = "kQzXwP-vRtYbNmLcDfGhJs_aEiUoHyTrWqZxCvBnMlK"
    letters_only = "kQzXwPvRtYbNmLcDfGhJsaEiUoHyTrWqZxCvBnMlKpA"
    assert len(no_digit) == len(letters_only) == 43
    assert estimated_bits(no_digit) >= 256 and estimated_bits(letters_only) >= 256
    assert estimated_bits("Correct-Horse-Battery-Staple") < 256  # words are not tokens


def test_generated_secrets_and_password_hashes_are_accepted() -> None:
    from watchtower.sandbox.demo import new_token

    for _ in range(200):
        assert estimated_bits(secrets.token_hex(32)) >= 256
        assert estimated_bits(new_token()) >= 256  # the demo's operator token
    settings = Settings.from_env(
        {
            "WATCHTOWER_SECRET_KEY": secrets.token_hex(32),
            "WATCHTOWER_WEBHOOK_TOKEN": "aB3-" + secrets.token_urlsafe(32),
            "WATCHTOWER_USERS": f"olive:operator:{OLIVE_TOKEN}x-9A,ada:admin:{USERS[1][2]}",
        }
    )
    assert [u[0] for u in settings.users] == ["olive", "ada"]


# -- 6: logout, password and role changes, "sign out everywhere" and idleness end sessions -------


def signed_in(app: Flask, name: str = "ada", password: str = ADA_PASSWORD) -> FlaskClient:
    client = app.test_client()
    assert login(client, name, password).status_code == 302
    return client


def copy_of(app: Flask, client: FlaskClient) -> FlaskClient:
    """Another browser holding a copy of `client`'s session cookie."""
    cookie = client.get_cookie("session")
    assert cookie is not None
    thief = app.test_client()
    thief.set_cookie("session", cookie.value)
    return thief


def test_logout_ends_every_copy_of_the_session(make_app: Any) -> None:
    app = make_app()
    owner = signed_in(app)
    thief = copy_of(app, owner)
    assert thief.get("/api/v1/whoami").json["name"] == "ada"
    stale = copy_of(app, owner)
    token = csrf(owner)
    assert owner.post("/logout", data={"csrf_token": token}).status_code == 302
    assert thief.get("/api/v1/whoami").status_code == 401
    assert stale.get("/api/v1/whoami").status_code == 401
    assert owner.get("/api/v1/whoami").status_code == 401


def test_logout_on_one_replica_ends_the_session_on_another(make_app: Any, redis_url: str) -> None:
    one, two = make_app(redis_url=redis_url), make_app(redis_url=redis_url)
    owner = signed_in(one)
    thief = copy_of(two, owner)
    assert thief.get("/api/v1/whoami").json["name"] == "ada"
    token = csrf(owner)
    owner.post("/logout", data={"csrf_token": token})
    assert thief.get("/api/v1/whoami").status_code == 401


@pytest.mark.parametrize(
    "changed",
    [
        ("ada", "admin", generate_password_hash("a new password", method="pbkdf2:sha256:1000")),
        ("ada", "viewer", USERS[1][2]),  # the role taken away
    ],
)
def test_a_password_or_role_change_ends_the_sessions_issued_before(
    make_app: Any, changed: tuple[str, str, str]
) -> None:
    before = make_app()
    thief = copy_of(before, signed_in(before))
    after = make_app(users=(USERS[0], changed, USERS[2]))  # restarted with the new settings
    stolen = after.test_client()
    stolen.set_cookie("session", thief.get_cookie("session").value)  # type: ignore[union-attr]
    assert stolen.get("/api/v1/whoami").status_code == 401
    # Unchanged settings keep the session: a restart alone signs nobody out.
    again = make_app()
    kept = again.test_client()
    kept.set_cookie("session", thief.get_cookie("session").value)  # type: ignore[union-attr]
    assert kept.get("/api/v1/whoami").json["name"] == "ada"


def test_an_admin_signs_a_user_out_everywhere(make_app: Any) -> None:
    app = make_app()
    vic = signed_in(app, "vic", "vic-password")
    thief = copy_of(app, vic)
    admin = signed_in(app)
    page = admin.get("/sessions")
    assert page.status_code == 200 and "Sign out everywhere" in page.get_data(as_text=True)
    token = csrf(admin)
    assert admin.post("/sessions", data={"name": "vic", "csrf_token": token}).status_code == 200
    assert vic.get("/api/v1/whoami").status_code == 401
    assert thief.get("/api/v1/whoami").status_code == 401
    assert admin.get("/api/v1/whoami").json["name"] == "ada"  # only vic's ended
    admin.post("/sessions", data={"name": "", "csrf_token": token})
    assert admin.get("/api/v1/whoami").status_code == 401  # everyone's, the admin's too
    # A viewer may not do it.
    viewer = signed_in(app, "vic", "vic-password")
    assert viewer.get("/sessions").status_code == 403


def test_an_idle_session_ends(make_app: Any) -> None:
    app = make_app(session_idle_seconds=3600)
    wt: Watchtower = app.extensions["watchtower"]
    now = [1_900_000_000.0]
    wt.clock = lambda: now[0]  # type: ignore[method-assign]
    client = signed_in(app)
    now[0] += 3000
    assert client.get("/api/v1/whoami").status_code == 200  # used: idle time starts again
    now[0] += 3000
    assert client.get("/api/v1/whoami").status_code == 200
    now[0] += 3601
    assert client.get("/api/v1/whoami").status_code == 401


def test_the_default_idle_time_is_twelve_hours() -> None:
    assert Settings().session_idle_seconds == 12 * 3600
    assert Settings.from_env({"WATCHTOWER_SESSION_IDLE_SECONDS": "600"}).session_idle_seconds == 600


# -- 7: an app-wide body limit, answered before anything is parsed ------------------------------


class Untouchable(io.RawIOBase):
    """A request body that must not be read."""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        raise AssertionError("the body was read")


def test_a_huge_anonymous_post_is_refused_before_it_is_read(make_app: Any) -> None:
    client = make_app().test_client()
    answer = client.post(
        "/login",
        environ_overrides={
            "wsgi.input": Untouchable(),
            "CONTENT_LENGTH": str(200 * 1024 * 1024),
            "CONTENT_TYPE": "multipart/form-data; boundary=x",
        },
    )
    assert answer.status_code == 413
    assert answer.json["error"]["code"] == "too_large"


def test_a_body_without_a_length_is_cut_off_at_the_limit(make_app: Any) -> None:
    client = make_app(max_body_bytes=1024).test_client()
    body = b"name=" + b"a" * 4096
    answer = client.post(
        "/login",
        input_stream=io.BytesIO(body),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Transfer-Encoding": "chunked",
        },
        environ_overrides={"wsgi.input_terminated": True},  # as a server sets for chunks
    )
    assert answer.status_code == 413 and answer.json["error"]["code"] == "too_large"


def test_a_small_body_in_chunks_is_read_as_usual(make_app: Any) -> None:
    client = make_app().test_client()
    token = csrf(client)
    answer = client.post(
        "/login",
        input_stream=io.BytesIO(
            f"name=ada&password=correct+horse+battery+staple&csrf_token={token}".encode()
        ),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Transfer-Encoding": "chunked",
        },
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert answer.status_code == 302


def test_the_webhook_keeps_its_own_larger_limit(make_app: Any) -> None:
    client = make_app().test_client()
    hook = {"Authorization": f"Bearer {HOOK_TOKEN}"}
    big = payload(commonAnnotations={"note": "x" * 200_000})  # over 64 KiB, under 1 MiB
    assert client.post("/api/v1/alerts", json=big, headers=hook).status_code == 202
    small = make_app(webhook_max_bytes=100_000).test_client()
    assert small.post("/api/v1/alerts", json=big, headers=hook).status_code == 413


def test_ordinary_forms_are_unaffected(make_app: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    client = make_app().test_client()
    assert login(client, "ada", ADA_PASSWORD, "/runbooks").headers["Location"] == "/runbooks"
    assert client.get("/api/v1/whoami").json == {"name": "ada", "role": "admin", "via": "session"}


def test_a_ledger_that_does_not_answer_refuses_rather_than_skips_its_checks(
    make_app: Any,
) -> None:
    client = make_app(redis_url="redis://127.0.0.1:9/0").test_client()  # nothing listens on 9
    answer = client.get("/api/v1/whoami", auth=("ada", ADA_PASSWORD))
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "5"
    assert answer.json["error"]["code"] == "unavailable"
    # Bearer tokens need no ledger: machines keep working while Redis is away.
    ok = client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {OLIVE_TOKEN}"})
    assert ok.json["name"] == "olive"
