"""The status page in a real browser: Debian's chromium, headless, against a real HTTP server.

The screenshot lands in build/status-page.png (a CI artifact). Chromium reports console messages,
CSP violations among them, on stderr with `--enable-logging=stderr`; a control page that breaks
the policy on purpose proves the harness would see one. Every page carries the one layout's
header, navigation, stylesheet and footer, as chromium builds the page.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from PIL import Image

from tests.watchtower.web.conftest import T0
from tests.watchtower.web.history import synthetic_history
from watchtower.runtime import Watchtower
from watchtower.web import CONTENT_SECURITY_POLICY
from watchtower.web.layout import version

BUILD = Path(__file__).resolve().parents[3] / "build"
# The pictures in README.md and docs/sandbox.md, taken by the sandbox tests from a real demo.
DOC_IMAGES = Path(__file__).resolve().parents[3] / "docs" / "images"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="module")
def chromium() -> str:
    if CHROMIUM is None:
        message = "chromium is not installed (scripts/install-system-packages installs it)"
        if IN_CI:
            pytest.fail(f"CI must provide it: {message}")
        pytest.skip(message)
    return CHROMIUM


class Recorder:
    """WSGI middleware: every path the browser asked for, and the status it got."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[tuple[str, int]] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        def record(status: str, headers: Any, *args: Any) -> Any:
            self.seen.append((environ["PATH_INFO"], int(status.split()[0])))
            return start_response(status, headers, *args)

        return self.app(environ, record)


def load(
    chromium: str, url: str, *, screenshot: Path, profile: Path, size: str = "1280,1600"
) -> list[str]:
    """Load `url` headless, save a screenshot; returns the console messages chromium logged."""
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    command = [
        chromium,
        "--headless",
        "--no-sandbox",  # as root, chromium refuses to start without it
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--window-size={size}",
        "--hide-scrollbars",
        f"--screenshot={screenshot}",
        "--enable-logging=stderr",
        "--v=0",
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert screenshot.is_file(), done.stderr[-2000:]
    return [line for line in done.stderr.splitlines() if ":CONSOLE" in line]


def test_the_harness_sees_a_csp_violation(
    chromium: str, serve_wsgi: Callable[[Any], str], tmp_path: Path
) -> None:
    control = Flask("control")

    @control.get("/")
    def breaks_the_policy() -> Any:
        page = '<!doctype html><title>control</title><p style="color: red">inline style</p>'
        return page, 200, {"Content-Security-Policy": CONTENT_SECURITY_POLICY}

    messages = load(
        chromium, serve_wsgi(control), screenshot=tmp_path / "control.png", profile=tmp_path / "p"
    )
    assert any("Content Security Policy" in m for m in messages), messages


def test_the_status_page_loads_cleanly_in_chromium(
    chromium: str, wt: Watchtower, app: Flask, serve_wsgi: Callable[[Any], str], tmp_path: Path
) -> None:
    wt.store.add(list(synthetic_history(T0, days=7, every=300)))
    recorder = Recorder(app)
    screenshot = BUILD / "status-page.png"
    messages = load(chromium, serve_wsgi(recorder), screenshot=screenshot, profile=tmp_path / "p")
    assert messages == []  # no console error, no CSP violation
    paths = dict(recorder.seen)
    assert paths["/"] == 200 and paths["/static/watchtower.css"] == 200
    assert all(status < 400 for _, status in recorder.seen), recorder.seen
    with Image.open(screenshot) as image:
        assert image.size == (1280, 1600)
        # The masthead is dark blue only if the stylesheet loaded and applied under the CSP.
        red, green, blue = image.convert("RGB").getpixel((4, 4))
        assert blue > red and max(red, green, blue) < 90, (red, green, blue)


@pytest.mark.parametrize(
    "path", ["/runbooks", "/runbooks/disable-dual-write", "/cutover", "/login"]
)
def test_other_pages_load_cleanly_under_the_same_policy(
    chromium: str, app: Flask, serve_wsgi: Callable[[Any], str], tmp_path: Path, path: str
) -> None:
    recorder = Recorder(app)
    name = path.strip("/").replace("/", "-")
    screenshot = BUILD / f"page-{name}.png"
    messages = load(
        chromium, serve_wsgi(recorder) + path, screenshot=screenshot, profile=tmp_path / "p"
    )
    assert messages == []  # no console error, no CSP violation
    assert dict(recorder.seen)[path] == 200
    assert all(status < 400 for _, status in recorder.seen), recorder.seen


def dom(chromium: str, url: str, *, profile: Path) -> str:
    """The page as chromium built it (headless, --dump-dom)."""
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--dump-dom",
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def header_of(page: str) -> tuple[list[tuple[str, str]], list[str], str]:
    """The shared header's navigation (href, label), the current links, and the footer's text."""
    header = re.search(r'<header class="site-header">(.*?)</header>', page, re.S)
    assert header, page[:2000]
    nav = re.search(r'<nav class="site-nav"[^>]*>(.*?)</nav>', header.group(1), re.S)
    assert nav, header.group(1)
    links = re.findall(r'<a href="([^"]+)"([^>]*)>([^<]+)</a>', nav.group(1))
    footer = re.search(r'<footer class="site-footer">(.*?)</footer>', page, re.S)
    assert footer, page[-2000:]
    return (
        [(href, label.strip()) for href, _, label in links],
        [label.strip() for _, attrs, label in links if 'aria-current="page"' in attrs],
        re.sub(r"<[^>]+>", "", footer.group(1)),
    )


LAYOUT_PAGES = {
    "/": "Status",
    "/runbooks": "Runbooks",
    "/runbooks/disable-dual-write": "Runbooks",
    "/executions": "Executions",
    "/cutover": "Cutover",
    "/login": None,
}


def test_every_page_carries_the_same_header_and_navigation(
    chromium: str, app: Flask, serve_wsgi: Callable[[Any], str], tmp_path: Path
) -> None:
    base = serve_wsgi(app)
    expected = [
        ("/", "Status"),
        ("/runbooks", "Runbooks"),
        ("/executions", "Executions"),
        ("/cutover", "Cutover"),
    ]
    if any(r.rule == "/incidents" for r in app.url_map.iter_rules()):
        expected.insert(1, ("/incidents", "Incidents"))
    for path, current in LAYOUT_PAGES.items():
        page = dom(chromium, base + path, profile=tmp_path / "p")
        links, marked, footer = header_of(page)
        assert links == expected, (path, links)
        assert marked == ([current] if current else []), (path, marked)
        assert f"Watchtower {version()}" in footer, (path, footer)
        assert page.count('<header class="site-header">') == 1, path
        assert page.count('rel="stylesheet"') == 1, path  # one stylesheet, the same everywhere
        assert "/static/watchtower.css" in page, path
        # Anonymous visitors are offered the sign-in, back to the page they were on.
        assert re.search(
            r'<p class="site-user">\s*<a href="/login\?next=[^"]*">Sign in</a>', page
        ), path


def document_screenshot(url: str, name: str, profile: Path) -> Path | None:
    """A picture for the docs (docs/images/<name>), when chromium is installed; None otherwise."""
    if CHROMIUM is None:
        if IN_CI:
            pytest.fail("CI must provide chromium for the documentation's screenshots")
        return None
    path = DOC_IMAGES / name
    messages = load(CHROMIUM, url, screenshot=path, profile=profile, size="1280,1000")
    assert messages == [], messages
    return path
