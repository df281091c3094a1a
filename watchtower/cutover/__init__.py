"""The 24-hour cutover sign-off (Story 6.1) and the final migration report (Story 6.5).

    pre-flight   dual-write over the last 7 days, day by day, reconciled; a gate at > 99.9%
    window       opened when ENABLE_DYNAMODB_DUAL_WRITE turns false; one evidence sample per
                 slot (5 min) for 24 h, into the cutover tables of the history store
    verdict      pure judging of the evidence at `now` (judge.py): criteria, coverage, gaps
    sign-off     named stakeholders sign a complete, covered, passing window; the report is
                 frozen as canonical JSON with its sha256, verified on every read

Modules: config, model, judge, gate, figures, canonical, document, markdown, charts (pure);
evidence, ports, store, service, migration, render, jobs, cli (edges). The composition root
(watchtower.runtime) builds the service; nothing in this package builds clients or stores.
This package imports lazily: `watchtower.cutover.judge` alone loads no database or AWS library.
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    "CutoverService": "watchtower.cutover.service",
    "schedule_cutover": "watchtower.cutover.jobs",
    "CutoverSettings": "watchtower.cutover.config",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name]), name)
