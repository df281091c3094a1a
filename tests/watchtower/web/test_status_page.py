"""The status page and /api/v1/status, against a real history store filled with results."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from flask import Flask

from tests.watchtower.web.conftest import T0
from tests.watchtower.web.history import CHECKS, check, synthetic_history, walk
from watchtower.model import Alert, Result, Status, StepResult
from watchtower.runtime import Watchtower
from watchtower.web import create_app

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
TITLES = (
    "Upload path",
    "Get path",
    "DynamoDB",
    "Lambda",
    "CloudFront",
    "Cache (Redis)",
    "Legacy PostgreSQL / dual-write",
)


def now_results(**overrides: Result) -> list[Result]:
    """One fresh ok result for the probe and each check, 30 s before T0, unless overridden."""
    import random

    at = T0 - timedelta(seconds=30)
    fresh: dict[str, Result] = {"upload_get": walk(at, random.Random(1))}
    for name in CHECKS:
        fresh[name] = check(name, at, Status.OK, f"{name} fine")
    fresh.update(overrides)
    return list(fresh.values())


def html(app: Flask, path: str = "/") -> str:
    answer = app.test_client().get(path)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_data(as_text=True)


def test_the_page_shows_every_component_now(wt: Watchtower, app: Flask) -> None:
    wt.store.add(
        now_results(
            cloudfront_hit_rate=check(
                "cloudfront_hit_rate",
                T0 - timedelta(seconds=30),
                Status.WARNING,
                "hit rate 74.0% of 2,140 requests in 5 min, below 80%",
                hit_ratio=0.74,
                requests=2140,
            ),
            lambda_cold_starts=check(
                "lambda_cold_starts", T0 - timedelta(minutes=10), Status.OK, "3 cold starts"
            ),
        )
    )
    page = html(app)
    for title in TITLES:
        assert f'<span class="component-name">{title}</span>' in page
    assert '<tbody class="component state-warning" id="component-cloudfront">' in page
    assert "hit rate 74.0% of 2,140 requests in 5 min, below 80%" in page  # the reason
    assert "74.0% hit rate · 2,140 requests" in page  # the figure
    assert '<tbody class="component state-stale" id="component-lambda">' in page
    assert "stale: last result 10 min ago, expected every 1 min" in page
    assert '<tbody class="component state-ok" id="component-get_path">' in page
    assert ">30 s ago</time>" in page
    assert "<title>Stale · Image service status · Watchtower</title>" in page
    assert "2 of 7 components need attention" in page
    assert "Stale: Lambda; Warning: CloudFront" in page
    # Text and shape as well as colour: every state badge carries its glyph and its words.
    assert page.count('class="glyph"') >= 7 + 9
    assert '<span class="label">Warning</span>' in page


def test_the_page_needs_no_script_no_inline_style_and_no_external_asset(
    wt: Watchtower, app: Flask
) -> None:
    wt.store.add(now_results())
    answer = app.test_client().get("/")
    assert answer.headers["Content-Security-Policy"] == CSP
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    page = answer.get_data(as_text=True)
    assert "<script" not in page.lower()
    assert "<style" not in page.lower()
    assert not re.search(r"\sstyle\s*=", page, re.IGNORECASE)
    assert not re.search(r"\son[a-z]+\s*=", page, re.IGNORECASE)  # no event handlers either
    for url in re.findall(r'(?:src|href|action)="([^"]*)"', page):
        assert url.startswith(("/", "#")), url
    assert '<meta http-equiv="refresh" content="30">' in page
    assert '<link rel="stylesheet" href="/static/watchtower.css">' in page
    # JSON answers carry no CSP (nothing to render), but do carry nosniff.
    assert "Content-Security-Policy" not in app.test_client().get("/api/v1/status").headers


def test_the_json_says_the_same(wt: Watchtower, app: Flask) -> None:
    wt.store.add(
        now_results(
            dual_write=check(
                "dual_write",
                T0 - timedelta(minutes=5),
                Status.CRITICAL,
                "12 dual-writes attempted although dual-write is off",
                flag=0.0,
                attempts=12.0,
            )
        )
    )
    body = app.test_client().get("/api/v1/status").json
    assert body["generated_at"] == T0.isoformat()
    assert body["sandbox"] is False and body["refresh_seconds"] == 30
    assert body["overall"]["state"] == "stale"
    components = {c["id"]: c for c in body["components"]}
    assert list(components) == [
        "upload_path",
        "get_path",
        "dynamodb",
        "lambda",
        "cloudfront",
        "cache",
        "legacy",
    ]
    legacy = components["legacy"]
    assert legacy["state"] == "stale" and legacy["stale"] is True
    assert legacy["last_checked"] == (T0 - timedelta(minutes=5)).isoformat()
    dual = next(s for s in legacy["sources"] if s["name"] == "dual_write")
    assert dual["state"] == "stale" and dual["status"] == "critical"
    assert dual["figures"] == {"flag": 0.0, "attempts": 12.0}
    assert dual["interval_seconds"] == 60
    upload = components["upload_path"]
    assert upload["state"] == "ok" and upload["stale"] is False
    assert [s["name"] for s in upload["sources"]] == ["upload_get", "upload_success"]
    assert upload["figure"].startswith("upload ")
    assert set(upload["uptime"]) == {"24h", "7d", "30d", "90d"}
    assert upload["uptime"]["24h"] == 1.0
    assert len(upload["days"]) == 90 and upload["days"][-1]["date"] == "2026-11-27"
    assert upload["days"][-1]["state"] == "operational"
    assert upload["days"][0]["state"] == "no_data"
    steps = [s["step"] for s in body["latency"]["steps"]]
    assert steps == ["upload", "replay", "get", "thumbnail", "list", "delete", "get_deleted"]
    assert (
        body["latency"]["bucket_seconds"] == 3600
        and len(body["latency"]["steps"][0]["points"]) == 24
    )
    assert body["latency"]["steps"][0]["threshold_seconds"] == 0.8
    assert body["alerts"] == [] and body["executions"] == []


def test_uptime_and_days_come_from_the_history(wt: Watchtower, app: Flask) -> None:
    yesterday = datetime(2026, 11, 26, tzinfo=UTC)
    results = []
    for minute in range(24 * 60 + 12 * 60 + 29):
        at = yesterday + timedelta(minutes=minute)
        down = yesterday + timedelta(hours=10) <= at < yesterday + timedelta(hours=11)
        slow = T0 - timedelta(hours=2) <= at < T0 - timedelta(hours=2) + timedelta(minutes=3)
        results.append(
            check(
                "dynamodb_throttling",
                at,
                Status.CRITICAL if down else Status.WARNING if slow else Status.OK,
                "throttled" if down else "fine",
            )
        )
    wt.store.add(results)
    body = app.test_client().get("/api/v1/status").json
    dynamodb = next(c for c in body["components"] if c["id"] == "dynamodb")
    days = dynamodb["days"]
    assert [d["state"] for d in days[-3:]] == ["no_data", "down", "degraded"]
    assert days[-2]["down_seconds"] == 3600 and days[-2]["readings"]["critical"] == 60
    assert days[-1]["degraded_seconds"] == 180 and days[-1]["uptime"] == 1.0
    assert dynamodb["uptime"]["24h"] == 1.0  # the outage ended more than 24 h ago
    assert dynamodb["uptime"]["7d"] == pytest.approx(1 - 3600 / ((24 + 12.5) * 3600), abs=1e-3)
    page = html(app)
    assert "97.25%" in page  # 7 d: 1 - 3600 / 131,340 s = 97.259%, rounded down
    assert "2026-11-25: No data" in page and "2026-11-26: Down (critical); down about 1 h" in page


def test_an_empty_history_says_no_data_everywhere(app: Flask) -> None:
    page = html(app)
    assert page.count('<tbody class="component state-no_data"') == 7
    assert "No results yet: no probe or check has reported" in page
    assert "No probe results in the last 24 h." in page
    assert "No alerts firing." in page and "No runbook has run yet." in page
    body = app.test_client().get("/api/v1/status").json
    assert {c["state"] for c in body["components"]} == {"no_data"}
    assert all(u is None for c in body["components"] for u in c["uptime"].values())


def test_the_sandbox_says_its_telemetry_is_simulated(
    make_watchtower: Callable[..., Watchtower],
) -> None:
    assert "some telemetry here is simulated" not in html(create_app(make_watchtower()))
    sandboxed = create_app(make_watchtower(sandbox=True))
    assert "Sandbox: some telemetry here is simulated." in html(sandboxed)
    assert sandboxed.test_client().get("/api/v1/status").json["sandbox"] is True


def test_reasons_and_alert_labels_are_shown_as_text(
    wt: Watchtower, app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    attack = "<script>alert(1)</script>"
    failed = Result(
        name="upload_get",
        kind="probe",
        status=Status.CRITICAL,
        reason=f"get failed: {attack}",
        observed_at=T0 - timedelta(seconds=10),
        steps=(
            StepResult(name="upload", ok=True, seconds=0.2),
            StepResult(name="replay", ok=True, seconds=0.1),
            StepResult(name="get", ok=False, seconds=0.1, reason=attack),
        ),
    )
    wt.store.add(
        now_results(
            upload_get=failed,
            gallery_cache=check("gallery_cache", T0, Status.WARNING, f"Redis said {attack}"),
        )
    )
    alert = Alert(
        fingerprint="f1",
        status="firing",
        labels={
            "alertname": "Image<b>Down</b>",
            "severity": "critical",
            "service": '"><img src=x onerror=alert(2)>',
        },
        annotations={"summary": "<i>uploads fail</i> & more"},
        starts_at=T0 - timedelta(minutes=3),
    )
    wt.store.record_alert(alert, received_at=T0)  # as the webhook stores it
    wt.runbooks.start(
        "dynamodb-throttling", params={}, started_by="<svg onload=alert(3)>", dry_run=True
    )
    page = html(app)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Redis said &lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "get failed: &lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Image&lt;b&gt;Down&lt;/b&gt;" in page
    assert "service=&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in page
    assert "&lt;i&gt;uploads fail&lt;/i&gt; &amp; more" in page
    assert "&lt;svg onload=alert(3)&gt;" in page
    for raw in (attack, "<b>Down</b>", "<img src=x", "<i>uploads", "<svg onload"):
        assert raw not in page
    body = app.test_client().get("/api/v1/status").json
    assert body["alerts"][0]["name"] == "Image<b>Down</b>"  # JSON carries the text as it is
    assert body["executions"][0]["trigger"] == "started by <svg onload=alert(3)>"


def test_viewers_only_when_anonymous_visitors_may_not_read(
    make_watchtower: Callable[..., Watchtower],
) -> None:
    app = create_app(
        make_watchtower(anonymous_role=None, users=(("vic", "viewer", "view-secret"),))
    )
    client = app.test_client()
    page = client.get("/")
    assert page.status_code == 302 and page.headers["Location"].startswith("/login")
    assert client.get("/api/v1/status").status_code == 401
    bearer = {"Authorization": "Bearer view-secret"}
    assert client.get("/api/v1/status", headers=bearer).status_code == 200


def test_closed_days_and_hours_are_read_once(
    wt: Watchtower, app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    wt.store.add(list(synthetic_history(T0, days=3, every=600)))
    calls: list[tuple[str, Any]] = []
    for method in ("rollups", "status_counts", "history"):
        real = getattr(wt.store, method)

        def spy(*args: Any, _real: Any = real, _name: str = method, **kw: Any) -> Any:
            calls.append((_name, kw.get("since")))
            return _real(*args, **kw)

        monkeypatch.setattr(wt.store, method, spy)
    client = app.test_client()
    first = client.get("/api/v1/status").json
    assert ("rollups", date(2026, 8, 30)) in calls  # 90 days of daily rollups back, once
    assert ("status_counts", datetime(2026, 11, 26, 13, tzinfo=UTC)) in calls  # 24 h, once
    calls.clear()
    # Late news about a closed day is not read again; today's is.
    wt.store.add(
        [
            check("gallery_cache", T0 - timedelta(days=1), Status.CRITICAL, "late"),
            check("gallery_cache", T0 - timedelta(minutes=1), Status.WARNING, "now"),
        ]
    )
    second = client.get("/api/v1/status").json
    assert {since for name, since in calls if name == "rollups"} == {date(2026, 11, 27)}
    assert {since for name, since in calls if name == "status_counts"} == {
        datetime(2026, 11, 27, 12, tzinfo=UTC)
    }
    assert {since for name, since in calls if name == "history"} == {
        datetime(2026, 11, 27, 12, tzinfo=UTC)
    }

    def cache_days(body: dict[str, Any]) -> list[str]:
        return [
            d["state"]
            for d in next(c for c in body["components"] if c["id"] == "cache")["days"][-2:]
        ]

    assert cache_days(first) == ["operational", "operational"]
    assert cache_days(second) == ["operational", "degraded"]
