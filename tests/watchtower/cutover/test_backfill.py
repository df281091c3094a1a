"""Issue 13, item 1: evidence that survives Watchtower's own outages. In frozen time, through the
service the scheduler runs: Watchtower stops for 30 minutes at hour 10 of a 24-hour window; when
it is back, its next tick reads the missed slots back from CloudWatch's retained datapoints, the
legacy table and the alert store, marks them backfilled, and the window is signable."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from tests.watchtower.checks.conftest import World
from tests.watchtower.cutover.conftest import Legacy, running_cutover
from tests.watchtower.cutover.evidence import samples
from tests.watchtower.cutover.evidence import window as pure_window
from watchtower.config import Settings
from watchtower.cutover.config import CutoverSettings
from watchtower.cutover.judge import State, judge, slot_at
from watchtower.cutover.markdown import window_markdown
from watchtower.cutover.model import BACKFILL
from watchtower.cutover.render import window_html

FIVE = timedelta(minutes=5)


def healthy_slot(world: World, boundary: datetime) -> None:
    """What the image service reports in the slot ending at `boundary` (as in the pure evidence)."""
    inside = boundary - timedelta(minutes=2)
    world.requests("success", 100, at=inside)
    world.latency(100, {250: 20, 500: 3, 800: 1}, at=inside)
    world.table_writes(50, at=inside)
    world.metric("Invocations", 200, namespace="AWS/Lambda", at=inside, FunctionName="image-api")


def test_a_30_minute_outage_at_hour_10_is_backfilled_and_the_window_stays_signable(
    settings: Settings, world: World, legacy: Legacy
) -> None:
    flip = slot_at(datetime.now(UTC) - timedelta(hours=25), 300) + timedelta(seconds=7)
    world.function({"ENABLE_DYNAMODB_DUAL_WRITE": "false"})
    cutover = CutoverSettings(metrics_lag_seconds=0)
    hour10 = flip - timedelta(seconds=7) + timedelta(hours=10)
    missed = [hour10 + k * FIVE for k in range(6)]  # 10:00 .. 10:25: Watchtower was down
    back = hour10 + 6 * FIVE  # 10:30, its first tick after the restart
    for boundary in [*missed, back]:
        healthy_slot(world, boundary)
    with running_cutover(settings, cutover=cutover) as service:
        w = service.open_window(flipped_by="olive", at=flip, now=flip, via="cli")
        # The baseline the pure evidence is judged against (moto holds no week before the flip).
        service.store.set_baseline(w.id, pure_window(opened_at=flip).baseline)  # type: ignore[arg-type]
        w = service.window(w.id)
        before = samples(w, until=hour10 - FIVE)
        for sample in before:
            service.store.add_sample(sample)

        sample = service.tick(now=back + timedelta(seconds=10))
        assert sample is not None and sample.at == back
        stored = {s.at: s for s in service.store.samples(w.id)}
        for at in missed:
            mark = stored[at].readings[BACKFILL]
            assert mark.figures["taken_at"].startswith(back.strftime("%Y-%m-%dT%H:%M"))
            assert "CloudWatch" in mark.figures["sources"]["upload_latency"]
            assert all(stored[at].reading(c).readable for c in mark.figures["sources"]), at
            assert stored[at].reading("upload_latency").figures["samples"] == 100.0
            assert stored[at].reading("flag").figures["flag"] == 0.0
        audit = [e for e in service.store.audit(w.id) if e.action == "slots-backfilled"]
        assert len(audit) == 1 and len(audit[0].detail["slots"]) == 6

        for sample in samples(w):
            if sample.at > back:
                service.store.add_sample(sample)
        end = w.ends_at + timedelta(minutes=2)
        verdict = service.verdict(now=end)
        assert verdict.state is State.READY, (verdict.headline, verdict.coverage.gaps)
        assert verdict.can_sign
        assert len(verdict.coverage.backfilled) == 6
        assert verdict.coverage.backfilled[0].start == hour10 - FIVE

        # Without the backfilled slots, the same window could not be signed.
        live = [s for s in service.store.samples(w.id) if BACKFILL not in s.readings]
        without = judge(w, live, now=end, settings=cutover, signoffs=[])
        assert without.state is State.INSUFFICIENT_COVERAGE

        document = service.document(now=end)
        assert len(document["coverage"]["backfilled"]) == 6
        md = window_markdown(document, sha256="x", frozen=False)
        assert "## Backfilled slots" in md and "6 slots Watchtower missed" in md
        html = window_html(document, sha256="x", frozen=False)
        assert 'id="backfilled-heading"' in html and "6 slots Watchtower missed" in html


def test_slots_older_than_the_retention_stay_missing_and_are_named(
    settings: Settings, world: World, legacy: Legacy
) -> None:
    flip = slot_at(datetime.now(UTC) - timedelta(hours=3), 300) + timedelta(seconds=7)
    world.function({"ENABLE_DYNAMODB_DUAL_WRITE": "false"})
    cutover = replace(CutoverSettings(metrics_lag_seconds=0), backfill_max_age_seconds=3600)
    with running_cutover(settings, cutover=cutover) as service:
        w = service.open_window(flipped_by="olive", at=flip, now=flip, via="cli")
        now = flip + timedelta(hours=2, seconds=3)
        assert service.tick(now=now) is not None
        stored = {s.at for s in service.store.samples(w.id)}
        # Only the last hour was read back: the older slots stay gaps, named as such.
        assert min(stored) >= now - timedelta(hours=1)
        gaps = service.verdict(now=now).coverage.gaps
        assert gaps[0].start == flip and gaps[0].reason.startswith("no sample")
