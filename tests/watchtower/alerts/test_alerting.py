"""Alertmanager payloads, label validation, routes and dispatch: the pure part of alerting."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from watchtower import alerting
from watchtower.alerting import (
    DEFAULT_ROUTES,
    Mode,
    parse_matcher,
    parse_notification,
    parse_routes,
    select,
)
from watchtower.errors import ConfigError, PayloadError
from watchtower.model import Alert

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def am_alert(
    alertname: str = "ImageUploadProbeFailing",
    *,
    status: str = "firing",
    fingerprint: str = "0123456789abcdef",
    starts_at: str = "2026-11-27T10:00:00.123456789Z",
    ends_at: str = "0001-01-01T00:00:00Z",
    **labels: str,
) -> dict[str, Any]:
    """One alert as Alertmanager 0.25 writes it in a webhook."""
    return {
        "status": status,
        "labels": {"alertname": alertname, "severity": "critical", **labels},
        "annotations": {"summary": "s", "description": "line one\nline two"},
        "startsAt": starts_at,
        "endsAt": ends_at,
        "generatorURL": "http://127.0.0.1:9090/graph?g0.expr=x",
        "fingerprint": fingerprint,
    }


def payload(*alerts: dict[str, Any], **top: Any) -> dict[str, Any]:
    body = {
        "receiver": "watchtower",
        "status": "firing",
        "alerts": list(alerts) or [am_alert()],
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
        "version": "4",
        "groupKey": '{}:{alertname="ImageUploadProbeFailing"}',
        "truncatedAlerts": 0,
    }
    body.update(top)
    return body


def encode(body: Any) -> bytes:
    return json.dumps(body).encode()


# -- payloads ---------------------------------------------------------------------------------


def test_a_version_4_notification_becomes_alert_records() -> None:
    n = parse_notification(encode(payload(am_alert(probe="upload_get"))))
    assert n.receiver == "watchtower" and n.status == "firing" and n.truncated_alerts == 0
    (alert,) = n.alerts
    assert alert == Alert(
        fingerprint="0123456789abcdef",
        status="firing",
        labels={
            "alertname": "ImageUploadProbeFailing",
            "severity": "critical",
            "probe": "upload_get",
        },
        annotations={"summary": "s", "description": "line one\nline two"},
        starts_at=datetime(2026, 11, 27, 10, 0, 0, 123456, tzinfo=UTC),
        ends_at=None,  # Alertmanager's zero time
        generator_url="http://127.0.0.1:9090/graph?g0.expr=x",
    )
    assert alert.name == "ImageUploadProbeFailing"


def test_times_are_read_in_utc_whatever_their_offset() -> None:
    raw = am_alert(
        status="resolved", starts_at="2026-11-27T12:00:00+02:00", ends_at="2026-11-27T10:05:00Z"
    )
    (alert,) = parse_notification(encode(payload(raw, status="resolved"))).alerts
    assert alert.starts_at == T0 and alert.starts_at.tzinfo == UTC
    assert alert.ends_at == T0 + timedelta(minutes=5)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "body"),
        (b"\xff\xfe", "body"),
        (encode([1]), "body"),
        (encode(payload(version="3")), "version"),
        (encode({k: v for k, v in payload().items() if k != "version"}), "version"),
        (encode(payload(alerts={})), "alerts"),
        (encode(payload(status="pending")), "status"),
        (encode({k: v for k, v in payload().items() if k != "receiver"}), "receiver"),
        (encode(payload(groupKey=7)), "groupKey"),
        (encode(payload(truncatedAlerts=-1)), "truncatedAlerts"),
        (encode(payload(am_alert(), "x")), "alerts[1]"),
        (encode(payload({**am_alert(), "status": "active"})), "alerts[0].status"),
        (encode(payload({**am_alert(), "labels": ["a"]})), "alerts[0].labels"),
        (
            encode(payload({**am_alert(), "labels": {"severity": "x"}})),
            "alerts[0].labels.alertname",
        ),
        (encode(payload(am_alert(table="a" * 513))), "alerts[0].labels.table"),
        (encode(payload(am_alert(table="images\nrm -rf"))), "alerts[0].labels.table"),
        (
            encode(payload({**am_alert(), "labels": {"alertname": "A", "bad-name": "x"}})),
            "alerts[0].labels.'bad-name'",
        ),
        (
            encode(payload({**am_alert(), "labels": {"alertname": "A", "n": 1}})),
            "alerts[0].labels.n",
        ),
        (
            encode(payload({**am_alert(), "annotations": {"summary": 1}})),
            "alerts[0].annotations.summary",
        ),
        (
            encode(payload({**am_alert(), "annotations": {"d": "x" * 8193}})),
            "alerts[0].annotations.d",
        ),
        (encode(payload(am_alert(fingerprint="not-hex!"))), "alerts[0].fingerprint"),
        (
            encode(payload({k: v for k, v in am_alert().items() if k != "fingerprint"})),
            "alerts[0].fingerprint",
        ),
        (encode(payload(am_alert(starts_at="yesterday"))), "alerts[0].startsAt"),
        (encode(payload(am_alert(starts_at="2026-11-27"))), "alerts[0].startsAt"),
        (encode(payload(am_alert(starts_at="2026-13-45T10:00:00Z"))), "alerts[0].startsAt"),
        (
            encode(payload({k: v for k, v in am_alert().items() if k != "startsAt"})),
            "alerts[0].startsAt",
        ),
        (encode(payload(am_alert(ends_at="2026-11-27 10:00"))), "alerts[0].endsAt"),
        (encode(payload({**am_alert(), "generatorURL": 3})), "alerts[0].generatorURL"),
    ],
)
def test_a_malformed_payload_names_the_field(body: bytes, field: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_notification(body)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


def test_label_bounds() -> None:
    many = {f"l{n}": "v" for n in range(alerting.MAX_LABELS + 1)}
    with pytest.raises(PayloadError, match="more than 64"):
        alerting.validate_labels(many)
    # Printable text of any script is a fine value; at the limit is fine too.
    assert alerting.validate_labels({"table": "imágenes", "x": "a" * 512}) == {
        "table": "imágenes",
        "x": "a" * 512,
    }


# -- routes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("alertname = A", {"alertname": "A"}, True),
        ('alertname="A"', {"alertname": "A"}, True),
        ("alertname = A", {"alertname": "AB"}, False),
        ("check != dual_write", {"check": "x"}, True),
        ("check != dual_write", {}, True),
        ("check =~ dynamodb_.*", {"check": "dynamodb_throttling"}, True),
        ("check =~ dynamodb", {"check": "dynamodb_throttling"}, False),  # anchored
        ('check !~ "a|b"', {"check": "b"}, False),
        ('team = ""', {}, True),  # a missing label reads as ""
        ('quoted = "a \\"b\\""', {"quoted": 'a "b"'}, True),
    ],
)
def test_matchers_follow_alertmanager(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_matcher(text).matches(labels) is expected


@pytest.mark.parametrize("text", ["alertname", "= A", "1abc = x", "a =~ (", 'a = "x" "y"'])
def test_a_bad_matcher_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_matcher(text)


def routes(*entries: dict[str, Any]) -> tuple[alerting.Route, ...]:
    return parse_routes({"routes": list(entries)}, source="test")


def test_the_first_matching_route_wins_unless_it_continues() -> None:
    table = routes(
        {"matchers": ["alertname = A"], "runbook": "one", "mode": "automatic"},
        {"matchers": ["alertname =~ A|B"], "runbook": "two", "mode": "suggest"},
    )
    assert [r.runbook for r in select(table, {"alertname": "A"})] == ["one"]
    assert [r.runbook for r in select(table, {"alertname": "B"})] == ["two"]
    assert select(table, {"alertname": "C"}) == []
    going_on = routes(
        {"matchers": ["alertname = A"], "runbook": "one", "mode": "automatic", "continue": True},
        {"matchers": ["severity = page"], "runbook": "one", "mode": "suggest", "continue": True},
        {"matchers": ["alertname =~ A|B"], "runbook": "two", "mode": "suggest"},
    )
    chosen = select(going_on, {"alertname": "A", "severity": "page"})
    assert [(r.runbook, r.mode) for r in chosen] == [("one", "automatic"), ("two", "suggest")]


def test_all_matchers_of_a_route_must_hold() -> None:
    table = routes(
        {"matchers": ["alertname = X", "check = dual_write"], "runbook": "one", "mode": "suggest"}
    )
    assert select(table, {"alertname": "X", "check": "dual_write"})
    assert not select(table, {"alertname": "X", "check": "gallery_cache"})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "top level: must be a mapping with one key, routes"),
        ({"routes": [], "extra": 1}, "top level"),
        ({"routes": {}}, "routes: must be a list"),
        ({"routes": ["x"]}, "routes[0]: must be a mapping"),
        (
            {"routes": [{"matchers": ["a = b"], "runbook": "r", "mode": "automatic", "when": 1}]},
            "routes[0]: unknown key 'when'",
        ),
        (
            {"routes": [{"runbook": "r", "mode": "automatic"}]},
            "routes[0].matchers: must be a non-empty list",
        ),
        (
            {"routes": [{"matchers": [3], "runbook": "r", "mode": "automatic"}]},
            "routes[0].matchers[0]: must be a string",
        ),
        (
            {"routes": [{"matchers": ["a ~ b"], "runbook": "r", "mode": "automatic"}]},
            "routes[0].matchers[0]: 'a ~ b' is not a matcher",
        ),
        (
            {"routes": [{"matchers": ["a = b"], "runbook": "../etc", "mode": "automatic"}]},
            "routes[0].runbook",
        ),
        (
            {"routes": [{"matchers": ["a = b"], "runbook": "r", "mode": "auto"}]},
            "routes[0].mode: 'auto' must be one of automatic, suggest",
        ),
        (
            {
                "routes": [
                    {"matchers": ["a = b"], "runbook": "r", "mode": "suggest", "continue": "yes"}
                ]
            },
            "routes[0].continue",
        ),
    ],
)
def test_invalid_routes_name_the_field(data: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_routes(data, source="routes.yml")
    assert str(caught.value).startswith(f"routes.yml: {message}")


REQUIRED = {
    "ImageUploadProbeFailing": ("image-upload-failures", "automatic"),
    "ImageUploadSlow": ("image-upload-failures", "automatic"),
    "ImageDynamoDBThrottling": ("dynamodb-throttling", "automatic"),
    "ImageLambdaColdStarts": ("lambda-cold-starts", "suggest"),
    "ImageCloudFrontHitRateLow": ("cloudfront-cache-invalidation", "suggest"),
    "LegacyInsertsAfterCutover": ("find-legacy-writer", "suggest"),
}


@pytest.mark.parametrize(("alertname", "expected"), sorted(REQUIRED.items()))
def test_the_default_routes(alertname: str, expected: tuple[str, str]) -> None:
    (route,) = select(DEFAULT_ROUTES, {"alertname": alertname, "severity": "warning"})
    assert (route.runbook, route.mode) == expected


@pytest.mark.parametrize(
    "alertname",
    [
        "WatchtowerCheckCritical",
        "WatchtowerCheckUnknown",
        "WatchtowerProbeStale",
        "WatchtowerCheckStale",
        "WatchtowerAbsent",
    ],
)
def test_alerts_about_watchtower_itself_start_their_own_read_only_runbooks(alertname: str) -> None:
    (route,) = select(DEFAULT_ROUTES, {"alertname": alertname})
    expected = "watchtower-" + alertname.removeprefix("Watchtower").replace("Check", "check-")
    assert route.runbook.startswith("watchtower-") and route.mode == "automatic"
    assert route.runbook.replace("-", "") == expected.lower().replace("-", "")


def test_an_alert_no_route_selects_starts_nothing() -> None:
    assert select(DEFAULT_ROUTES, {"alertname": "Other"}) == []


def test_unknown_runbooks_are_named_once() -> None:
    assert alerting.unknown_runbooks(DEFAULT_ROUTES, ["image-upload-failures"]) == [
        "dynamodb-throttling",
        "lambda-cold-starts",
        "cloudfront-cache-invalidation",
        "find-legacy-writer",
        "watchtower-check-critical",
        "watchtower-check-unknown",
        "watchtower-probe-stale",
        "watchtower-check-stale",
        "watchtower-absent",
    ]


# -- dispatch ---------------------------------------------------------------------------------


@dataclass
class RecordingStarter:
    """The engine's two methods, recorded, for `dispatch` alone (test_webhook runs the engine)."""

    started: list[tuple[str, str, Mode]] = field(default_factory=list)
    resolved: list[tuple[str, datetime]] = field(default_factory=list)
    open: dict[str, str] = field(default_factory=dict)  # fingerprint -> execution id
    fail_for: set[str] = field(default_factory=set)  # runbook ids whose start raises

    def start_from_alert(
        self, runbook_id: str, *, alert: Alert, mode: Mode, rerun_after: timedelta | None = None
    ) -> str | None:
        if runbook_id in self.fail_for:
            raise RuntimeError(f"cannot start {runbook_id}")
        if alert.fingerprint in self.open:
            return None
        self.started.append((runbook_id, alert.fingerprint, mode))
        self.open[alert.fingerprint] = f"x{len(self.started)}"
        return self.open[alert.fingerprint]

    def start_from_alerts(
        self, starts: Sequence[alerting.AlertStart]
    ) -> list[str | Exception | None]:
        return [_outcome(self.start_from_alert, s) for s in starts]

    def alert_resolved(
        self, fingerprint: str, *, at: datetime, starts_at: datetime | None = None
    ) -> None:
        self.resolved.append((fingerprint, at))
        self.open.pop(fingerprint, None)


def _outcome(start: Callable[..., str | None], s: alerting.AlertStart) -> str | Exception | None:
    """One start as the engine's start_from_alerts reports it: its run, None, or what it raised."""
    try:
        return start(s.runbook, alert=s.alert, mode=s.mode, rerun_after=s.rerun_after)
    except Exception as exc:
        return exc


@dataclass
class MemoryAlerts:
    """The alert store's ordering rule, in memory (the real one is tested in test_webhook)."""

    kept: dict[str, Alert] = field(default_factory=dict)

    def record_alert(self, alert: Alert, *, received_at: datetime) -> bool:
        old = self.kept.get(alert.fingerprint)
        if old is not None and (old.starts_at, old.status == "resolved") > (
            alert.starts_at,
            alert.status == "resolved",
        ):
            return False
        self.kept[alert.fingerprint] = alert
        return True

    def record_alerts(self, received: Sequence[tuple[Alert, datetime]]) -> list[bool]:
        return [self.record_alert(alert, received_at=at) for alert, at in received]


@pytest.fixture
def starter() -> RecordingStarter:
    return RecordingStarter()


def _dispatch(
    body: dict[str, Any], starter: RecordingStarter, store: MemoryAlerts
) -> alerting.Dispatched:
    return alerting.dispatch(
        parse_notification(encode(body)),
        routes=DEFAULT_ROUTES,
        store=store,
        runbooks=starter,
        now=T0 + timedelta(minutes=9),
    )


def test_dispatch_starts_routed_runbooks_once_and_passes_on_resolutions(
    starter: RecordingStarter,
) -> None:
    store = MemoryAlerts()
    firing = payload(
        am_alert("ImageUploadProbeFailing", fingerprint="aa"),
        am_alert("LegacyInsertsAfterCutover", fingerprint="bb"),
        am_alert("SomethingElse", fingerprint="cc"),
    )
    done = _dispatch(firing, starter, store)
    assert starter.started == [
        ("image-upload-failures", "aa", "automatic"),
        ("find-legacy-writer", "bb", "suggest"),
    ]
    assert [(s.fingerprint, s.execution) for s in done.started] == [("aa", "x1"), ("bb", "x2")]
    assert set(store.kept) == {"aa", "bb", "cc"}  # unrouted alerts are kept too
    # Alertmanager's retry, or its other replica: nothing new.
    again = _dispatch(firing, starter, store)
    assert [s.execution for s in again.started] == [None, None]
    assert len(starter.started) == 2
    # Resolved: the engine hears of it, at the alert's end.
    resolved = payload(
        am_alert(
            "ImageUploadProbeFailing",
            fingerprint="aa",
            status="resolved",
            ends_at="2026-11-27T10:08:00Z",
        ),
        status="resolved",
    )
    done = _dispatch(resolved, starter, store)
    assert done.resolved == ("aa",)
    assert starter.resolved == [("aa", T0 + timedelta(minutes=8))]
    # A late retry of the firing notification is older than the resolution: it starts nothing.
    late = _dispatch(firing, starter, store)
    assert late.stale == ("aa",)
    assert len(starter.started) == 2


def test_one_runbook_failing_to_start_does_not_stop_the_others(starter: RecordingStarter) -> None:
    starter.fail_for = {"image-upload-failures"}
    done = _dispatch(
        payload(
            am_alert("ImageUploadProbeFailing", fingerprint="aa"),
            am_alert("ImageDynamoDBThrottling", fingerprint="bb"),
        ),
        starter,
        MemoryAlerts(),
    )
    assert [f.runbook for f in done.failed] == ["image-upload-failures"]
    assert "RuntimeError: cannot start" in done.failed[0].error
    assert [s.runbook for s in done.started] == ["dynamodb-throttling"]


def test_a_route_names_its_rerun_cool_down() -> None:
    (route,) = alerting.parse_routes(
        {"routes": [{"matchers": ["alertname = X"], "runbook": "r", "mode": "automatic"}]},
        source="t",
    )
    assert route.rerun_after is None  # one run per episode, however long it fires
    (route,) = alerting.parse_routes(
        {
            "routes": [
                {
                    "matchers": ["alertname = X"],
                    "runbook": "r",
                    "mode": "automatic",
                    "rerun_after": "4h",
                }
            ]
        },
        source="t",
    )
    assert route.rerun_after == timedelta(hours=4)
    for bad in ("10s", "4 hours", 5, ""):
        with pytest.raises(ConfigError, match=r"routes\[0\]\.rerun_after"):
            alerting.parse_routes(
                {
                    "routes": [
                        {
                            "matchers": ["alertname = X"],
                            "runbook": "r",
                            "mode": "automatic",
                            "rerun_after": bad,
                        }
                    ]
                },
                source="t",
            )


def test_dispatch_hands_the_route_cool_down_and_the_episode_to_the_engine() -> None:
    seen: list[tuple[timedelta | None, datetime | None]] = []

    class Engine:
        def start_from_alert(
            self, runbook_id: str, *, alert: Alert, mode: Mode, rerun_after: timedelta | None = None
        ) -> str | None:
            seen.append((rerun_after, alert.starts_at))
            return "x"

        def start_from_alerts(
            self, starts: Sequence[alerting.AlertStart]
        ) -> list[str | Exception | None]:
            return [_outcome(self.start_from_alert, s) for s in starts]

        def alert_resolved(
            self, fingerprint: str, *, at: datetime, starts_at: datetime | None = None
        ) -> None:
            seen.append((None, starts_at))

    routes = alerting.parse_routes(
        {
            "routes": [
                {
                    "matchers": ["alertname = X"],
                    "runbook": "r",
                    "mode": "automatic",
                    "rerun_after": "30m",
                }
            ]
        },
        source="t",
    )
    start = datetime(2026, 5, 1, tzinfo=UTC)
    firing = Alert(
        fingerprint="ab",
        status="firing",
        labels={"alertname": "X"},
        annotations={},
        starts_at=start,
    )
    note = alerting.Notification(receiver="w", status="firing", group_key="g", alerts=(firing,))
    alerting.dispatch(note, routes=routes, store=MemoryAlerts(), runbooks=Engine(), now=start)
    resolved = dataclasses.replace(firing, status="resolved", ends_at=start + timedelta(hours=1))
    note = dataclasses.replace(note, status="resolved", alerts=(resolved,))
    alerting.dispatch(note, routes=routes, store=MemoryAlerts(), runbooks=Engine(), now=start)
    assert seen == [(timedelta(minutes=30), start), (None, start)]
