"""Alertmanager's webhook (payload version 4), and the routes that pick runbooks for alerts. Pure.

A notification is validated whole before anything acts on it: a malformed one raises
PayloadError naming the field (`alerts[2].labels.table`). Label names follow Prometheus
(`[a-zA-Z_][a-zA-Z0-9_]*`); label values are bounded and printable, because the runbook engine
takes its parameters from them.

Routes are read in order, as Alertmanager reads its own: the first route whose matchers all hold
selects its runbook, and a route with `continue: true` lets the next ones match as well. A
route's mode is what the run may do unattended (the engine's rule): `automatic` runs its steps,
actions included, except those the runbook marks `approval: required`; `suggest` runs its reads
and waits for an operator's approval before every action that changes something.

`dispatch` is what the webhook does with a notification, over two small ports: the alert store
and the runbook engine.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from watchtower.errors import ConfigError, PayloadError
from watchtower.model import Alert

Mode = Literal["automatic", "suggest"]
MODES: tuple[Mode, ...] = ("automatic", "suggest")
AlertStatus = Literal["firing", "resolved"]

LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
RUNBOOK_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
FINGERPRINT = re.compile(r"[0-9a-fA-F]{1,64}")
# RFC 3339, as Alertmanager writes it (up to nanoseconds); fromisoformat alone accepts far more.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})")
MAX_LABELS = 64
MAX_LABEL_VALUE = 512
MAX_ANNOTATION_VALUE = 8192


# -- the webhook's payload --------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Notification:
    """One webhook call: a group of alerts Alertmanager sends together."""

    receiver: str
    status: AlertStatus
    group_key: str
    alerts: tuple[Alert, ...]
    truncated_alerts: int = 0  # alerts Alertmanager left out (its max_alerts)
    external_url: str = ""


def parse_notification(body: bytes) -> Notification:
    """A webhook body, validated; raises PayloadError naming the first field that is wrong."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError("body", f"is not JSON ({exc})") from None
    except RecursionError:  # `[[[[…` a thousand deep: the parser's stack, not ours, runs out
        raise PayloadError("body", "is nested too deeply to be a notification") from None
    payload = _object(data, "body")
    version = payload.get("version")
    if version != "4":
        raise PayloadError("version", f'must be "4" (Alertmanager\'s webhook), not {version!r}')
    raw_alerts = payload.get("alerts")
    if not isinstance(raw_alerts, list):
        raise PayloadError("alerts", "must be a list")
    truncated = payload.get("truncatedAlerts", 0)
    if isinstance(truncated, bool) or not isinstance(truncated, int) or truncated < 0:
        raise PayloadError("truncatedAlerts", "must be a whole number, 0 or more")
    return Notification(
        receiver=_string(payload, "receiver", "receiver"),
        status=_status(payload, "status", "status"),
        group_key=_string(payload, "groupKey", "groupKey"),
        alerts=tuple(_alert(a, f"alerts[{n}]") for n, a in enumerate(raw_alerts)),
        truncated_alerts=truncated,
        external_url=_string(payload, "externalURL", "externalURL", required=False),
    )


def _alert(data: object, where: str) -> Alert:
    alert = _object(data, where)
    labels = validate_labels(_object(alert.get("labels"), f"{where}.labels"), f"{where}.labels")
    if not labels.get("alertname"):
        raise PayloadError(f"{where}.labels.alertname", "is missing")
    fingerprint = _string(alert, "fingerprint", f"{where}.fingerprint")
    if not FINGERPRINT.fullmatch(fingerprint):
        raise PayloadError(f"{where}.fingerprint", "must be 1 to 64 hexadecimal digits")
    status = _status(alert, "status", f"{where}.status")
    starts_at = _time(alert.get("startsAt"), f"{where}.startsAt")
    if starts_at is None:
        raise PayloadError(f"{where}.startsAt", "is missing")
    return Alert(
        fingerprint=fingerprint,
        status=status,
        labels=labels,
        annotations=_annotations(alert.get("annotations", {}), f"{where}.annotations"),
        starts_at=starts_at,
        ends_at=_time(alert.get("endsAt"), f"{where}.endsAt"),
        generator_url=_url(alert, "generatorURL", f"{where}.generatorURL"),
    )


def _url(data: Mapping[str, Any], key: str, where: str) -> str:
    """A link as Prometheus writes it: URL-encoded, so never a control character (PostgreSQL
    refuses NUL in text, which would fail the store, and Alertmanager would retry forever)."""
    value = _string(data, key, where, required=False)
    if not value.isprintable():
        raise PayloadError(where, "holds a character that is not printable")
    return value


def validate_labels(labels: Mapping[str, object], where: str = "labels") -> dict[str, str]:
    """Labels as the engine may take parameters from them; raises PayloadError otherwise."""
    if len(labels) > MAX_LABELS:
        raise PayloadError(where, f"has {len(labels)} labels, more than {MAX_LABELS}")
    checked = {}
    for name, value in labels.items():
        if not LABEL_NAME.fullmatch(name):
            raise PayloadError(f"{where}.{name!r}", "is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)")
        if not isinstance(value, str):
            raise PayloadError(f"{where}.{name}", "must be a string")
        if len(value) > MAX_LABEL_VALUE:
            raise PayloadError(f"{where}.{name}", f"is longer than {MAX_LABEL_VALUE} characters")
        if not value.isprintable():
            raise PayloadError(f"{where}.{name}", "holds a character that is not printable")
        checked[name] = value
    return checked


def _annotations(data: object, where: str) -> dict[str, str]:
    """Text for people: any name, newlines allowed, bounded like labels."""
    annotations = _object(data, where)
    if len(annotations) > MAX_LABELS:
        raise PayloadError(where, f"has {len(annotations)} annotations, more than {MAX_LABELS}")
    for name, value in annotations.items():
        if not isinstance(value, str):
            raise PayloadError(f"{where}.{name}", "must be a string")
        if len(value) > MAX_ANNOTATION_VALUE:
            raise PayloadError(
                f"{where}.{name}", f"is longer than {MAX_ANNOTATION_VALUE} characters"
            )
    return dict(annotations)


def _object(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PayloadError(where, "must be an object")
    return value


def _string(data: Mapping[str, Any], key: str, where: str, *, required: bool = True) -> str:
    value = data.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise PayloadError(where, "must be a string" if key in data else "is missing")
    return value


def _status(data: Mapping[str, Any], key: str, where: str) -> AlertStatus:
    value = data.get(key)
    if value == "firing":
        return "firing"
    if value == "resolved":
        return "resolved"
    raise PayloadError(where, f'must be "firing" or "resolved", not {value!r}')


def _time(value: object, where: str) -> datetime | None:
    """An RFC 3339 time in UTC; None for Alertmanager's zero time (year 1) or when absent."""
    if value is None:
        return None
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise PayloadError(where, f"must be an RFC 3339 time, not {value!r}")
    if value.startswith("0001-01-01"):
        return None
    try:
        return datetime.fromisoformat(value).astimezone(UTC)
    except ValueError as exc:
        raise PayloadError(where, f"is not a valid time ({exc})") from None
    except OverflowError:  # 9999-12-31T23:59:59-01:00 is a valid time, but not in UTC
        raise PayloadError(where, f"is outside the years 1 to 9999 in UTC: {value!r}") from None


# -- routes -----------------------------------------------------------------------------------

_MATCHER = re.compile(
    r"\s*(?P<name>[a-zA-Z_][a-zA-Z0-9_]*)\s*(?P<op>=~|!~|!=|=)\s*(?P<value>.*?)\s*", re.DOTALL
)


@dataclass(frozen=True, kw_only=True)
class Matcher:
    """`name = value`, `!=`, `=~` or `!~` (a regular expression matching the whole value).

    A label the alert lacks reads as the empty string, as in Alertmanager.
    """

    name: str
    op: Literal["=", "!=", "=~", "!~"]
    value: str
    pattern: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        assert self.pattern is not None
        found = self.pattern.fullmatch(actual) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f"{self.name}{self.op}{json.dumps(self.value)}"


def parse_matcher(text: str) -> Matcher:
    """`alertname = ImageUploadSlow`, `check =~ "dynamodb_.*"`; raises ValueError."""
    found = _MATCHER.fullmatch(text)
    if found is None:
        raise ValueError(f"{text!r} is not a matcher (label = value, !=, =~ or !~)")
    value = found["value"]
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError(f"{text!r}: the quoted value is not one string") from None
    op = found["op"]
    pattern = None
    if op in ("=~", "!~"):
        try:
            pattern = re.compile(value)
        except re.error as exc:
            raise ValueError(f"{text!r}: bad regular expression ({exc})") from None
    return Matcher(name=found["name"], op=op, value=value, pattern=pattern)  # type: ignore[arg-type]


@dataclass(frozen=True, kw_only=True)
class Route:
    matchers: tuple[Matcher, ...]
    runbook: str
    mode: Mode
    continue_matching: bool = False  # `continue: true`: later routes may match too
    # `rerun_after: 4h`: an episode still firing this long after its run ended runs again.
    # None (the default): one run per episode, however long it fires.
    rerun_after: timedelta | None = None

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels) for m in self.matchers)


def parse_routes(data: object, *, source: str) -> tuple[Route, ...]:
    """Routes from their YAML/JSON shape; raises ConfigError naming the source and the field."""

    def fail(where: str, problem: str) -> ConfigError:
        return ConfigError(f"{source}: {where}: {problem}")

    if not isinstance(data, dict) or set(data) != {"routes"}:
        raise fail("top level", "must be a mapping with one key, routes")
    entries = data["routes"]
    if not isinstance(entries, list):
        raise fail("routes", "must be a list")
    routes = []
    for n, entry in enumerate(entries):
        where = f"routes[{n}]"
        if not isinstance(entry, dict):
            raise fail(where, "must be a mapping")
        unknown = set(entry) - {"matchers", "runbook", "mode", "continue", "rerun_after"}
        if unknown:
            raise fail(
                where,
                f"unknown key {sorted(unknown)[0]!r} (matchers, runbook, mode, continue, "
                "rerun_after)",
            )
        raw_matchers = entry.get("matchers")
        if not isinstance(raw_matchers, list) or not raw_matchers:
            raise fail(f"{where}.matchers", "must be a non-empty list")
        matchers = []
        for m, text in enumerate(raw_matchers):
            if not isinstance(text, str):
                raise fail(f"{where}.matchers[{m}]", "must be a string like 'alertname = X'")
            try:
                matchers.append(parse_matcher(text))
            except ValueError as exc:
                raise fail(f"{where}.matchers[{m}]", str(exc)) from None
        runbook = entry.get("runbook")
        if not isinstance(runbook, str) or not RUNBOOK_ID.fullmatch(runbook):
            raise fail(
                f"{where}.runbook", f"{runbook!r} is not a runbook id (like image-upload-failures)"
            )
        mode = entry.get("mode")
        if mode not in MODES:
            raise fail(f"{where}.mode", f"{mode!r} must be one of {', '.join(MODES)}")
        go_on = entry.get("continue", False)
        if not isinstance(go_on, bool):
            raise fail(f"{where}.continue", "must be true or false")
        rerun_after = None
        if "rerun_after" in entry:
            try:
                rerun_after = parse_duration(entry["rerun_after"])
            except ValueError as exc:
                raise fail(f"{where}.rerun_after", str(exc)) from None
        routes.append(
            Route(
                matchers=tuple(matchers),
                runbook=runbook,
                mode=mode,
                continue_matching=go_on,
                rerun_after=rerun_after,
            )
        )
    return tuple(routes)


_DURATION = re.compile(r"(\d{1,6})(s|m|h|d)")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: object) -> timedelta:
    """`90s`, `30m`, `4h`, `1d` (as Alertmanager writes one unit); at least one minute."""
    found = _DURATION.fullmatch(value) if isinstance(value, str) else None
    if found is None:
        raise ValueError(f"{value!r} is not a duration like 30m, 4h or 1d")
    duration = timedelta(seconds=int(found[1]) * _UNITS[found[2]])
    if duration < timedelta(minutes=1):
        raise ValueError(f"{value!r} is shorter than a minute: a re-run needs a cool-down")
    return duration


def select(routes: Iterable[Route], labels: Mapping[str, str]) -> list[Route]:
    """The routes an alert's labels select: the first match, and more while `continue` says so.

    A runbook selected twice starts once, in the first route's mode.
    """
    chosen: dict[str, Route] = {}
    for route in routes:
        if route.matches(labels):
            chosen.setdefault(route.runbook, route)
            if not route.continue_matching:
                break
    return list(chosen.values())


def unknown_runbooks(routes: Iterable[Route], known: Iterable[str]) -> list[str]:
    """Runbook ids the routes name that are not among `known`, in route order."""
    have = set(known)
    return list(dict.fromkeys(r.runbook for r in routes if r.runbook not in have))


# The routes Watchtower starts with; WATCHTOWER_ROUTES_FILE replaces them (alerts/routes.yml is
# this table as a file, to copy and edit). Runbooks that change what users pay for or see
# (provisioned concurrency, invalidations, rollback) are only suggested.
DEFAULT_ROUTES = parse_routes(
    {
        "routes": [
            {
                "matchers": [
                    "alertname =~ ImageUploadProbeFailing|ImageUploadSlow|ImageUploadErrors"
                ],
                "runbook": "image-upload-failures",
                "mode": "automatic",
            },
            {
                "matchers": ["alertname = ImageDynamoDBThrottling"],
                "runbook": "dynamodb-throttling",
                "mode": "automatic",
            },
            {
                "matchers": ["alertname = ImageLambdaColdStarts"],
                "runbook": "lambda-cold-starts",
                "mode": "suggest",
            },
            {
                "matchers": ["alertname = ImageCloudFrontHitRateLow"],
                "runbook": "cloudfront-cache-invalidation",
                "mode": "suggest",
            },
            {
                "matchers": ["alertname = LegacyInsertsAfterCutover"],
                "runbook": "find-legacy-writer",
                "mode": "suggest",
            },
            # Watchtower's own alerts: runbooks that read, and change nothing.
            {
                "matchers": ["alertname = WatchtowerCheckCritical"],
                "runbook": "watchtower-check-critical",
                "mode": "automatic",
            },
            {
                "matchers": ["alertname = DualWriteFailing"],
                "runbook": "watchtower-check-critical",
                "mode": "automatic",
            },
            {
                "matchers": ["alertname = WatchtowerCheckUnknown"],
                "runbook": "watchtower-check-unknown",
                "mode": "automatic",
            },
            {
                "matchers": ["alertname = WatchtowerProbeStale"],
                "runbook": "watchtower-probe-stale",
                "mode": "automatic",
            },
            {
                "matchers": ["alertname = WatchtowerCheckStale"],
                "runbook": "watchtower-check-stale",
                "mode": "automatic",
            },
            {
                "matchers": ["alertname = WatchtowerAbsent"],
                "runbook": "watchtower-absent",
                "mode": "automatic",
            },
        ]
    },
    source="the default routes",
)


# -- what the webhook does with a notification -------------------------------------------------


class RunbookStarter(Protocol):
    """The runbook engine, as the webhook sees it."""

    def start_from_alerts(self, starts: Sequence[AlertStart]) -> list[str | Exception | None]:
        """Start (or, in suggest mode, propose) the run of each alert's episode (runbook,
        fingerprint, startsAt); for each, its run, None when that episode already has one, or
        what starting it raised."""

    def alert_resolved(
        self, fingerprint: str, *, at: datetime, starts_at: datetime | None = None
    ) -> None:
        """Record on the alert episode's runs that the alert resolved."""


@dataclass(frozen=True, kw_only=True)
class AlertStart:
    """A firing alert's route: start (or propose) the run of its episode."""

    runbook: str
    alert: Alert
    mode: Mode
    rerun_after: timedelta | None = None


class AlertRecorder(Protocol):
    def record_alerts(self, received: Sequence[tuple[Alert, datetime]]) -> list[bool]:
        """Keep each (alert, received_at)'s latest state, in order, at once; for each, False
        when it is older than the state kept."""


@dataclass(frozen=True, kw_only=True)
class Started:
    fingerprint: str
    alertname: str
    runbook: str
    mode: Mode
    execution: str | None  # None: the alert's episode already has its run, nothing new started


@dataclass(frozen=True, kw_only=True)
class Failed:
    fingerprint: str
    runbook: str
    error: str


@dataclass(frozen=True, kw_only=True)
class Dispatched:
    """What one notification did."""

    started: tuple[Started, ...] = ()
    resolved: tuple[str, ...] = ()  # fingerprints
    stale: tuple[str, ...] = ()  # fingerprints of alerts older than what was already received
    failed: tuple[Failed, ...] = ()


def dispatch(
    notification: Notification,
    *,
    routes: Sequence[Route],
    store: AlertRecorder,
    runbooks: RunbookStarter,
    now: datetime,
) -> Dispatched:
    """Store every alert, start the runbooks firing alerts' routes select, and pass on resolutions.

    An alert older than the state already stored (a late retry: a firing notification after its
    resolution, or a previous episode's) changes nothing. One runbook failing to start does not
    stop the others; the caller answers 5xx so that Alertmanager retries, which starts nothing
    twice since the engine keys alert runs by episode (runbook, fingerprint, startsAt). A store
    failure propagates.
    """
    (done,) = dispatch_many([(notification, now)], routes=routes, store=store, runbooks=runbooks)
    return done


def dispatch_many(
    received: Sequence[tuple[Notification, datetime]],
    *,
    routes: Sequence[Route],
    store: AlertRecorder,
    runbooks: RunbookStarter,
) -> list[Dispatched]:
    """`dispatch` for many (notification, received at) (the deferred intake's pass), with the
    same outcome as dispatching them one after another, in fewer round trips: every alert
    recorded at once, and the runs of the firing alerts started together, up to each resolution
    (handled in its turn, after the starts before it). A store failure propagates."""
    flat = [(alert, at) for notification, at in received for alert in notification.alerts]
    kept = iter(store.record_alerts(flat))
    started: list[list[Started]] = [[] for _ in received]
    resolved: list[list[str]] = [[] for _ in received]
    stale: list[list[str]] = [[] for _ in received]
    failed: list[list[Failed]] = [[] for _ in received]
    waiting: list[tuple[int, AlertStart]] = []

    def start_waiting() -> None:
        outcomes = runbooks.start_from_alerts([s for _, s in waiting])
        for (n, start), outcome in zip(waiting, outcomes, strict=True):
            alert = start.alert
            if isinstance(outcome, Exception):
                error = said(outcome)
                failed[n].append(
                    Failed(fingerprint=alert.fingerprint, runbook=start.runbook, error=error)
                )
                continue
            started[n].append(
                Started(
                    fingerprint=alert.fingerprint,
                    alertname=alert.name,
                    runbook=start.runbook,
                    mode=start.mode,
                    execution=outcome,
                )
            )
        waiting.clear()

    for n, (notification, at) in enumerate(received):
        for alert in notification.alerts:
            if not next(kept):
                stale[n].append(alert.fingerprint)
            elif alert.status == "resolved":
                start_waiting()
                try:
                    runbooks.alert_resolved(
                        alert.fingerprint, at=alert.ends_at or at, starts_at=alert.starts_at
                    )
                except Exception as exc:  # the engine's failure is reported, not raised
                    failed[n].append(
                        Failed(fingerprint=alert.fingerprint, runbook="", error=said(exc))
                    )
                else:
                    resolved[n].append(alert.fingerprint)
            else:
                waiting.extend(
                    (
                        n,
                        AlertStart(
                            runbook=r.runbook, alert=alert, mode=r.mode, rerun_after=r.rerun_after
                        ),
                    )
                    for r in select(routes, alert.labels)
                )
    start_waiting()
    return [
        Dispatched(
            started=tuple(started[n]),
            resolved=tuple(resolved[n]),
            stale=tuple(stale[n]),
            failed=tuple(failed[n]),
        )
        for n in range(len(received))
    ]


def said(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"
