"""The page's weight and width: 20 components x 90 bars under 35 KB gzipped, HTML and JSON
gzipped, and readable at 320 px (no horizontal scroll) in chromium, with screenshots at 320 and
1280 px in build/ (status-page-320.png, status-page-1280.png)."""

from __future__ import annotations

import gzip
import re
import subprocess
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.watchtower.web.conftest import T0
from tests.watchtower.web.history import check
from tests.watchtower.web.test_browser import BUILD, chromium  # noqa: F401 (a fixture)
from watchtower.checks.base import Check
from watchtower.model import Result, Status
from watchtower.runtime import Watchtower, feeds_for
from watchtower.web import create_app

EXTRA = 13  # with the page's seven rows: 20 components


def extra_checks() -> list[Check]:
    return [
        type(
            f"Extra{n}",
            (Check,),
            {
                "name": f"extra_{n:02d}",
                "title": f"Extra check {n}",
                "component": f"service_{n:02d}",
            },
        )()
        for n in range(EXTRA)
    ]


@pytest.fixture
def big(wt: Watchtower) -> Iterator[Watchtower]:
    wt.checks.update({c.name: c for c in extra_checks()})
    wt.store.feeds = {f.name: f for f in feeds_for(wt.settings, wt.probes, wt.checks)}
    results: list[Result] = []
    for back in range(90):
        at = T0 - timedelta(days=back, minutes=5)
        for name in wt.checks:
            status = Status.CRITICAL if (back + len(name)) % 17 == 0 else Status.OK
            if (back + len(name)) % 11 == 0:
                status = Status.WARNING
            results.append(check(name, at, status, f"{name} said {status.value}"))
    wt.store.add(results)
    yield wt


def test_20_components_by_90_bars_weigh_under_35_kb_gzipped(big: Watchtower) -> None:
    client = create_app(big).test_client()
    answer = client.get("/", headers={"Accept-Encoding": "gzip"})
    assert answer.status_code == 200
    assert answer.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in answer.headers["Vary"]
    body = answer.get_data()
    page = gzip.decompress(body).decode()
    assert len(re.findall(r'<rect class="day day-', page)) == 20 * 90 + 4  # + the legend's
    print(f"\n20 x 90 page: {len(page):,} bytes, {len(body):,} gzipped")
    assert len(body) < 35 * 1024
    as_json = client.get("/api/v1/status", headers={"Accept-Encoding": "gzip"})
    assert as_json.headers["Content-Encoding"] == "gzip"
    assert len(gzip.decompress(as_json.get_data())) > len(as_json.get_data())
    plain = client.get("/")
    assert "Content-Encoding" not in plain.headers  # only for a client that accepts it


class Harness:
    """WSGI middleware: /__width frames `/` at a given width and logs its scroll width.

    The harness page is the test's own (no CSP: its one script only measures); the status page
    in the frame is served under its policy, framing by its own origin allowed.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ["PATH_INFO"] == "/" and environ.get("QUERY_STRING") == "framed":
            # The page forbids framing (frame-ancestors 'none'); the harness, same-origin, may.
            def framed(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
                policy = [
                    (k, v.replace("frame-ancestors 'none'", "frame-ancestors 'self'"))
                    for k, v in headers
                ]
                return start_response(status, policy, *args)

            return self.app(environ, framed)
        if environ["PATH_INFO"] != "/__width":
            return self.app(environ, start_response)
        width = int(environ.get("QUERY_STRING", "w=320").split("=")[1])
        page = (
            "<!doctype html><html><body style='margin:0'>"
            f"<iframe id=f src='/?framed' style='width:{width}px;height:1500px;border:0'></iframe>"
            "<script>document.getElementById('f').onload = function () {"
            "var d = this.contentDocument.documentElement;"
            "console.log('SCROLLWIDTH ' + d.scrollWidth + ' CLIENTWIDTH ' + d.clientWidth);"
            "};</script></body></html>"
        ).encode()
        start_response(
            "200 OK", [("Content-Type", "text/html"), ("Content-Length", str(len(page)))]
        )
        return [page]


def shoot(browser: str, url: str, width: int, screenshot: Path, profile: Path) -> list[str]:
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    command = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--window-size={width},1500",
        "--hide-scrollbars",
        f"--screenshot={screenshot}",
        "--enable-logging=stderr",
        "--v=0",
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return [line for line in done.stderr.splitlines() if ":CONSOLE" in line]


@pytest.mark.parametrize("width", [320, 1280])
def test_readable_at_320_px_without_horizontal_scroll(
    chromium: str,  # noqa: F811
    big: Watchtower,
    serve_wsgi: Callable[[Any], str],
    tmp_path: Path,
    width: int,
) -> None:
    base = serve_wsgi(Harness(create_app(big)))
    shoot(chromium, base + "/", width, BUILD / f"status-page-{width}.png", tmp_path / "a")
    messages = shoot(
        chromium, f"{base}/__width?w={width}", width, tmp_path / "harness.png", tmp_path / "b"
    )
    measured = [m for m in messages if "SCROLLWIDTH" in m]
    assert measured, messages
    scroll, client = map(int, re.findall(r"SCROLLWIDTH (\d+) CLIENTWIDTH (\d+)", measured[0])[0])
    assert scroll <= client, f"horizontal scroll at {width} px: {scroll} > {client}"
    assert (BUILD / f"status-page-{width}.png").is_file()
