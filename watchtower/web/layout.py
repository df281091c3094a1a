"""The layout every page shares (templates/base.html): one header with the same navigation, one
stylesheet, one footer with the version. Its template context: the navigation, computed from the
routes this app has (incidents appears once a page serves /incidents), and the version.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import metadata
from typing import Any

from flask import Flask, current_app, has_request_context, request

# (label, path): a link shows when the app serves GET on that path.
NAVIGATION = (
    ("Status", "/"),
    ("Incidents", "/incidents"),
    ("Runbooks", "/runbooks"),
    ("Executions", "/executions"),
    ("Cutover", "/cutover"),
)


@dataclass(frozen=True)
class NavItem:
    label: str
    href: str
    current: bool


@cache
def version() -> str:
    try:
        return metadata.version("watchtower")
    except metadata.PackageNotFoundError:
        return "unknown"


def navigation(app: Flask, path: str) -> list[NavItem]:
    served = {r.rule for r in app.url_map.iter_rules() if "GET" in (r.methods or ())}
    items = []
    for label, href in NAVIGATION:
        if href not in served:
            continue
        current = path == href if href == "/" else path == href or path.startswith(href + "/")
        items.append(NavItem(label, href, current))
    return items


def _context() -> dict[str, Any]:
    path = request.path if has_request_context() else ""
    wt = current_app.extensions.get("watchtower")
    settings = getattr(wt, "settings", None)
    cutover = getattr(getattr(wt, "cutover", None), "cutover", None)
    return {
        "layout": {
            "nav": navigation(current_app, path),
            "version": version(),
            "sandbox": bool(getattr(settings, "sandbox", False)),
            "rehearsal": bool(getattr(cutover, "rehearsal", False)),
        }
    }


def init_app(app: Flask) -> None:
    app.context_processor(_context)
