"""Probe step latency per UTC hour: P50 and P95 of the steps that held. Pure."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from watchtower.figures import percentile
from watchtower.model import Result
from watchtower.status.history import HOUR, floor_hour

LATENCY_HOURS = 24


@dataclass(frozen=True, kw_only=True)
class LatencyPoint:
    start: datetime  # the hour's start
    p50: float | None
    p95: float | None
    samples: int


@dataclass(frozen=True, kw_only=True)
class StepLatency:
    probe: str
    step: str
    points: tuple[LatencyPoint, ...]
    threshold: float | None = None  # the probe's warning threshold for this step, when it has one

    @property
    def last(self) -> LatencyPoint | None:
        return next((p for p in reversed(self.points) if p.samples), None)


StepKey = tuple[str, str]  # (probe, step)


@dataclass(frozen=True, kw_only=True)
class StepSamples:
    """The seconds of every step that held, per UTC hour, and what the results said about steps."""

    seconds: dict[datetime, dict[StepKey, list[float]]]
    positions: dict[StepKey, int]  # the earliest place the step had in a walk: the chart order
    thresholds: dict[StepKey, float]  # the newest warning threshold a result gave the step

    def merge(self, newer: StepSamples) -> StepSamples:
        positions = dict(self.positions)
        for key, at in newer.positions.items():
            positions[key] = min(at, positions.get(key, at))
        return StepSamples(
            seconds={**self.seconds, **newer.seconds},
            positions=positions,
            thresholds={**self.thresholds, **newer.thresholds},
        )


def step_samples(results: Iterable[Result]) -> StepSamples:
    """Sort probe results' step times into UTC hours (oldest results first)."""
    seconds: dict[datetime, dict[StepKey, list[float]]] = defaultdict(lambda: defaultdict(list))
    positions: dict[StepKey, int] = {}
    thresholds: dict[StepKey, float] = {}
    for result in results:
        if result.kind != "probe":
            continue
        hour = seconds[floor_hour(result.observed_at)]
        for at, step in enumerate(result.steps):
            key = (result.name, step.name)
            positions[key] = min(at, positions.get(key, at))
            if step.ok:
                hour[key].append(step.seconds)
            limit = result.thresholds.get(f"warning_{step.name}_seconds")
            if limit is not None:
                thresholds[key] = limit
    return StepSamples(
        seconds={h: dict(v) for h, v in seconds.items()}, positions=positions, thresholds=thresholds
    )


def step_latency(
    samples: StepSamples, now: datetime, hours: int = LATENCY_HOURS
) -> list[StepLatency]:
    """P50 and P95 of each step's seconds per UTC hour, over the last `hours` hours.

    Only steps that held count: a failure's time is how long it took to fail (a timeout, a
    refused connection), not the step's latency; failures show in the states and the bars.
    """
    first = floor_hour(now) - (hours - 1) * HOUR
    starts = [first + n * HOUR for n in range(hours)]
    keys = {k for h in starts for k in samples.seconds.get(h, {})}
    out = []
    for key in sorted(keys, key=lambda k: (k[0], samples.positions.get(k, 99), k[1])):
        points = []
        for start in starts:
            values = samples.seconds.get(start, {}).get(key, [])
            points.append(
                LatencyPoint(
                    start=start,
                    p50=percentile(values, 0.50),
                    p95=percentile(values, 0.95),
                    samples=len(values),
                )
            )
        out.append(
            StepLatency(
                probe=key[0],
                step=key[1],
                points=tuple(points),
                threshold=samples.thresholds.get(key),
            )
        )
    return out
