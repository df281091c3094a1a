"""Uptime with its denominator: every figure says over how much observed time it was computed."""

from __future__ import annotations

import re
from datetime import timedelta

from flask import Flask

from tests.watchtower.web.conftest import T0
from tests.watchtower.web.history import check
from watchtower.model import Status
from watchtower.runtime import Watchtower


def uptime_row(page: str, title: str) -> str:
    match = re.search(rf'<th scope="row">{re.escape(title)}</th>(.*?)</tr>', page, re.S)
    assert match, title
    return match.group(1)


def cells(row: str) -> list[list[str]]:
    found = re.findall(r'<td class="num[^"]*">(.*?)</td>', row)
    return [re.sub(r"<[^>]+>", " ", c).split() for c in found]


def test_a_component_observed_3_hours_of_24_says_so(wt: Watchtower, app: Flask) -> None:
    wt.store.add(
        check("dynamodb_throttling", T0 - timedelta(minutes=m), Status.OK, "fine")
        for m in range(1, 181)
    )
    body = app.test_client().get("/api/v1/status").json
    dynamodb = next(c for c in body["components"] if c["id"] == "dynamodb")
    assert dynamodb["uptime"]["24h"] == 1.0
    assert dynamodb["uptime_observed_seconds"]["24h"] == 3 * 3600
    # T0 is 12:30: the 24 h window starts at 13:00 the day before, 23 h 30 min elapsed.
    assert dynamodb["uptime_window_seconds"]["24h"] == 23.5 * 3600
    assert dynamodb["days"][-1]["observed_seconds"] == 3 * 3600
    assert dynamodb["days"][-1]["day_seconds"] == 12.5 * 3600

    page = app.test_client().get("/").get_data(as_text=True)
    row = uptime_row(page, "DynamoDB")
    assert cells(row)[0] == ["100.00%", "of", "3", "h", "observed"]
    assert "of 3 h observed (24% of the day; the rest had no readings)" in row


def test_the_first_minute_never_shows_100_percent_for_90_days_alone(
    wt: Watchtower, app: Flask
) -> None:
    wt.store.add([check("dynamodb_throttling", T0 - timedelta(seconds=30), Status.OK, "fine")])
    page = app.test_client().get("/").get_data(as_text=True)
    figures = cells(uptime_row(page, "DynamoDB"))
    assert [" ".join(f) for f in figures] == ["100.00% of 1 min observed"] * 4
    body = app.test_client().get("/api/v1/status").json
    dynamodb = next(c for c in body["components"] if c["id"] == "dynamodb")
    assert dynamodb["uptime_observed_seconds"]["90d"] == 60
    assert dynamodb["uptime_window_seconds"]["90d"] > 89 * 86400


def test_time_without_readings_is_never_up(wt: Watchtower, app: Flask) -> None:
    # One critical hour, then 22 h of nothing, then an ok hour: 50%, of 2 h observed.
    wt.store.add(
        [
            *(
                check(
                    "dynamodb_throttling", T0 - timedelta(hours=22, minutes=m), Status.CRITICAL, "x"
                )
                for m in range(0, 60)
            ),
            *(
                check("dynamodb_throttling", T0 - timedelta(minutes=m), Status.OK, "fine")
                for m in range(1, 61)
            ),
        ]
    )
    body = app.test_client().get("/api/v1/status").json
    dynamodb = next(c for c in body["components"] if c["id"] == "dynamodb")
    assert dynamodb["uptime"]["24h"] == 0.5
    assert dynamodb["uptime_observed_seconds"]["24h"] == 2 * 3600
    page = app.test_client().get("/").get_data(as_text=True)
    assert cells(uptime_row(page, "DynamoDB"))[0] == ["50.00%", "of", "2", "h", "observed"]


def test_no_readings_shows_no_figure(app: Flask) -> None:
    page = app.test_client().get("/").get_data(as_text=True)
    assert cells(uptime_row(page, "DynamoDB"))[0] == ["—", "no", "readings"]
