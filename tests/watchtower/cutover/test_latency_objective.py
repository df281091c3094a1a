"""Issue 13, item 2: the upload latency criterion judges the objective the team sets, or Watchtower
refuses to start naming the thresholds it can judge. Never a silent "0.00% over 900 ms"."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from tests.watchtower.checks.conftest import World
from tests.watchtower.cutover.conftest import Legacy, running_cutover
from tests.watchtower.cutover.evidence import samples, window
from tests.watchtower.cutover.test_evidence import FIVE, flip_before
from watchtower.config import Settings
from watchtower.cutover.config import CutoverSettings
from watchtower.cutover.judge import CriterionStatus, judge, slot_at
from watchtower.errors import ConfigError
from watchtower.runtime import from_environ


def test_an_objective_the_image_core_does_not_publish_is_refused_at_start_up() -> None:
    with pytest.raises(ConfigError) as refused:
        from_environ({"WATCHTOWER_CUTOVER_MAX_P95_MS": "900"})
    message = str(refused.value)
    assert "WATCHTOWER_CUTOVER_MAX_P95_MS=900 cannot be judged" in message
    assert "250, 500, 800, 1000 ms" in message
    with pytest.raises(ConfigError, match="850 cannot be judged"):
        CutoverSettings.from_env(
            {
                "WATCHTOWER_CUTOVER_MAX_P95_MS": "850",
                "WATCHTOWER_CUTOVER_LATENCY_THRESHOLDS_MS": "250,500,800,900,1000",
            }
        )
    with pytest.raises(ConfigError, match="distinct positive"):
        CutoverSettings.from_env({"WATCHTOWER_CUTOVER_LATENCY_THRESHOLDS_MS": "800,800"})


def test_evidence_without_the_objective_is_unknown_not_a_pass() -> None:
    """Stored evidence judged under a different objective says it cannot judge it."""
    settings = replace(CutoverSettings(), max_p95_ms=900.0)  # past the start-up check
    w = window()
    verdict = judge(w, samples(w), now=w.ends_at, settings=settings, signoffs=[])
    latency = verdict.criterion("upload_latency")
    assert latency.status is not CriterionStatus.OK
    assert "P95 <= 900 ms cannot be judged" in latency.detail
    assert "250, 500, 800, 1000 ms only" in latency.detail


def test_a_published_900_ms_objective_is_judged_at_900(
    settings: Settings, world: World, legacy: Legacy, now: datetime
) -> None:
    cutover = CutoverSettings.from_env(
        {
            "WATCHTOWER_CUTOVER_MAX_P95_MS": "900",
            "WATCHTOWER_CUTOVER_LATENCY_THRESHOLDS_MS": "250,500,800,900,1000",
            "WATCHTOWER_CUTOVER_METRICS_LAG": "0",
        }
    )
    assert cutover.max_p95_ms == 900 and 900 in cutover.latency_thresholds_ms
    world.function({"ENABLE_DYNAMODB_DUAL_WRITE": "false"})
    with running_cutover(settings, cutover=cutover) as service:
        service.open_window(flipped_by="olive", at=flip_before(now, 1), now=now, via="cli")
        inside = slot_at(now, 300) - timedelta(minutes=2)
        # 200 uploads: 8% over 800 ms (P95 over 800) but 3% over 900 ms (P95 under 900).
        world.latency(200, {250: 40, 500: 30, 800: 16, 1000: 2}, at=inside)
        world.metric(
            "LatencyOver900ms",
            at=inside,
            stats={"SampleCount": 200, "Sum": 6, "Minimum": 0.0, "Maximum": 1.0},
            Operation="upload",
            Traffic="user",
        )
        sample = service.tick(now=now)
        assert sample is not None
        assert sample.reading("upload_latency").figures["over"]["900"] == 6.0
        latency = service.verdict(now=now + FIVE).criterion("upload_latency")
        assert latency.threshold.startswith("P95 <= 900 ms")
        assert "3.00% over 900 ms" in latency.figure
        assert latency.status is CriterionStatus.OK, latency.detail


def test_a_listed_threshold_the_image_core_does_not_publish_is_unknown_not_zero(
    settings: Settings, world: World, legacy: Legacy, now: datetime
) -> None:
    """WATCHTOWER_CUTOVER_LATENCY_THRESHOLDS_MS lists 900, but the image core's
    IMAGE_LATENCY_THRESHOLDS_MS was never changed: the sample leaves 900 out (not "0 over 900")
    and the criterion says it cannot judge, although every upload was slow."""
    cutover = CutoverSettings.from_env(
        {
            "WATCHTOWER_CUTOVER_MAX_P95_MS": "900",
            "WATCHTOWER_CUTOVER_LATENCY_THRESHOLDS_MS": "250,500,800,900,1000",
            "WATCHTOWER_CUTOVER_METRICS_LAG": "0",
        }
    )
    world.function({"ENABLE_DYNAMODB_DUAL_WRITE": "false"})
    with running_cutover(settings, cutover=cutover) as service:
        service.open_window(flipped_by="olive", at=flip_before(now, 1), now=now, via="cli")
        inside = slot_at(now, 300) - timedelta(minutes=2)
        world.latency(200, {250: 200, 500: 200, 800: 200, 1000: 200}, at=inside)
        sample = service.tick(now=now)
        assert sample is not None
        over = sample.reading("upload_latency").figures["over"]
        assert "900" not in over and over["1000"] == 200.0
        latency = service.verdict(now=now + FIVE).criterion("upload_latency")
        assert latency.status is CriterionStatus.UNKNOWN, latency.detail
        assert "P95 <= 900 ms cannot be judged" in latency.detail
