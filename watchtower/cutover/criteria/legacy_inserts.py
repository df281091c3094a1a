"""legacy_inserts: no row inserted into gallery_images after the flip (AC 4).

Rows in the first `grace_seconds`, from requests in flight at the flip, are shown, not failing.
"""

from __future__ import annotations

from watchtower import figures as fig
from watchtower.cutover.criteria.base import (
    Chart,
    ChartLine,
    Criterion,
    CriterionResult,
    Event,
    Evidence,
    hm,
    num,
    register,
)
from watchtower.cutover.model import Reading, parse_iso


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
        threshold = (
            f"0 rows inserted into gallery_images after the flip (rows in the first {grace}, "
            "from requests in flight at the flip, are shown, not failing)"
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
        readings = self.readings(ev)
        if not readings:
            return finding.no_evidence()
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
            events.append(Event(at=min(firsts), text="first row inserted into gallery_images"))
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
                f"{fig.count(after, 'row')} inserted into gallery_images after the flip; the "
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
        return finding.found(figure="0 rows since the flip").ok(
            f"no row inserted since the flip, in {len(readings)} samples"
        )
