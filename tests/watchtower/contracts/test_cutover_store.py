"""The cutover store's contract, run over SQLite and the real PostgreSQL (`database_url`).

Windows (one open at a time), samples (one per slot), the hash-chained audit log and frozen
reports; times written in any zone come back as the same instants in UTC, and two replicas
writing at once get what the store promises.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from functools import partial

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from tests.watchtower.contracts.concurrent import race
from watchtower.cutover.canonical import GENESIS, canonical, text_sha256, verify_chain
from watchtower.cutover.errors import NoWindow, Refused
from watchtower.cutover.model import (
    Baseline,
    CloseReason,
    LatencyCounts,
    Reading,
    Sample,
    StoredReport,
    Window,
)
from watchtower.cutover.store import CutoverStore, audit

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
EAST = timezone(timedelta(hours=5, minutes=30))
WEST = timezone(timedelta(hours=-7))


def window(wid: str = "w1", hours: float = 0, **kw: object) -> Window:
    values: dict[str, object] = {
        "id": wid,
        "opened_at": T0 + timedelta(hours=hours),
        "opened_by": "Ada Lovelace",
        "via": "cli",
        "duration_seconds": 86400,
        "interval_seconds": 300,
        "recorded_at": T0 + timedelta(hours=hours, seconds=7),
    }
    values.update(kw)
    return Window(**values)  # type: ignore[arg-type]


def baseline(**kw: object) -> Baseline:
    values: dict[str, object] = {
        "start": T0 - timedelta(days=7),
        "end": T0,
        "days": 7,
        "writes_by_hour": tuple(float(h) / 2 for h in range(24)),
        "latency": LatencyCounts(samples=1000.0, over={250: 12.0, 1000: 0.5}),
    }
    values.update(kw)
    return Baseline(**values)  # type: ignore[arg-type]


def sample(wid: str = "w1", slot: int = 1, **readings: Reading) -> Sample:
    at = T0 + timedelta(minutes=5 * slot)
    return Sample(
        window_id=wid,
        at=at,
        taken_at=at + timedelta(seconds=31, microseconds=250),
        metrics_start=at - timedelta(minutes=7),
        metrics_end=at - timedelta(minutes=2),
        readings=readings or {"flag": Reading(figures={"enabled": False})},
    )


def report(wid: str = "w1", text: str = "signed") -> StoredReport:
    document = canonical({"window": wid, "verdict": text, "names": ["Zoë", "李"]})
    return StoredReport(
        window_id=wid,
        frozen_at=T0 + timedelta(days=1),
        document=document,
        sha256=text_sha256(document),
    )


def assert_utc(*moments: datetime | None) -> None:
    for moment in moments:
        assert moment is not None and moment.utcoffset() == timedelta(0), moment


# -- windows ------------------------------------------------------------------------------------


def test_a_window_round_trips_every_field(cutover: CutoverStore) -> None:
    original = window(confirmed_by="Grace Hopper", comment="flip at noon, « ok »", via="detected")
    cutover.add_window(original)
    assert cutover.window("w1") == original
    assert cutover.windows() == [original]
    assert cutover.open_window() == original


def test_times_written_in_any_zone_come_back_as_the_same_instants_in_utc(
    cutover: CutoverStore,
) -> None:
    original = window(
        opened_at=datetime(2026, 11, 27, 17, 30, 0, 654321, EAST),
        recorded_at=datetime(2026, 11, 27, 5, 0, 1, tzinfo=WEST),
    )
    cutover.add_window(original)
    cutover.set_baseline("w1", baseline(start=(T0 - timedelta(days=7)).astimezone(EAST)))
    cutover.close(
        "w1",
        reason=CloseReason.SIGNED,
        by="b",
        at=(T0 + timedelta(hours=1)).astimezone(WEST),
        comment="",
    )
    back = cutover.window("w1")
    assert back.opened_at == T0 + timedelta(microseconds=654321)
    assert back.recorded_at == T0 + timedelta(seconds=1)
    assert back.closed_at == T0 + timedelta(hours=1)
    assert back.baseline is not None and back.baseline.start == T0 - timedelta(days=7)
    assert_utc(back.opened_at, back.recorded_at, back.closed_at, back.baseline.start)


def test_an_unknown_window_is_no_window(cutover: CutoverStore) -> None:
    with pytest.raises(NoWindow, match="'nope'"):
        cutover.window("nope")
    assert cutover.windows() == []
    assert cutover.open_window() is None


def test_one_window_is_open_at_a_time(cutover: CutoverStore) -> None:
    cutover.add_window(window("w1"))
    with pytest.raises(Refused, match=r"w1 \(opened 2026-11-27 12:00 UTC\) is still open"):
        cutover.add_window(window("w2", hours=1))
    assert [w.id for w in cutover.windows()] == ["w1"]
    cutover.close("w1", reason=CloseReason.ROLLED_BACK, by="ops", at=T0, comment="")
    cutover.add_window(window("w2", hours=1))
    assert cutover.open_window() == window("w2", hours=1)


def test_the_same_window_id_cannot_be_stored_twice(cutover: CutoverStore) -> None:
    cutover.add_window(window("w1"))
    cutover.close("w1", reason=CloseReason.ABANDONED, by="ops", at=T0, comment="")
    with pytest.raises(Refused, match="window 'w1' exists already"):
        cutover.add_window(window("w1", hours=2))
    assert cutover.window("w1").close_reason is CloseReason.ABANDONED


def test_windows_are_newest_first_by_opening_not_by_writing(cutover: CutoverStore) -> None:
    for wid, hours in (("mid", 5), ("old", -20), ("new", 30)):
        cutover.add_window(window(wid, hours=hours))
        cutover.close(wid, reason=CloseReason.ABANDONED, by="ops", at=T0, comment="")
    assert [w.id for w in cutover.windows()] == ["new", "mid", "old"]


@pytest.mark.parametrize("reason", list(CloseReason))
def test_closing_records_how_and_only_once(cutover: CutoverStore, reason: CloseReason) -> None:
    cutover.add_window(window("w1"))
    cutover.close("w1", reason=reason, by="Grace", at=T0 + timedelta(hours=3), comment="why: ✓")
    closed = cutover.window("w1")
    assert (closed.close_reason, closed.closed_by, closed.close_comment) == (
        reason,
        "Grace",
        "why: ✓",
    )
    assert closed.closed_at == T0 + timedelta(hours=3) and not closed.is_open
    assert cutover.open_window() is None
    with pytest.raises(Refused, match="'w1' is already closed"):
        cutover.close("w1", reason=CloseReason.SIGNED, by="Mallory", at=T0, comment="")
    assert cutover.window("w1") == closed


def test_closing_an_unknown_window_is_refused(cutover: CutoverStore) -> None:
    with pytest.raises(Refused):
        cutover.close("nope", reason=CloseReason.SIGNED, by="b", at=T0, comment="")


def test_the_baseline_is_set_on_its_window_only_and_can_be_replaced(cutover: CutoverStore) -> None:
    cutover.add_window(window("w1"))
    cutover.close("w1", reason=CloseReason.ABANDONED, by="ops", at=T0, comment="")
    cutover.add_window(window("w2", hours=1))
    cutover.set_baseline("w2", baseline(latency=None, error="Cost Explorer: throttled"))
    assert cutover.window("w2").baseline == baseline(latency=None, error="Cost Explorer: throttled")
    cutover.set_baseline("w2", baseline())
    assert cutover.window("w2").baseline == baseline()
    assert cutover.window("w1").baseline is None


def test_two_replicas_opening_a_window_at_once_open_one(
    cutover: CutoverStore, replica: CutoverStore
) -> None:
    for n in range(5):
        outcomes = race(
            partial(cutover.add_window, window(f"a{n}", hours=n)),
            partial(replica.add_window, window(f"b{n}", hours=n)),
        )
        assert sorted(type(o).__name__ for o in outcomes) == ["NoneType", "Refused"], outcomes
        opened = [w for w in cutover.windows() if w.is_open]
        assert len(opened) == 1
        cutover.close(opened[0].id, reason=CloseReason.ABANDONED, by="ops", at=T0, comment="")


def test_two_replicas_closing_one_window_at_once_close_it_once(
    cutover: CutoverStore, replica: CutoverStore
) -> None:
    for n in range(5):
        cutover.add_window(window(f"w{n}", hours=n))
        outcomes = race(
            partial(cutover.close, f"w{n}", reason=CloseReason.SIGNED, by="a", at=T0, comment=""),
            partial(
                replica.close, f"w{n}", reason=CloseReason.ROLLED_BACK, by="b", at=T0, comment=""
            ),
        )
        assert sorted(type(o).__name__ for o in outcomes) == ["NoneType", "Refused"], outcomes
        winner = "a" if outcomes[0] is None else "b"
        assert cutover.window(f"w{n}").closed_by == winner


# -- samples ------------------------------------------------------------------------------------


def test_samples_round_trip_oldest_first_per_window(cutover: CutoverStore) -> None:
    rich = sample(
        "w1",
        2,
        flag=Reading(figures={"enabled": False, "source": "ssm"}),
        upload_latency=Reading(figures={"samples": 12.0, "over": {"250": 1.5}, "list": [1, None]}),
        critical_alerts=Reading(error="Alertmanager: connection refused"),
    )
    for s in (rich, sample("w1", 1), sample("w2", 1), sample("w1", 3)):
        assert cutover.add_sample(s)
    assert cutover.samples("w1") == [sample("w1", 1), rich, sample("w1", 3)]
    assert cutover.samples("w2") == [sample("w2", 1)]
    assert cutover.samples("none") == []
    back = cutover.samples("w1")[1]
    assert_utc(back.at, back.taken_at, back.metrics_start, back.metrics_end)
    assert back.reading("critical_alerts").error == "Alertmanager: connection refused"


def test_a_slot_takes_one_sample_and_keeps_the_first(cutover: CutoverStore) -> None:
    first = sample("w1", 1, flag=Reading(figures={"enabled": False}))
    assert cutover.add_sample(first)
    assert not cutover.add_sample(sample("w1", 1, flag=Reading(figures={"enabled": True})))
    assert cutover.samples("w1") == [first]


def test_a_slot_is_the_same_instant_in_any_zone(cutover: CutoverStore) -> None:
    first = sample("w1", 1)
    shifted = replace(first, at=first.at.astimezone(EAST), taken_at=first.taken_at.astimezone(WEST))
    assert cutover.add_sample(shifted)
    assert cutover.samples("w1") == [first]
    assert cutover.has_sample("w1", first.at.astimezone(WEST))
    assert not cutover.add_sample(first)
    assert not cutover.has_sample("w1", first.at + timedelta(microseconds=1))
    assert not cutover.has_sample("w2", first.at)


def test_two_replicas_sampling_one_slot_store_one_sample(
    cutover: CutoverStore, replica: CutoverStore
) -> None:
    for slot in range(1, 8):
        ours = sample("w1", slot, flag=Reading(figures={"by": "a"}))
        theirs = sample("w1", slot, flag=Reading(figures={"by": "b"}))
        outcomes = race(partial(cutover.add_sample, ours), partial(replica.add_sample, theirs))
        assert sorted(outcomes) == [False, True], outcomes
        stored = cutover.samples("w1")[-1]
        assert stored == (ours if outcomes[0] else theirs)
    assert len(cutover.samples("w1")) == 7


# -- the audit log ------------------------------------------------------------------------------


def test_the_audit_log_is_a_chain_oldest_first(cutover: CutoverStore) -> None:
    first = cutover.append(at=T0, actor="Ada", action="window-opened", window_id="w1")
    second = cutover.append(
        at=(T0 + timedelta(minutes=1, microseconds=7)).astimezone(EAST),
        actor="Grace",
        action="override",
        detail={"why": "Zoë said so ✓", "nested": {"n": [1, 2.5, None]}},
    )
    third = cutover.append(
        at=T0 + timedelta(minutes=2), actor="Ada", action="signed", window_id="w1"
    )
    assert first.prev_hash == GENESIS
    assert (second.prev_hash, third.prev_hash) == (first.hash, second.hash)
    assert first.id < second.id < third.id
    entries = cutover.audit()
    assert entries == [first, second, third]
    assert verify_chain(entries) == []
    assert cutover.audit("w1") == [first, third]
    assert cutover.audit("none") == []
    assert entries[1].at == T0 + timedelta(minutes=1, microseconds=7)
    assert_utc(*(e.at for e in entries))


def test_the_audit_log_refuses_a_second_successor_of_one_entry(cutover: CutoverStore) -> None:
    head = cutover.append(at=T0, actor="Ada", action="window-opened")
    with pytest.raises(IntegrityError), cutover.engine.begin() as conn:
        conn.execute(
            audit.insert().values(
                at=T0,
                actor="Mallory",
                action="forged",
                detail={},
                prev_hash=GENESIS,
                hash=head.hash,
            )
        )
    assert cutover.audit() == [head]


def test_two_replicas_appending_at_once_keep_one_unbroken_chain(
    cutover: CutoverStore, replica: CutoverStore
) -> None:
    def appends(store: CutoverStore, actor: str) -> None:
        for i in range(12):
            store.append(
                at=T0 + timedelta(seconds=i), actor=actor, action="preflight", detail={"i": i}
            )

    assert race(partial(appends, cutover, "a"), partial(appends, replica, "b")) == [None, None]
    entries = cutover.audit()
    assert len(entries) == 24
    assert verify_chain(entries) == []
    assert sorted((e.actor, e.detail["i"]) for e in entries) == sorted(
        (actor, i) for actor in "ab" for i in range(12)
    )


# -- frozen reports -----------------------------------------------------------------------------


def test_a_report_freezes_once_and_reads_back_byte_for_byte(cutover: CutoverStore) -> None:
    frozen = report("w1")
    cutover.freeze(replace(frozen, frozen_at=frozen.frozen_at.astimezone(EAST)))
    back = cutover.report("w1")
    assert back == frozen
    assert back is not None and text_sha256(back.document) == back.sha256
    assert_utc(back.frozen_at)
    with pytest.raises(Refused, match="'w1' is frozen already"):
        cutover.freeze(report("w1", text="edited"))
    assert cutover.report("w1") == frozen
    assert cutover.report("w2") is None


def test_two_replicas_freezing_one_report_at_once_freeze_it_once(
    cutover: CutoverStore, replica: CutoverStore
) -> None:
    ours, theirs = report("w1", "a"), report("w1", "b")
    outcomes = race(partial(cutover.freeze, ours), partial(replica.freeze, theirs))
    assert sorted(type(o).__name__ for o in outcomes) == ["NoneType", "Refused"], outcomes
    assert cutover.report("w1") == (ours if outcomes[0] is None else theirs)


# -- the schema ---------------------------------------------------------------------------------


def test_two_replicas_creating_the_tables_at_once_both_start(
    engine: Engine, make_engine: Callable[[], Engine]
) -> None:
    first, second = CutoverStore(engine), CutoverStore(make_engine())
    assert race(first.create_schema, second.create_schema) == [None, None]
    first.create_schema()
    first.add_window(window())
    assert second.open_window() == window()
