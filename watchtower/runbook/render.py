"""Runbooks as HTML: the Markdown prose (raw HTML in it is escaped, never passed through) cut
at each step block, so a page can put a live card where each step is written."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from markdown_it import MarkdownIt
from markupsafe import Markup

from watchtower.runbook.model import Runbook, Step


@functools.cache
def markdown() -> MarkdownIt:
    # CommonMark with raw HTML off: a runbook cannot smuggle a <script> or a style into a page.
    return MarkdownIt("commonmark", {"html": False})


@dataclass(frozen=True)
class Segment:
    html: Markup | None = None  # prose
    step: Step | None = None  # or the step written here


def document(runbook: Runbook) -> list[Segment]:
    """The runbook's body as prose and step segments, in the order written."""
    md = markdown()
    env: dict[str, Any] = {}
    tokens = md.parse(runbook.body, env)
    steps = iter(runbook.steps)
    segments: list[Segment] = []
    chunk: list[Any] = []

    def flush() -> None:
        if chunk:
            html = md.renderer.render(chunk, md.options, env)
            if html.strip():
                segments.append(Segment(html=Markup(html)))  # noqa: S704 - markdown-it escaped it
            chunk.clear()

    for token in tokens:
        info = token.info.strip().split() if token.type == "fence" else []
        if token.level == 0 and info and info[0] == "step":
            flush()
            step = next(steps, None)
            if step is not None:
                segments.append(Segment(step=step))
            continue
        chunk.append(token)
    flush()
    return segments


def prose(text: str) -> Markup:
    """A short Markdown text (a manual step's instructions) as HTML."""
    return Markup(markdown().render(text))  # noqa: S704 - markdown-it escaped it
