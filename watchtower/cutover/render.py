"""HTML renderings of the documents, outside Flask (the command line, exports).

The templates live with the web app's (`watchtower/web/templates/cutover/`); the partials they
share with the live page use no Flask helper, so the page and an exported file say the same.
Autoescaped; no script, no inline style.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jinja2

from watchtower import figures as fig
from watchtower.cutover import charts
from watchtower.cutover.markdown import STATE_LABELS, signed_in, when

TEMPLATES = Path(__file__).resolve().parent.parent / "web" / "templates"

STATUS_LABELS = {"ok": "OK", "failing": "Failing", "failed": "Failed", "unknown": "Unknown"}

helpers = SimpleNamespace(
    chart=charts.criterion_chart,
    timeline=charts.timeline_chart,
    legend=charts.legend,
    when=when,
    signed_in=signed_in,
    percent=fig.percent,
    duration=fig.duration,
    state_label=lambda state: STATE_LABELS.get(state, state),
    status_label=lambda status: STATUS_LABELS.get(status, status),
)


@functools.cache
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _standalone(body: str, title: str, **context: Any) -> str:
    template = environment().get_template("cutover/standalone.html")
    return template.render(body=body, title=title, stylesheet=None, h=helpers, **context)


def window_html(
    document: Mapping[str, Any],
    *,
    sha256: str,
    frozen: bool,
    verification: Mapping[str, Any] | None = None,
) -> str:
    return _standalone(
        "cutover/_window.html",
        "Cutover sign-off",
        doc=document,
        sha256=sha256,
        frozen=frozen,
        verification=verification,
    )


def preflight_html(document: Mapping[str, Any]) -> str:
    return _standalone("cutover/_preflight.html", "Dual-write monitoring report", pre=document)


def migration_html(document: Mapping[str, Any]) -> str:
    return _standalone(
        "cutover/_migration.html", "Image service migration: final report", doc=document
    )
