"""legacy_inserts: PostgreSQL writes stopped: no write to the legacy table after the flip (AC 4).

Two sources. PostgreSQL's statistics (`_legacy_stats`): every insert, update and delete, by any
writer, between consecutive samples, whatever the table's columns. The table's own `inserted_at`,
when it has one: the exact time of each inserted row. Writes in the first `grace_seconds`, from
requests in flight at the flip, are shown, not failing (for the statistics: writes in an interval
that began within the grace).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from watchtower import figures as fig
from watchtower.config import Settings
from watchtower.cutover.criteria._legacy_stats import KINDS, statements_text, write_deltas
from watchtower.cutover.criteria.base import (
    Chart,
    ChartLine,
    Criterion,
    CriterionResult,
    CriterionStatus,
    Event,
    Evidence,
    Finding,
    hm,
    num,
    register,
)
from watchtower.cutover.model import Reading, parse_iso


def _at(event: Event) -> datetime:
    return event.at


def _table(readings: list) -> str:
    """The legacy table the samples read (WATCHTOWER_LEGACY_TABLE), as the evidence recorded it."""
    names = [r.figures["table"] for _, _, r in readings if r.figures.get("table")]
    return str(names[-1]) if names else Settings.legacy_table


def _after_grace(r: Reading) -> float:
    f = r.figures
    return num(f["rows_after_grace"] if "rows_after_grace" in f else f.get("rows_since_flip"))


@register
class LegacyInserts(Criterion):
    name = "legacy_inserts"
    title = "PostgreSQL writes stopped"
    story = "AC 4"

    def judge(self, ev: Evidence) -> CriterionResult:
        grace = fig.duration(ev.settings.grace_seconds)
        readings = self.readings(ev)
        table = _table(readings)
        threshold = (
            f"0 inserts, updates or deletes on {table} after the flip (PostgreSQL's "
            f"statistics, and the rows' inserted_at; writes in the first {grace}, from requests "
            "in flight at the flip, are shown, not failing)"
        )
        chart = Chart(
            unit="rows since the flip",
            lines=(
                ChartLine(
                    label="rows",
                    points=self.series(ev, lambda s, r: num(r.figures.get("rows_since_flip"))),
                ),
            ),
            threshold=0.0,
        )
        finding = self.finding(threshold, chart)
        if not readings:
            return finding.no_evidence()
        stat_events, stats_failure = self._statistics(ev, readings, threshold, chart)
        if stats_failure is not None:
            rows_failure = self._rows(ev, readings, finding)
            if (
                rows_failure.status is CriterionStatus.FAILED
                and rows_failure.failed_at
                and (rows_failure.failed_at <= (stats_failure.failed_at or rows_failure.failed_at))
            ):
                # The row's own time is exact: it wins when it is the earlier.
                return replace(rows_failure, events=stats_failure.events + rows_failure.events)
            return stats_failure
        result = self._rows(ev, readings, finding)
        return replace(result, events=tuple(sorted((*result.events, *stat_events), key=_at)))

    def _rows(self, ev: Evidence, readings: list, finding: Finding) -> CriterionResult:
        """The judgement by the rows' own inserted_at (nothing to fail when the table has none)."""
        grace = fig.duration(ev.settings.grace_seconds)
        rows = max(num(r.figures.get("rows_since_flip")) for _, _, r in readings)
        after = max(_after_grace(r) for _, _, r in readings)
        breaches = {
            slot.at: fig.count(r.figures.get("rows_in_slot"), "row") + " inserted"
            for slot, _, r in readings
            if num(r.figures.get("rows_in_slot")) > 0
        }
        events = [
            Event(at=slot.end, text=breaches[slot.at])
            for slot, _, _ in readings
            if slot.at in breaches
        ]
        firsts = [
            parse_iso(r.figures["first_insert_at"])
            for _, _, r in readings
            if r.figures.get("first_insert_at")
        ]
        if firsts:
            events.append(Event(at=min(firsts), text=f"first row inserted into {_table(readings)}"))
        if after > 0:
            late = [
                parse_iso(r.figures.get("first_after_grace_at") or r.figures["first_insert_at"])
                for _, _, r in readings
                if _after_grace(r) > 0
                and (r.figures.get("first_after_grace_at") or r.figures.get("first_insert_at"))
            ]
            first = (
                min(late)
                if late
                else next(s.taken_at for _, s, r in readings if _after_grace(r) > 0)
            )
            return finding.found(
                figure=fig.count(after, "row") + " since the flip", events=events, breaches=breaches
            ).failed(
                f"{fig.count(after, 'row')} inserted into {_table(readings)} after the flip; the "
                f"first at {hm(first)}, {ev.after_flip(first)} after the flip",
                at=first,
            )
        if rows > 0:
            return finding.found(
                figure=f"0 rows since the flip ({fig.count(rows, 'row')} in the first {grace})",
                events=events,
                breaches=breaches,
            ).ok(
                f"{fig.count(rows, 'row')} inserted within {grace} of the flip, by requests in "
                "flight then; none since"
            )
        if all(r.figures.get("has_inserted_at") is False for _, _, r in readings):
            return finding.found(figure="0 writes since the flip").ok(
                f"no insert, update or delete on {_table(readings)} since the flip by PostgreSQL's "
                f"statistics, in {len(readings)} samples (the table has no inserted_at)"
            )
        return finding.found(figure="0 rows since the flip").ok(
            f"no row inserted since the flip, in {len(readings)} samples"
        )

    def _statistics(
        self, ev: Evidence, readings: list, threshold: str, chart: Chart
    ) -> tuple[list[Event], CriterionResult | None]:
        """What PostgreSQL's statistics show: their events (writes, resets), and the failure when
        writes were seen in an interval that began after the grace (at the sample that saw
        them), or None (then the rows judge, as before)."""
        grace_until = ev.window.opened_at + timedelta(seconds=ev.settings.grace_seconds)
        deltas = write_deltas(ev, readings)
        events = [
            Event(
                at=d.until,
                text=f"PostgreSQL statistics reset between {hm(d.since)[11:19]} and "
                f"{hm(d.until)[11:19]} (stats_reset {d.reset_at or 'unknown'}): writes before "
                "the reset in that interval are not counted",
            )
            for d in deltas
            if d.reset
        ]
        table = _table(readings)
        breaches = {d.slot.at: f"{d.describe()} on {table}" for d in deltas if d.total}
        events += [Event(at=d.until, text=breaches[d.slot.at]) for d in deltas if d.total]
        late = [d for d in deltas if d.total and d.since >= grace_until]
        if not late:
            return events, None
        first = late[0]
        said = ", ".join(
            f"{v:,.0f} {noun}{'' if v == 1 else 's'}"
            for k, noun in KINDS
            if (v := sum(d.counts[k] for d in late))
        )
        detail = (
            f"{said} on {table} after the flip (PostgreSQL statistics); the first "
            f"between {hm(first.since)} and {hm(first.until)}, {ev.after_flip(first.since)} "
            "after the flip: something still writes to the legacy table"
        )
        statements = statements_text(first.statements)
        if statements:
            detail += f". Writing statements (pg_stat_statements): {statements}"
        finding = self.finding(threshold, chart).found(
            figure=f"{sum(d.total for d in late):,.0f} writes after the flip "
            "(PostgreSQL statistics)",
            events=events,
            breaches=breaches,
        )
        return events, finding.failed(detail, at=first.until)
