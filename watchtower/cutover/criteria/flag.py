"""flag: ENABLE_DYNAMODB_DUAL_WRITE read false in every sample (AC 3)."""

from __future__ import annotations

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


@register
class Flag(Criterion):
    name = "flag"
    title = "Dual-write flag still off"
    story = "AC 3"

    def judge(self, ev: Evidence) -> CriterionResult:
        threshold = "ENABLE_DYNAMODB_DUAL_WRITE reads false on the function in every sample"
        chart = Chart(
            unit="flag (1 = on)",
            lines=(
                ChartLine(
                    label="flag", points=self.series(ev, lambda s, r: num(r.figures.get("flag")))
                ),
            ),
            threshold=None,
        )
        finding = self.finding(threshold, chart)
        readings = self.readings(ev)
        if not readings:
            return finding.no_evidence()
        on = [(slot, sample) for slot, sample, r in readings if num(r.figures.get("flag")) >= 1]
        if on:
            first = on[0][1].taken_at
            return finding.found(
                figure=f"true in {len(on)} sample{'' if len(on) == 1 else 's'}",
                events=[Event(at=sample.taken_at, text="flag read true") for _, sample in on],
                breaches={slot.at: "the flag read true" for slot, _ in on},
            ).failed(
                f"ENABLE_DYNAMODB_DUAL_WRITE read true at {hm(first)}, "
                f"{ev.after_flip(first)} after the flip: dual-write was turned back on",
                at=first,
            )
        return finding.found(figure=f"false in all {len(readings)} samples").ok(
            f"read false in every one of {len(readings)} samples"
        )
