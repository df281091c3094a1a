"""The verdict, judged from explicit evidence at explicit moments across the 24 hours. Pure."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tests.watchtower.cutover.evidence import (
    FLIP,
    SETTINGS,
    healthy,
    hours,
    rolled_back,
    samples,
    window,
)
from watchtower.cutover import judge as judge_module
from watchtower.cutover.judge import CriterionStatus, State, detect_flip, judge, slots
from watchtower.cutover.model import CRITERIA, SignOff

END = FLIP + hours(24)
AFTER_END = END + timedelta(minutes=5)  # the last slot's sample has arrived


def verdict_at(now, w=None, **kw):
    w = w or window()
    signoffs = kw.pop("signoffs", ())
    return judge(w, samples(w, until=now, **kw), now=now, settings=SETTINGS, signoffs=signoffs)


def test_the_window_is_cut_into_aligned_slots_clipped_at_both_ends() -> None:
    cut = slots(window())
    assert cut[0].start == FLIP and cut[0].at.minute == 5 and cut[0].at.second == 0
    assert cut[-1].end == END and cut[-1].at >= END
    assert sum(s.seconds for s in cut) == 24 * 3600
    assert len(cut) == 289  # 288 slots, the first and last partial


def test_a_sign_off_attempted_at_hour_23_is_refused() -> None:
    verdict = verdict_at(FLIP + hours(23))
    assert verdict.state is State.COLLECTING
    assert not verdict.can_sign
    assert "ends at 2026-06-02 10:03:27 UTC" in verdict.refusal
    assert "in 1 h 00 min" in verdict.refusal
    assert all(c.status is CriterionStatus.OK for c in verdict.criteria)
    assert "hour 24 of 24" in verdict.headline


def test_a_full_healthy_window_is_ready_then_signed() -> None:
    verdict = verdict_at(AFTER_END)
    assert verdict.state is State.READY, verdict.headline
    assert verdict.can_sign and verdict.refusal is None
    assert verdict.coverage.ratio == 1.0
    assert verdict.missing_roles == SETTINGS.signers
    signed = [
        SignOff(
            window_id="w1",
            name=name,
            role=role,
            comment="",
            at=AFTER_END,
            user=name,
            evidence_hash="x",
        )
        for name, role in zip(("Ada", "Olive"), SETTINGS.signers, strict=True)
    ]
    half = verdict_at(AFTER_END, signoffs=signed[:1])
    assert half.state is State.READY and half.missing_roles == SETTINGS.signers[1:]
    full = verdict_at(AFTER_END, signoffs=signed)
    assert full.state is State.SIGNED and not full.can_sign


def test_the_last_slot_must_arrive_or_be_overdue_before_the_window_is_complete() -> None:
    w = window()
    last = slots(w)[-1]
    early = judge(w, samples(w, until=last.at - timedelta(seconds=1)), now=END, settings=SETTINGS)
    assert early.state is State.COLLECTING and not early.complete
    overdue = judge(
        w,
        samples(w, until=last.at - timedelta(seconds=1)),
        now=last.at + hours(1),
        settings=SETTINGS,
    )
    assert overdue.complete  # the missing last slot is now a gap, not pending
    assert overdue.coverage.gaps[-1].end == END


def test_a_single_legacy_insert_at_hour_20_fails_the_window_and_says_when() -> None:
    insert = FLIP + hours(20) + timedelta(minutes=4, seconds=10)

    def one_insert(at, figures):
        if at >= insert:
            figures["legacy_inserts"] = {
                "rows_since_flip": 1,
                "rows_in_slot": 1 if at - timedelta(minutes=5) < insert else 0,
                "first_insert_at": insert.isoformat(),
            }

    verdict = verdict_at(FLIP + hours(21), change=one_insert)
    assert verdict.state is State.FAILED
    legacy = verdict.criterion("legacy_inserts")
    assert legacy.status is CriterionStatus.FAILED
    assert legacy.failed_at == insert
    assert "2026-06-02 06:07:37 UTC" in legacy.detail
    assert "20 h 04 min after the flip" in legacy.detail
    assert "1 row inserted" in legacy.detail
    assert "06:07:37" in verdict.headline
    breach = [t for t in verdict.timeline if t.state == "breach"]
    assert len(breach) == 1 and "1 row inserted" in breach[0].note
    # Failed stays failed: at the end, and if the row is deleted again (the count drops to 0).
    later = verdict_at(
        AFTER_END,
        change=lambda at, f: one_insert(at, f) if at < FLIP + hours(22) else None,
    )
    assert later.state is State.FAILED and not later.can_sign
    assert later.criterion("legacy_inserts").failed_at == insert


def test_an_insert_by_a_request_in_flight_at_the_flip_is_shown_but_forgiven() -> None:
    in_flight = FLIP + timedelta(seconds=35)

    def straggler(at, figures):
        figures["legacy_inserts"] = {
            "rows_since_flip": 1,
            "rows_in_slot": 1 if at == slots(window())[0].at else 0,
            "first_insert_at": in_flight.isoformat(),
            "grace_until": (FLIP + timedelta(seconds=SETTINGS.grace_seconds)).isoformat(),
            "rows_after_grace": 0,
            "first_after_grace_at": None,
        }

    verdict = verdict_at(AFTER_END, change=straggler)
    legacy = verdict.criterion("legacy_inserts")
    assert legacy.status is CriterionStatus.OK
    assert "1 row inserted within 2 min of the flip" in legacy.detail
    assert any(e.at == in_flight for e in legacy.events)
    assert verdict.state is State.READY


def test_a_recovered_short_latency_spike_is_shown_but_does_not_fail_the_window() -> None:
    spike = (FLIP + hours(5), FLIP + hours(5) + timedelta(minutes=15))

    def slow(at, figures):
        if spike[0] < at <= spike[1]:
            figures["upload_latency"] = {
                "samples": 100.0,
                "over": {"250": 90.0, "500": 70.0, "800": 40.0, "1000": 20.0},
            }

    verdict = verdict_at(AFTER_END, change=slow)
    latency = verdict.criterion("upload_latency")
    assert latency.status is CriterionStatus.OK, latency.detail
    assert verdict.state is State.READY
    assert "1 short spike, recovered" in latency.detail
    assert any("recovered" in e.text and "15 min" in e.text for e in latency.events)
    assert sum(1 for t in verdict.timeline if t.state == "breach") == 3
    peak = max(v for _, v in latency.chart.lines[0].points if v is not None)
    assert peak > 800  # the chart shows it


def test_a_sustained_latency_breach_fails_the_window() -> None:
    def slow(at, figures):
        if FLIP + hours(5) < at <= FLIP + hours(6):
            figures["upload_latency"] = {
                "samples": 100.0,
                "over": {"250": 90.0, "500": 70.0, "800": 40.0, "1000": 20.0},
            }

    verdict = verdict_at(FLIP + hours(7), change=slow)
    latency = verdict.criterion("upload_latency")
    assert latency.status is CriterionStatus.FAILED
    assert "for 1 h 00 min" in latency.detail
    assert verdict.state is State.FAILED


def test_an_ongoing_breach_is_failing_not_yet_failed() -> None:
    def slow(at, figures):
        if at > FLIP + hours(5):
            figures["upload_latency"] = {
                "samples": 100.0,
                "over": {"250": 90.0, "500": 70.0, "800": 40.0, "1000": 20.0},
            }

    verdict = verdict_at(FLIP + hours(5) + timedelta(minutes=12), change=slow)
    assert verdict.criterion("upload_latency").status is CriterionStatus.FAILING
    assert verdict.state is State.COLLECTING


def test_latency_more_than_ten_percent_over_the_baseline_is_not_met() -> None:
    def slower(at, figures):
        # Same share over 800 ms, but the P95 estimate moves from ~667 to ~775 ms.
        figures["upload_latency"] = {
            "samples": 100.0,
            "over": {"250": 60.0, "500": 20.0, "800": 1.0, "1000": 0.0},
        }

    verdict = verdict_at(AFTER_END, change=slower)
    latency = verdict.criterion("upload_latency")
    assert latency.status is CriterionStatus.FAILED
    assert "more than 10% above the baseline" in latency.detail


def test_a_rollback_closes_the_window_as_rolled_back() -> None:
    back = FLIP + hours(7) + timedelta(minutes=12)
    w = rolled_back(back)
    verdict = judge(w, samples(w, until=back), now=FLIP + hours(30), settings=SETTINGS)
    assert verdict.state is State.ROLLED_BACK
    assert "7 h 12 min after the flip" in verdict.headline
    assert "upload errors after the flip" in verdict.headline
    assert not verdict.can_sign
    # Judged as of the rollback: nothing after it is pending or a gap.
    assert verdict.coverage.gaps == ()
    assert verdict.now == back


@pytest.mark.parametrize(
    ("missing_slots", "state"), [(2, State.READY), (3, State.INSUFFICIENT_COVERAGE)]
)
def test_a_window_under_99_percent_coverage_cannot_be_signed(missing_slots, state) -> None:
    gone = {s.at for s in slots(window())[100 : 100 + missing_slots]}
    verdict = verdict_at(AFTER_END, missing=lambda at: at in gone)
    assert verdict.state is state, verdict.headline
    assert len(verdict.coverage.gaps) == 1
    assert "no sample" in verdict.coverage.gaps[0].reason
    if state is State.INSUFFICIENT_COVERAGE:
        assert verdict.coverage.ratio < 0.99
        assert "cannot be signed" in verdict.refusal
        assert "98.96%" in verdict.refusal


def test_an_unreadable_source_is_a_gap_too() -> None:
    out = {s.at for s in slots(window())[10:14]}
    verdict = verdict_at(AFTER_END, errors={"dynamodb_writes": lambda at: at in out})
    assert verdict.state is State.INSUFFICIENT_COVERAGE
    gap = verdict.coverage.gaps[0]
    assert "dynamodb_writes: CloudWatch GetMetricData failed" in gap.reason
    assert [t.state for t in verdict.timeline].count("gap") == 4


def test_dual_writes_right_after_the_flip_are_forgiven_later_ones_fail() -> None:
    def early(at, figures):
        if at == slots(window())[0].at:
            figures["dual_write_errors"]["dual_write_attempts"] = 3.0

    assert verdict_at(AFTER_END, change=early).state is State.READY

    def late(at, figures):
        if FLIP + hours(3) < at <= FLIP + hours(3) + timedelta(minutes=5):
            figures["dual_write_errors"]["dual_write_attempts"] = 2.0

    verdict = verdict_at(FLIP + hours(4), change=late)
    errors = verdict.criterion("dual_write_errors")
    assert errors.status is CriterionStatus.FAILED
    assert "2 dual-writes attempted" in errors.detail


def test_the_flag_turned_back_on_fails_the_window() -> None:
    def on(at, figures):
        if at > FLIP + hours(2):
            figures["flag"] = {"flag": 1.0}

    verdict = verdict_at(FLIP + hours(3), change=on)
    flag = verdict.criterion("flag")
    assert flag.status is CriterionStatus.FAILED
    assert "turned back on" in flag.detail
    assert verdict.state is State.FAILED


def test_uploads_without_dynamodb_writes_fail_the_window() -> None:
    def stopped(at, figures):
        if FLIP + hours(8) < at <= FLIP + hours(9):
            figures["dynamodb_writes"] = {"write_units": 0.0, "uploads": 12.0}

    verdict = verdict_at(FLIP + hours(10), change=stopped)
    writes = verdict.criterion("dynamodb_writes")
    assert writes.status is CriterionStatus.FAILED
    assert "consumed no write capacity" in writes.detail


def test_quiet_hours_are_shown_and_too_many_fail() -> None:
    def quiet(n):
        def change(at, figures):
            if FLIP + hours(1) < at <= FLIP + hours(1 + n):
                figures["dynamodb_writes"] = {"write_units": 10.0, "uploads": 2.0}

        return change

    two = verdict_at(AFTER_END, change=quiet(2)).criterion("dynamodb_writes")
    assert two.status is CriterionStatus.OK and "quiet hours" in two.detail
    assert len(two.events) >= 2
    four = verdict_at(AFTER_END, change=quiet(4)).criterion("dynamodb_writes")
    assert four.status is CriterionStatus.FAILED


def test_upload_success_under_the_gate_is_failing_then_failed() -> None:
    def failing(at, figures):
        if FLIP + hours(2) < at <= FLIP + hours(3):
            figures["upload_success"]["server_errors"] = 5.0

    during = verdict_at(FLIP + hours(4), change=failing)
    assert during.criterion("upload_success").status is CriterionStatus.FAILING
    assert during.state is State.COLLECTING
    after = verdict_at(AFTER_END, change=failing)
    success = after.criterion("upload_success")
    assert success.status is CriterionStatus.FAILED
    assert "not above 99.9%" in success.detail


def test_a_probe_failure_counts_against_the_success_rate() -> None:
    def probe(at, figures):
        figures["upload_success"]["uploads"] = 0.0
        if at == slots(window())[50].at:
            figures["upload_success"]["probe_failures"] = 2.0

    success = verdict_at(AFTER_END, change=probe).criterion("upload_success")
    assert success.status is CriterionStatus.FAILED  # 2 of 1445 runs failed: 99.86%
    assert "2 failed" in success.figure


def test_a_critical_alert_must_be_resolved_before_sign_off() -> None:
    firing = {"name": "ImageUploadErrors", "fingerprint": "abc", "since": "2026-06-02T09:50:00Z"}

    def alert_at_end(at, figures):
        if at > END - timedelta(minutes=10):
            figures["critical_alerts"] = {"firing": [firing]}

    verdict = verdict_at(AFTER_END, change=alert_at_end)
    alerts = verdict.criterion("critical_alerts")
    assert alerts.status is CriterionStatus.FAILING
    assert verdict.state is State.NOT_MET
    assert "ImageUploadErrors" in verdict.refusal

    def resolved(at, figures):
        if FLIP + hours(3) < at <= FLIP + hours(4):
            figures["critical_alerts"] = {"firing": [firing]}

    ok = verdict_at(AFTER_END, change=resolved)
    assert ok.state is State.READY
    assert ok.criterion("critical_alerts").figure == "0 firing (1 fired and resolved)"


def test_no_baseline_leaves_the_write_rate_unknown() -> None:
    w = window(baseline=None)
    verdict = judge(w, samples(w), now=AFTER_END, settings=SETTINGS)
    assert verdict.criterion("dynamodb_writes").status is CriterionStatus.UNKNOWN
    assert verdict.state is State.NOT_MET


def test_detect_flip_finds_the_latest_on_to_off_change() -> None:
    t = [FLIP + timedelta(minutes=n) for n in range(6)]
    assert detect_flip([(t[0], 1.0), (t[1], 1.0), (t[2], None), (t[3], 0.0), (t[4], 0.0)]) == (
        t[1],
        t[3],
    )
    assert detect_flip([(t[0], 0.0), (t[1], 0.0)]) is None  # never seen on
    assert detect_flip([(t[0], 0.0), (t[1], 1.0)]) is None  # on now
    assert detect_flip([]) is None


def test_the_healthy_figures_are_what_the_helpers_say() -> None:
    assert set(healthy()) == set(judge_module.RULES)


def test_every_criterion_is_a_registered_module() -> None:
    assert list(judge_module.RULES) == sorted(CRITERIA)  # one module each, found by the registry
    for name, criterion in judge_module.RULES.items():
        assert criterion.name == name and criterion.title and criterion.story
        module = Path(judge_module.__file__).with_name("criteria") / f"{name}.py"
        assert module.is_file(), module
    verdict = judge(window(), samples(), now=FLIP + hours(25), settings=SETTINGS)
    assert [c.name for c in verdict.criteria] == list(CRITERIA)  # judged in the model's order
