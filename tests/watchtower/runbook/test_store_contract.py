"""RunbookStore's contract, one suite over SQLite and the real PostgreSQL: executions in the
model's types, claims, leases and heartbeats (where the two differ most), conditional changes,
approvals, the audit log, and StoreUnavailable at the boundary."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from watchtower.errors import StoreUnavailable
from watchtower.runbook import machine
from watchtower.runbook.errors import ExecutionNotFound
from watchtower.runbook.model import (
    ANY_OWNER,
    OPEN_STATUSES,
    Approval,
    AuditEntry,
    Episode,
    ExecutionStatus,
    Record,
    Runbook,
    RunChange,
    Step,
    StepChange,
    StepStatus,
)
from watchtower.runbook.store import RunbookStore
from watchtower.store import engine_for

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
TABLES = "runbook_step_runs, runbook_claims, runbook_audit, runbook_executions, runbook_episodes"

RUNBOOK = Runbook(
    id="flip",
    title="Flip a variable",
    path="runbooks/flip.md",
    source="---\nid: flip\n---\n",
    body="",
    body_line=4,
    steps=(
        Step(id="read", kind="check", target="dual_write", line=5),
        Step(id="set", kind="action", target="lambda.set_environment_variable", line=9),
    ),
)


@pytest.fixture(params=["sqlite", "postgresql"])
def runs(request: Any, tmp_path: Path) -> Iterator[RunbookStore]:
    """A fresh runbook store: one contract, run over SQLite and the real PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'runbooks.sqlite'}"
    else:
        import psycopg

        server = request.getfixturevalue("postgres_server")
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {TABLES} CASCADE")
        url = server.url
    engine = engine_for(url)
    store = RunbookStore(engine)
    store.create_schema()
    yield store
    engine.dispose()


def make(
    runs: RunbookStore,
    execution_id: str = "e1",
    *,
    claim: str | None = None,
    at: datetime = T0,
    fingerprint: str | None = None,
    runbook_id: str = "flip",
) -> Record:
    record, _ = machine.created(
        execution_id=execution_id,
        runbook=RUNBOOK,
        params={"function": "image-api", "sizes": ["a", "b"], "n": 2},
        mode="manual",
        started_by="olive",
        dry_run=False,
        lock_key="lock:flip:image-api",
        now=at,
        alert_fingerprint=fingerprint,
        alert_name="FlagWrong" if fingerprint else None,
    )
    if runbook_id != "flip":
        record = replace(record, execution=replace(record.execution, runbook_id=runbook_id))
    assert runs.create(record, claim)
    return record


def race(count: int, attempt: Callable[[int], bool]) -> list[bool]:
    """Run `attempt` on `count` threads released together; their answers."""
    barrier = threading.Barrier(count)
    answers: list[bool] = [False] * count

    def one(n: int) -> None:
        barrier.wait()
        answers[n] = attempt(n)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return answers


# -- executions --------------------------------------------------------------------------------


def test_an_execution_reads_back_as_it_was_written(runs: RunbookStore) -> None:
    written = make(runs)
    read = runs.record("e1")
    assert read == written
    assert read.execution.created_at == T0 and read.execution.created_at.tzinfo is not None
    assert runs.get("e1") == written.execution
    with pytest.raises(ExecutionNotFound):
        runs.record("nope")


def test_a_claim_taken_at_creation_refuses_a_second_run(runs: RunbookStore) -> None:
    make(runs, "e1", claim="alert:flip:fp")
    record, _ = machine.created(
        execution_id="e2",
        runbook=RUNBOOK,
        params={},
        mode="suggest",
        started_by="alertmanager",
        dry_run=False,
        lock_key=None,
        now=T0,
    )
    assert not runs.create(record, "alert:flip:fp")
    with pytest.raises(ExecutionNotFound):
        runs.get("e2")  # nothing written
    assert runs.holder("alert:flip:fp") == "e1"


def test_listing_is_newest_first_and_filters(runs: RunbookStore) -> None:
    make(runs, "e1", at=T0)
    make(runs, "e2", at=T0 + timedelta(seconds=1), runbook_id="other")
    make(runs, "e3", at=T0 + timedelta(seconds=2))
    runs.apply("e3", RunChange(status=ExecutionStatus.FAILED), held_by=None)
    assert [e.id for e in runs.list()] == ["e3", "e2", "e1"]
    assert [e.id for e in runs.list(2)] == ["e3", "e2"]
    assert [e.id for e in runs.list(runbook_id="flip")] == ["e3", "e1"]
    assert [e.id for e in runs.list(statuses=OPEN_STATUSES)] == ["e2", "e1"]
    assert [len(e.steps) for e in runs.list()] == [2, 2, 2]


def test_listing_by_step_start_finds_only_runs_with_a_step_started_since(
    runs: RunbookStore,
) -> None:
    # The status page's maintenance lookup: bounded by time, not by the newest N runs.
    for n, at in enumerate((T0 - timedelta(days=3), T0 - timedelta(hours=2), None), start=1):
        make(runs, f"e{n}", at=T0 + timedelta(seconds=n))
        if at is not None:
            step = StepChange(status=StepStatus.SUCCEEDED, started_at=at, finished_at=at)
            assert runs.take(f"e{n}", owner="w", now=T0, stale_before=T0)
            assert runs.apply(f"e{n}", RunChange(), [("read", step)], held_by="w")
    since = T0 - timedelta(hours=50)
    assert [e.id for e in runs.list(step_started_since=since)] == ["e2"]
    assert [e.id for e in runs.list(step_started_since=T0 - timedelta(days=4))] == ["e2", "e1"]
    assert [len(e.steps) for e in runs.list(step_started_since=since)] == [2]


def test_an_alerts_open_runs(runs: RunbookStore) -> None:
    make(runs, "e1", fingerprint="fp", at=T0)
    make(runs, "e2", fingerprint="fp", at=T0 + timedelta(seconds=1))
    make(runs, "e3", fingerprint="other")
    runs.apply("e1", RunChange(status=ExecutionStatus.CANCELLED), held_by=None)
    assert runs.open_ids(fingerprint="fp") == ["e2"]
    assert runs.open_ids(fingerprint="none") == []


# -- leases and heartbeats ---------------------------------------------------------------------


def test_a_run_is_taken_by_one_worker_until_its_heartbeat_goes_stale(runs: RunbookStore) -> None:
    make(runs)
    assert runs.runnable(stale_before=T0, limit=10) == ["e1"]
    assert runs.take("e1", owner="w1", now=T0, stale_before=T0 - timedelta(minutes=1))
    assert runs.record("e1").owner == "w1"
    assert runs.record("e1").heartbeat_at == T0
    fresh = T0 - timedelta(minutes=1)
    assert runs.runnable(stale_before=fresh, limit=10) == []
    assert not runs.take("e1", owner="w2", now=T0, stale_before=fresh)
    later = T0 + timedelta(seconds=30)
    runs.heartbeat(owner="w1", ids=["e1"], now=later)
    runs.heartbeat(owner="w2", ids=["e1"], now=later + timedelta(hours=1))  # not w2's: ignored
    assert runs.record("e1").heartbeat_at == later
    stale = later + timedelta(seconds=1)
    assert runs.runnable(stale_before=stale, limit=10) == ["e1"]
    assert runs.take("e1", owner="w2", now=stale, stale_before=stale)
    assert runs.record("e1").owner == "w2"


def test_only_pending_and_running_runs_are_taken(runs: RunbookStore) -> None:
    for n, status in enumerate([ExecutionStatus.WAITING, ExecutionStatus.SUCCEEDED]):
        make(runs, f"e{n}")
        runs.apply(f"e{n}", RunChange(status=status), held_by=None)
        assert not runs.take(f"e{n}", owner="w1", now=T0, stale_before=T0)
    make(runs, "e9")
    runs.apply("e9", RunChange(status=ExecutionStatus.RUNNING), held_by=None)
    assert runs.runnable(stale_before=T0, limit=10) == ["e9"]


def test_a_run_waiting_for_its_lock_is_passed_over_until_the_holder_ends(
    runs: RunbookStore,
) -> None:
    make(runs, "e1")
    make(runs, "e2", at=T0 + timedelta(seconds=1))  # the same lock key, lock:flip:image-api
    make(runs, "e3", at=T0 + timedelta(seconds=2))
    assert runs.claim("lock:flip:image-api", execution_id="e1", now=T0)
    runs.apply("e1", RunChange(status=ExecutionStatus.RUNNING), held_by=None)
    # Not told yet that it waits: taken, and told (machine.begin with free=False).
    assert runs.runnable(stale_before=T0, limit=10) == ["e1", "e2", "e3"]
    told = machine.begin(runs.record("e2"), free=False, holder="e1", now=T0)
    assert runs.apply("e2", told.run, held_by=None)
    assert runs.runnable(stale_before=T0, limit=10) == ["e1", "e3"]
    # Asked to stop (a cancel, its alert resolved): taken, so that the worker ends it.
    runs.apply("e3", told.run, held_by=None)
    runs.apply("e3", RunChange(stop_reason="cancelled by ada"), held_by=None)
    assert runs.runnable(stale_before=T0, limit=10) == ["e1", "e3"]
    runs.apply("e3", RunChange(status=ExecutionStatus.CANCELLED), held_by=None)
    runs.apply("e1", RunChange(status=ExecutionStatus.SUCCEEDED), held_by=None)  # claim goes
    assert runs.runnable(stale_before=T0, limit=10) == ["e2"]
    assert runs.claim("lock:flip:image-api", execution_id="e2", now=T0)
    assert runs.runnable(stale_before=T0, limit=10) == ["e2"]  # its own claim: runnable


def test_racing_workers_take_a_run_once(runs: RunbookStore) -> None:
    make(runs)
    answers = race(
        6, lambda n: runs.take("e1", owner=f"w{n}", now=T0, stale_before=T0 - timedelta(hours=1))
    )
    assert answers.count(True) == 1
    assert runs.record("e1").owner == f"w{answers.index(True)}"


# -- changes -----------------------------------------------------------------------------------


def test_a_change_applies_only_to_a_run_held_by_the_worker_in_the_statuses_asked(
    runs: RunbookStore,
) -> None:
    make(runs)
    assert runs.take("e1", owner="w1", now=T0, stale_before=T0)
    step = StepChange(status=StepStatus.RUNNING, inputs={"x": 1}, attempts=1, started_at=T0)
    assert not runs.apply("e1", RunChange(cursor=1), [("read", step)], held_by="w2")
    assert not runs.apply(
        "e1", RunChange(cursor=1), held_by="w1", statuses=[ExecutionStatus.WAITING]
    )
    assert not runs.apply("e1", RunChange(), [("read", step)], held_by=None)
    assert runs.record("e1").cursor == 0
    assert runs.record("e1").execution.steps[0].status is StepStatus.PENDING  # nothing written
    assert runs.apply("e1", RunChange(), [("read", step)], held_by="w1")
    assert runs.apply(
        "e1",
        RunChange(status=ExecutionStatus.RUNNING, cursor=1, reason="", started_at=T0),
        held_by="w1",
        statuses=[ExecutionStatus.PENDING],
    )
    record = runs.record("e1")
    assert (record.cursor, record.owner, record.execution.status) == (
        1,
        "w1",
        ExecutionStatus.RUNNING,
    )
    read = record.execution.steps[0]
    assert (read.status, dict(read.inputs), read.attempts, read.started_at) == (
        StepStatus.RUNNING,
        {"x": 1},
        1,
        T0,
    )


def test_a_change_leaves_what_it_does_not_name_and_can_clear_owner_and_stop_reason(
    runs: RunbookStore,
) -> None:
    make(runs)
    assert runs.take("e1", owner="w1", now=T0, stale_before=T0)
    assert runs.apply("e1", RunChange(stop_reason="cancelled by ada"), held_by=ANY_OWNER)
    assert runs.apply("e1", RunChange(reason="x"), held_by="w1")
    record = runs.record("e1")
    assert (record.owner, record.stop_reason, record.execution.reason) == (
        "w1",
        "cancelled by ada",
        "x",
    )
    assert runs.apply("e1", RunChange(owner=None, stop_reason=None), held_by="w1")
    record = runs.record("e1")
    assert (record.owner, record.stop_reason) == (None, None)


def test_the_machines_transition_reads_back_as_the_machine_said(runs: RunbookStore) -> None:
    record = make(runs)
    asked = machine.ask(
        machine.applied(record, RunChange(status=ExecutionStatus.RUNNING, cursor=1)),
        RUNBOOK.steps[1],
        inputs={"name": "FLAG"},
        plan=[{"service": "lambda", "operation": "UpdateFunctionConfiguration"}],
        outputs={"post_check": {"kind": "action"}},
        now=T0,
        timeout=timedelta(hours=1),
    )
    runs.apply("e1", RunChange(status=ExecutionStatus.RUNNING, cursor=1), held_by=None)
    assert runs.apply("e1", asked.run, asked.steps, held_by=None)
    assert runs.record("e1") == asked.record
    approved = machine.approve(asked.record, by="ada", comment="ok", now=T0 + timedelta(minutes=1))
    assert runs.apply(
        "e1", approved.run, approved.steps, held_by=ANY_OWNER, statuses=approved.requires
    )
    assert runs.record("e1") == approved.record
    assert runs.get("e1").steps[1].approval == Approval(
        requested_at=T0,
        expires_at=T0 + timedelta(hours=1),
        decision="approved",
        decided_by="ada",
        decided_at=T0 + timedelta(minutes=1),
        comment="ok",
    )


def running(runs: RunbookStore, record: Record) -> Record:
    assert runs.apply("e1", RunChange(status=ExecutionStatus.RUNNING), held_by=None)
    return machine.applied(record, RunChange(status=ExecutionStatus.RUNNING))


def test_an_approver_and_a_canceller_racing_cannot_both_win(runs: RunbookStore) -> None:
    record = running(runs, make(runs))
    asked = machine.ask(
        record,
        RUNBOOK.steps[1],
        inputs={},
        plan=[],
        outputs={},
        now=T0,
        timeout=timedelta(hours=1),
    )
    assert runs.apply("e1", asked.run, asked.steps, held_by=None)
    approve = machine.approve(asked.record, by="ada", comment="", now=T0)
    reject = machine.reject(asked.record, by="bob", comment="", now=T0)
    moves = [approve, reject] * 3
    answers = race(
        len(moves),
        lambda n: runs.apply(
            "e1", moves[n].run, moves[n].steps, held_by=ANY_OWNER, statuses=moves[n].requires
        ),
    )
    assert answers.count(True) == 1
    winner = moves[answers.index(True)]
    assert runs.get("e1").status is winner.record.execution.status


def test_expired_approval_requests(runs: RunbookStore) -> None:
    record = running(runs, make(runs))
    asked = machine.ask(
        record, RUNBOOK.steps[1], inputs={}, plan=[], outputs={}, now=T0, timeout=timedelta(hours=1)
    )
    assert runs.apply("e1", asked.run, asked.steps, held_by=None)
    assert runs.expired(now=T0 + timedelta(minutes=59)) == []
    assert runs.expired(now=T0 + timedelta(hours=2)) == [("e1", "set")]
    runs.apply("e1", RunChange(status=ExecutionStatus.CANCELLED), held_by=None)
    assert runs.expired(now=T0 + timedelta(hours=2)) == []  # only while the run waits


# -- claims (locks) ----------------------------------------------------------------------------


def test_a_claim_is_held_by_one_run_until_that_run_ends(runs: RunbookStore) -> None:
    make(runs, "e1")
    make(runs, "e2")
    assert runs.holder("lock:flip:image-api") is None
    assert runs.claim("lock:flip:image-api", execution_id="e1", now=T0)
    assert runs.claim("lock:flip:image-api", execution_id="e1", now=T0)  # already its own
    assert not runs.claim("lock:flip:image-api", execution_id="e2", now=T0)
    assert runs.holder("lock:flip:image-api") == "e1"
    assert runs.apply("e1", RunChange(reason="still open"), held_by=None)
    assert runs.holder("lock:flip:image-api") == "e1"
    assert runs.apply("e1", RunChange(status=ExecutionStatus.SUCCEEDED), held_by=None)
    assert runs.holder("lock:flip:image-api") is None  # released with the final change
    assert runs.claim("lock:flip:image-api", execution_id="e2", now=T0)


def test_racing_runs_take_a_claim_once(runs: RunbookStore) -> None:
    for n in range(6):
        make(runs, f"e{n}")
    answers = race(6, lambda n: runs.claim("lock:flip:x", execution_id=f"e{n}", now=T0))
    assert answers.count(True) == 1
    assert runs.holder("lock:flip:x") == f"e{answers.index(True)}"


def test_racing_deliveries_of_one_episode_create_one_run_with_its_audit_entries(
    runs: RunbookStore,
) -> None:
    """The episode and the claim go in first, ON CONFLICT DO NOTHING: the losers write nothing
    (no run, no audit entry) and raise nothing; the winner's audit entries are in."""
    episode = Episode(
        key="flip:fp:2026-05-01T12:00:00.000000Z",
        runbook_id="flip",
        fingerprint="fp",
        starts_at=T0,
        execution_id="",
    )

    def deliver(n: int) -> bool:
        record, audit = machine.created(
            execution_id=f"d{n}",
            runbook=RUNBOOK,
            params={},
            mode="automatic",
            started_by="alertmanager",
            dry_run=False,
            lock_key=None,
            now=T0,
            alert_fingerprint="fp",
            alert_name="FlagWrong",
        )
        assert audit
        return runs.create(record, "alert:flip:fp", episode=episode, audit=audit)

    answers = race(6, deliver)
    assert answers.count(True) == 1
    winner = f"d{answers.index(True)}"
    assert [e.id for e in runs.list()] == [winner]
    assert runs.episode(episode.key) == replace(episode, execution_id=winner)
    assert {e.execution_id for e in runs.audit_entries()} == {winner}
    # The same episode again, its claim released since: still refused, by the episode alone.
    assert runs.apply(winner, RunChange(status=ExecutionStatus.SUCCEEDED), held_by=None)
    assert runs.holder("alert:flip:fp") is None
    assert not deliver(99)
    assert [e.id for e in runs.list()] == [winner]


# -- the audit log -----------------------------------------------------------------------------


def test_the_audit_log_is_appended_to_and_read_oldest_first(runs: RunbookStore) -> None:
    def entry(execution_id: str, action: str, n: int) -> AuditEntry:
        return AuditEntry(
            at=T0 + timedelta(seconds=n),
            execution_id=execution_id,
            runbook_id="flip",
            actor="olive",
            action=action,
            step_id="set" if n % 2 else None,
            comment=f"n={n}",
        )

    written = [entry("e1", "started", 0), entry("e2", "started", 1), entry("e1", "approved", 2)]
    for item in written:
        runs.audit(item)
    assert runs.audit_entries() == written
    assert runs.audit_entries("e1") == [written[0], written[2]]
    assert runs.audit_entries("e1", limit=1) == [written[0]]
    assert not [m for m in dir(runs) if m.startswith(("delete", "remove", "edit"))]


# -- the boundary ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////nonexistent-directory/runbooks.sqlite",
        "postgresql://watchtower:s3cret-password@127.0.0.1:1/runbooks",
    ],
)
def test_an_unreachable_database_is_store_unavailable_naming_no_url(url: str) -> None:
    engine = engine_for(url)
    runs = RunbookStore(engine)
    try:
        for attempt in (
            lambda: runs.get("e1"),
            lambda: runs.take("e1", owner="w1", now=T0, stale_before=T0),
            lambda: runs.apply("e1", RunChange(reason="x"), held_by=ANY_OWNER),
            lambda: runs.audit_entries(),
        ):
            with pytest.raises(StoreUnavailable) as caught:
                attempt()
            said = str(caught.value)
            assert said.startswith("runbook store: could not ")
            assert "s3cret" not in said and "127.0.0.1" not in said and "nonexistent" not in said
    finally:
        engine.dispose()
