"""POST /api/v1/alerts with whatever may arrive: arbitrary JSON and bytes, notifications with one
field mutated (removed, of the wrong type, a huge string, control characters, times at the edge
of the calendar), label names and values of any characters, and any Authorization header.

Only 202, 400, 401, 403 or 413, never a 5xx; a 400 names the field; and a notification that is
refused stores nothing: every table (alerts, executions, steps, audit log, claims) is as it was.
Run over SQLite and the real PostgreSQL, since what one stores the other may refuse.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import currently_in_test_context, event, example, given
from hypothesis import strategies as st
from sqlalchemy import MetaData, select

from tests.image_core.fuzz.common import fuzz_settings
from tests.watchtower.alerts.test_alerting import am_alert, payload
from watchtower.config import Settings
from watchtower.runtime import Watchtower, build
from watchtower.web import create_app

TOKEN = "fuzz-hook-token"
HOOK = {"Authorization": f"Bearer {TOKEN}"}
MAX_BYTES = 16 * 1024
ANSWERS = {202, 400, 401, 403, 413}
# Where a 400 may point: the body as a whole, or a field of the notification.
TOP_FIELDS = {
    *("body", "version", "alerts", "truncatedAlerts"),
    *("receiver", "status", "groupKey", "externalURL"),
}


@pytest.fixture(params=["sqlite", "postgresql"])
def watchtower(request: Any, tmp_path: Path) -> Iterator[Watchtower]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'fuzz.sqlite'}"
        drop = None
    else:
        import psycopg

        server = request.getfixturevalue("postgres_server")
        name = f"fuzz_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        url = server.url.rsplit("/", 1)[0] + f"/{name}"
        drop = (server.url, name)
    wt = build(
        Settings(
            database_url=url,
            webhook_token=TOKEN,
            webhook_max_bytes=MAX_BYTES,
            users=(("olive", "operator", "op-secret"),),
            anonymous_role=None,
            secret_key="k",
        )
    )
    yield wt
    wt.close()
    if drop is not None:
        import psycopg

        with psycopg.connect(drop[0], autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {drop[1]} WITH (FORCE)")


Snapshot = Callable[[], dict[str, list[tuple[str, ...]]]]


@pytest.fixture
def client(watchtower: Watchtower) -> FlaskClient:
    return create_app(watchtower).test_client()


@pytest.fixture
def snapshot(watchtower: Watchtower) -> Snapshot:
    """Every row of every table, in a stable order; the tables reflected once."""
    tables = MetaData()
    tables.reflect(watchtower.store.engine)

    def rows() -> dict[str, list[tuple[str, ...]]]:
        with watchtower.store.engine.connect() as conn:
            return {
                name: sorted(tuple(map(repr, row)) for row in conn.execute(select(table)))
                for name, table in tables.tables.items()
            }

    return rows


# -- what may arrive ------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)
control_text = st.one_of(
    st.sampled_from(["\x00", "a\x00b", "\x1b[31mred", "\u2028", "\ufeff", "\udc80"]),
    st.text(
        alphabet=st.characters(codec="utf-8", categories=["Cc", "Cf", "Zl", "Zp", "Co"]),
        min_size=1,
        max_size=20,
    ),
)
huge_text = st.integers(400, 20_000).map(lambda n: "x" * n)
times = st.one_of(
    st.sampled_from(
        [
            "9999-12-31T23:59:59-01:00",  # past the calendar once in UTC
            "0001-01-01T00:00:00+01:00",  # before it
            "0001-01-01T00:30:00+01:00",
            "0001-01-02T00:00:00+23:59",
            "2026-02-30T10:00:00Z",
            "2026-11-27T24:00:00Z",
            "2026-11-27T10:00:00.1234567891Z",
            "2026-11-27T10:00:00+24:00",
            "2026-11-27 10:00:00Z",
        ]
    ),
    st.from_regex(
        r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})", fullmatch=True
    ),
)
# Header values as an HTTP client can send them (latin-1, no line breaks).
header_text = st.text(
    alphabet=st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=60
)
odd_values = st.one_of(json_values, control_text, huge_text, times)
label_names = st.one_of(
    st.text(max_size=20), st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,15}", fullmatch=True)
)


def deeply_nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    """A valid notification of one to three alerts with one thing changed."""
    alerts = [
        am_alert(
            draw(st.sampled_from(["ImageUploadProbeFailing", "ImageDynamoDBThrottling", "Other"])),
            fingerprint=f"{n + 1:x}" * 4,
            table="images",
        )
        for n in range(draw(st.integers(1, 3)))
    ]
    body = payload(*alerts)
    what = draw(st.sampled_from(["time", "label", "label_name", "alert", "top", "annotation"]))
    if what == "top":
        key = draw(st.sampled_from(sorted(body)))
        if draw(st.booleans()):
            del body[key]
        else:
            body[key] = draw(odd_values)
        return body
    alert = body["alerts"][draw(st.integers(0, len(alerts) - 1))]
    if what == "alert":
        key = draw(st.sampled_from(sorted(alert)))
        if draw(st.booleans()):
            del alert[key]
        else:
            alert[key] = draw(odd_values)
    elif what == "label":
        alert["labels"][draw(st.sampled_from(["alertname", "table", "severity", "new"]))] = draw(
            odd_values
        )
    elif what == "label_name":
        alert["labels"][draw(label_names)] = draw(st.text(max_size=30))
    elif what == "annotation":
        alert["annotations"][draw(st.text(max_size=30))] = draw(odd_values)
    else:
        alert[draw(st.sampled_from(["startsAt", "endsAt"]))] = draw(times)
    return body


near_valid = mutated().map(lambda v: json.dumps(v).encode())
bodies = st.one_of(
    near_valid,
    near_valid,
    mutated().map(lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8", "surrogatepass")),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=300),
    st.integers(1, 3000).map(deeply_nested),
)


# -- what must come back --------------------------------------------------------------------------

_INDEX = re.compile(r"alerts\[(\d+)\]")


def assert_field_named(field: object, sent: bytes) -> None:
    """The field is named, and names something of what was sent (or the body as a whole)."""
    assert isinstance(field, str) and field, field
    top = re.split(r"[.\[]", field, maxsplit=1)[0]
    assert top in TOP_FIELDS, field
    found = _INDEX.match(field)
    if found:
        alerts = json.loads(sent)["alerts"]
        assert int(found[1]) < len(alerts), field


def judge(client: FlaskClient, snapshot: Snapshot, body: bytes, headers: dict[str, str]) -> Any:
    before = snapshot()
    answer = client.post(
        "/api/v1/alerts", data=body, headers=headers, content_type="application/json"
    )
    assert answer.status_code in ANSWERS, (answer.status_code, answer.get_data()[:300])
    error = (answer.get_json(silent=True) or {}).get("error")
    if currently_in_test_context():  # --hypothesis-show-statistics counts the answers
        event(f"{answer.status_code} {(error or {}).get('field', '')}")
    if answer.status_code != 202:
        assert isinstance(error, dict) and error.get("code"), answer.get_data()[:300]
        assert snapshot() == before, "a refused notification stored something"
    if answer.status_code == 400:
        assert_field_named(error.get("field"), body)
        assert error["message"].startswith(f"{error['field']}: ")
    return answer


def _with(path: tuple[str | int, ...], value: Any) -> bytes:
    """A valid notification with the value at `path` replaced: the examples found once."""
    body = payload(am_alert("ImageUploadProbeFailing", fingerprint="ab"))
    target: Any = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return json.dumps(body).encode()


@fuzz_settings(max_examples=200)
@given(body=bodies)
# Found by this test: each was a 500 or, on PostgreSQL, a 503 that Alertmanager retries forever.
@example(body=deeply_nested(2000))
@example(body=_with(("alerts", 0, "startsAt"), "9999-12-31T23:59:59-01:00"))
@example(body=_with(("alerts", 0, "generatorURL"), "http://x/\x00"))
def test_any_body_is_accepted_or_refused_naming_the_field(
    client: FlaskClient, snapshot: Snapshot, body: bytes
) -> None:
    judge(client, snapshot, body, HOOK)


@fuzz_settings(max_examples=40)
@given(
    body=st.one_of(mutated().map(lambda v: json.dumps(v).encode()), st.binary(max_size=100)),
    authorization=st.one_of(
        st.none(),
        header_text,
        st.sampled_from(["Bearer", "Bearer ", "bearer x", "Basic b2xpdmU6b3Atc2VjcmV0"]),
        header_text.map(lambda t: f"Bearer {TOKEN}{t}"),
        header_text.map(lambda t: f"Bearer {t}{TOKEN}"),
        st.just("Bearer op-secret"),  # a user's token is not the webhook's
    ),
)
def test_without_the_webhook_token_nothing_is_read(
    client: FlaskClient, snapshot: Snapshot, body: bytes, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    answer = judge(client, snapshot, body, headers)
    if not _is_the_token(authorization):
        assert answer.status_code in (401, 403), answer.json


def _is_the_token(authorization: str | None) -> bool:
    """Whether the header carries the webhook's token, read as leniently as any server might."""
    scheme, _, token = (authorization or "").strip(" \t").partition(" ")
    return scheme.lower() == "bearer" and token.strip(" \t") == TOKEN


def test_a_body_over_the_limit_is_413_and_nothing_is_stored(
    client: FlaskClient, snapshot: Snapshot
) -> None:
    big = payload(am_alert())
    big["alerts"][0]["annotations"]["description"] = "x" * MAX_BYTES
    answer = judge(client, snapshot, json.dumps(big).encode(), HOOK)
    assert answer.status_code == 413


def test_the_notification_the_mutations_start_from_is_accepted(client: FlaskClient) -> None:
    """So that the mutations are near-valid: each changes one thing of an accepted notification."""
    body = payload(am_alert("ImageDynamoDBThrottling", fingerprint="1111", table="images"))
    answer = client.post("/api/v1/alerts", json=body, headers=HOOK)
    assert answer.status_code == 202, answer.json
