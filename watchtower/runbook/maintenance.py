"""Maintenance windows that runbooks declared: each silence a run created naming a component,
read from the runs' step outputs. Pure: the status page leaves these out of uptime."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from watchtower.runbook.model import Execution


def maintenance_windows(executions: Iterable[Execution]) -> list[dict[str, Any]]:
    """Maintenance windows runbooks declared: each silence a recent run created naming a
    component (and not undone), ending early where a later step of the run expired it."""
    windows = []
    for execution in executions:
        if execution.dry_run:
            continue
        expired = {
            s.outputs.get("silence_id"): s.finished_at
            for s in execution.steps
            if s.status.value == "succeeded" and s.outputs.get("expired") is True
        }
        for step in execution.steps:
            out = step.outputs
            if step.status.value != "succeeded" or not out.get("component"):
                continue
            if not (out.get("silence_id") and out.get("starts_at") and out.get("ends_at")):
                continue
            ends = datetime.fromisoformat(out["ends_at"])
            early = expired.get(out["silence_id"])
            windows.append(
                {
                    "component": out["component"],
                    "starts_at": datetime.fromisoformat(out["starts_at"]),
                    "ends_at": min(ends, early) if early else ends,
                    "execution_id": execution.id,
                    "runbook": execution.runbook_id,
                }
            )
    return windows
