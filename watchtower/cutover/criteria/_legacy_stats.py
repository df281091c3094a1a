"""Every write to the legacy table from PostgreSQL's own statistics, for `legacy_inserts`. Pure.

Each sample records `pg_stat_user_tables`' cumulative n_tup_ins, n_tup_upd and n_tup_del of
the legacy table (and the database's `stats_reset`); the window's baseline records them when it
opened. The writes in an interval are the difference between two consecutive samples. A counter
that went down means the statistics were reset in between: the interval's writes are then the
counters themselves (writes since the reset; those between the earlier sample and the reset are
lost, and the report says so). These counters see inserts, updates and deletes by any writer,
whatever the table's columns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from watchtower.cutover.criteria.base import Evidence, Slot, num
from watchtower.cutover.model import Reading, Sample

KINDS = (("ins", "insert"), ("upd", "update"), ("del", "delete"))


@dataclass(frozen=True, kw_only=True)
class WriteDelta:
    slot: Slot
    since: datetime  # the earlier reading of the counters
    until: datetime  # this sample's
    counts: Mapping[str, float]  # ins, upd, del in (since, until]
    reset: bool  # the statistics were reset in between
    reset_at: str | None
    statements: tuple[Mapping[str, Any], ...]

    @property
    def total(self) -> float:
        return sum(self.counts.values())

    def describe(self) -> str:
        parts = [
            f"{self.counts[k]:,.0f} {noun}{'' if self.counts[k] == 1 else 's'}"
            for k, noun in KINDS
            if self.counts[k]
        ]
        return ", ".join(parts) or "no writes"


def _counters(value: Any) -> Mapping[str, Any] | None:
    if isinstance(value, Mapping) and all(k in value for k, _ in KINDS):
        return value
    return None


def write_deltas(ev: Evidence, readings: list[tuple[Slot, Sample, Reading]]) -> list[WriteDelta]:
    """The writes between consecutive readings of the counters, the first from the window's."""
    baseline = ev.window.baseline
    prev = _counters(baseline.legacy_writes) if baseline else None
    prev_at = ev.window.opened_at
    out = []
    for slot, sample, r in readings:
        cur = _counters(r.figures.get("writes"))
        if cur is None:  # evidence from before the statistics were read, or a backfilled slot
            continue
        if prev is not None:
            went_down = any(num(cur[k]) < num(prev[k]) for k, _ in KINDS)
            reset = went_down or cur.get("reset") != prev.get("reset")
            counts = {k: num(cur[k]) if went_down else num(cur[k]) - num(prev[k]) for k, _ in KINDS}
            out.append(
                WriteDelta(
                    slot=slot,
                    since=prev_at,
                    until=sample.taken_at,
                    counts=counts,
                    reset=reset,
                    reset_at=cur.get("reset"),
                    statements=tuple(r.figures.get("statements") or ()),
                )
            )
        prev, prev_at = cur, sample.taken_at
    return out


def statements_text(statements: tuple[Mapping[str, Any], ...], limit: int = 3) -> str:
    """The writing statements pg_stat_statements recorded, most called first."""
    shown = [
        f"{' '.join(str(s.get('query', '')).split())[:120]} ({num(s.get('calls')):,.0f} calls"
        + (f" by {s['role']}" if s.get("role") else "")
        + ")"
        for s in statements[:limit]
    ]
    return "; ".join(shown)
