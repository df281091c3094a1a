"""Executions, their steps and the claims (locks), through SQLAlchemy Core; the audit log
(runbook/audit.py) and the alert records (runbook/alert_records.py) are its mixins.

The tables (runbook/tables.py) live on `watchtower.store.metadata`, so
`HistoryStore.create_schema()` creates them with the rest, in SQLite or PostgreSQL; several
replicas share them. Every state change is one transaction led by a conditional UPDATE
(`WHERE status IN … AND owner …`): two replicas, or an approver and a canceller, racing for the
same execution cannot both win. The audit log is only ever inserted into: no method changes or
deletes an entry. It speaks in the model's types (`Record`, `RunChange`, `StepChange`,
`AuditEntry`); column dicts never leave these modules, and SQLAlchemy's errors leave them only
as `StoreUnavailable`.
"""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Table, and_, delete, exists, insert, or_, select, text, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from watchtower import tables
from watchtower.runbook.alert_records import AlertRecords, _episode
from watchtower.runbook.audit import AuditLog, audit_rows
from watchtower.runbook.errors import ExecutionNotFound
from watchtower.runbook.model import (
    ANY_OWNER,
    KEEP,
    LOCK_WAIT,
    Approval,
    AuditEntry,
    Episode,
    Execution,
    ExecutionStatus,
    NewRun,
    Owner,
    Record,
    RunChange,
    StepChange,
    StepRun,
    StepStatus,
    episode_key,
)
from watchtower.runbook.tables import (
    MIN_TIME,
    audit_log,
    claims,
    episodes,
    executions,
    step_runs,
)
from watchtower.runbook.tables import guard as _guard
from watchtower.runbook.tables import utc as _utc
from watchtower.store import metadata
from watchtower.store.schema import insert_for


class RunbookStore(AlertRecords, AuditLog):
    """Adapter over a ready SQLAlchemy engine (the caller owns it); speaks in the model's types.

    Every SQLAlchemy error is translated here into `StoreUnavailable`, naming the operation.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create_schema(self) -> None:
        tables.create_tables(self.engine, metadata, store="runbook")
        # An index added after the table existed (the status page's maintenance lookup): made
        # where missing; only a speed-up, so a replica that lost a race to create it goes on.
        with contextlib.suppress(SQLAlchemyError), self.engine.begin() as conn:
            conn.execute(
                text(
                    "CREATE INDEX IF NOT EXISTS runbook_step_runs_started"
                    " ON runbook_step_runs (started_at)"
                )
            )

    # -- executions -------------------------------------------------------------------------------

    def create(
        self,
        record: Record,
        claim: str | None,
        *,
        episode: Episode | None = None,
        replaces: str | None = None,
        audit: Iterable[AuditEntry] = (),
    ) -> bool:
        """Insert a run, its steps and its first `audit` entries in one transaction; False
        (nothing written) when `claim` is already held.

        With `episode`, the run is that alert episode's: False when the episode already has a
        run, unless `replaces` names that run (a re-run after a cool-down) and it still does.
        The episode and the claim are inserted first, each `ON CONFLICT DO NOTHING RETURNING`:
        a duplicate delivery costs one statement and a rollback, never an error.
        """
        execution = record.execution
        try:
            with _guard("create an execution"), self.engine.begin() as conn:
                if episode is not None and replaces is None:
                    row = _episode_row(episode, execution.id, execution.created_at)
                    if not _inserted(conn, episodes, row):
                        raise _Lost()
                elif episode is not None:
                    moved = conn.execute(
                        update(episodes)
                        .where(episodes.c.key == episode.key, episodes.c.execution_id == replaces)
                        .values(
                            execution_id=execution.id,
                            runs=episodes.c.runs + 1,
                            repeats=0,
                            still_firing_at=None,
                        )
                    )
                    if moved.rowcount != 1:
                        raise _Lost()
                if claim is not None and not _inserted(conn, claims, _claim_row(claim, record)):
                    raise _Lost()
                _insert_runs(conn, [(record, audit)])
        except (IntegrityError, _Lost):
            return False
        return True

    def create_many(self, runs: Sequence[NewRun]) -> builtins.list[bool]:
        """`create` for many alert episodes' first runs, in one transaction: for each, False
        (nothing of it written) when its episode already has a run or its claim is held.

        The episodes go in with one `INSERT … ON CONFLICT DO NOTHING RETURNING`, then the claims
        of those that went in likewise; an episode whose claim was held is taken out again, and
        the runs, steps and audit entries of the others are inserted. The runs' episodes and
        claims must differ from one another (the caller starts repeats one by one)."""
        if not runs:
            return []
        keys = [r.episode.key for r in runs]
        held = [r.claim for r in runs if r.claim is not None]
        if len(set(keys)) != len(keys) or len(set(held)) != len(held):
            raise ValueError("create_many: two runs of one episode or one claim")
        with _guard("create executions"), self.engine.begin() as conn:
            rows = [
                _episode_row(r.episode, r.record.execution.id, r.record.execution.created_at)
                for r in runs
            ]
            new = {row[0] for row in conn.execute(_insert_new(conn, episodes), rows)}
            claiming = [r for r in runs if r.episode.key in new and r.claim is not None]
            taken: set[str] = set()
            if claiming:
                rows = [_claim_row(r.claim, r.record) for r in claiming if r.claim is not None]
                taken = {row[0] for row in conn.execute(_insert_new(conn, claims), rows)}
            won = [r.episode.key in new and (r.claim is None or r.claim in taken) for r in runs]
            lost = [r.episode.key for r, ok in zip(runs, won, strict=True) if not ok]
            lost = [key for key in lost if key in new]
            if lost:
                conn.execute(delete(episodes).where(episodes.c.key.in_(lost)))
            chosen = [(r.record, r.audit) for r, ok in zip(runs, won, strict=True) if ok]
            if chosen:
                _insert_runs(conn, chosen)
        return won

    # -- alert episodes ---------------------------------------------------------------------------

    def resolved_after(self, execution_ids: Iterable[str], *, at: datetime) -> builtins.list[str]:
        """Record a resolution on finished runs that have none yet; the ids changed."""
        ids = builtins.list(execution_ids)
        if not ids:
            return []
        finished = [s.value for s in ExecutionStatus if s.final]
        where = (
            executions.c.id.in_(ids),
            executions.c.status.in_(finished),
            executions.c.resolved_at.is_(None),
        )
        with _guard("record a resolution"), self.engine.begin() as conn:
            changed = [r.id for r in conn.execute(select(executions.c.id).where(*where))]
            if changed:
                conn.execute(
                    update(executions)
                    .where(executions.c.id.in_(changed), executions.c.resolved_at.is_(None))
                    .values(resolved_at=at)
                )
        return changed

    def _episodes_of(self, conn: Any, ids: builtins.list[str]) -> dict[str, Episode]:
        if not ids:
            return {}
        rows = conn.execute(select(episodes).where(episodes.c.execution_id.in_(ids)))
        return {r.execution_id: _episode(r) for r in rows}

    def record(self, execution_id: str) -> Record:
        with _guard("read an execution"), self.engine.connect() as conn:
            row = conn.execute(select(executions).where(executions.c.id == execution_id)).first()
            if row is None:
                raise ExecutionNotFound(execution_id)
            steps = conn.execute(
                select(step_runs)
                .where(step_runs.c.execution_id == execution_id)
                .order_by(step_runs.c.position)
            ).all()
            episode = self._episodes_of(conn, [execution_id]).get(execution_id)
        return Record(
            execution=_execution(row, steps, episode),
            source=row.source,
            path=row.path,
            cursor=row.cursor,
            owner=row.owner,
            heartbeat_at=_utc(row.heartbeat_at),
            stop_reason=row.stop_reason,
        )

    def get(self, execution_id: str) -> Execution:
        return self.record(execution_id).execution

    def list(
        self,
        limit: int = 50,
        *,
        runbook_id: str | None = None,
        statuses: Iterable[ExecutionStatus] | None = None,
        step_started_since: datetime | None = None,
    ) -> list[Execution]:
        query = select(executions).order_by(executions.c.created_at.desc(), executions.c.id)
        if step_started_since is not None:  # bounded by time through the steps' index
            recent = select(step_runs.c.execution_id).where(
                step_runs.c.started_at >= step_started_since
            )
            query = query.where(executions.c.id.in_(recent))
        if runbook_id is not None:
            query = query.where(executions.c.runbook_id == runbook_id)
        if statuses is not None:
            query = query.where(executions.c.status.in_([s.value for s in statuses]))
        with _guard("list executions"), self.engine.connect() as conn:
            rows = conn.execute(query.limit(limit)).all()
            ids = [r.id for r in rows]
            steps: dict[str, list[Any]] = {i: [] for i in ids}
            if ids:
                for s in conn.execute(
                    select(step_runs)
                    .where(step_runs.c.execution_id.in_(ids))
                    .order_by(step_runs.c.position)
                ):
                    steps[s.execution_id].append(s)
            found = self._episodes_of(conn, ids)
        return [_execution(r, steps[r.id], found.get(r.id)) for r in rows]

    def open_ids(self, *, fingerprint: str) -> builtins.list[str]:
        query = select(executions.c.id).where(
            executions.c.alert_fingerprint == fingerprint,
            executions.c.status.in_(_OPEN),
        )
        with _guard("list an alert's open executions"), self.engine.connect() as conn:
            return [r.id for r in conn.execute(query.order_by(executions.c.created_at))]

    def runnable(self, *, stale_before: datetime, limit: int) -> builtins.list[str]:
        """Runs a worker may take: pending or running, and nobody's (or a silent worker's). A
        run told its lock is held is passed over while another run holds it, unless it is to
        stop: oldest first, such runs would fill every pass only to fail their claims again."""
        held = exists().where(
            claims.c.key == executions.c.lock_key, claims.c.execution_id != executions.c.id
        )
        blocked = and_(
            executions.c.status == ExecutionStatus.PENDING.value,
            executions.c.reason.startswith(LOCK_WAIT, autoescape=True),
            executions.c.stop_reason.is_(None),
            held,
        )
        query = (
            select(executions.c.id)
            .where(
                executions.c.status.in_(_TAKEABLE),
                or_(executions.c.owner.is_(None), executions.c.heartbeat_at < stale_before),
                ~blocked,
            )
            .order_by(executions.c.created_at)
            .limit(limit)
        )
        with _guard("list runnable executions"), self.engine.connect() as conn:
            return [r.id for r in conn.execute(query)]

    def take(self, execution_id: str, *, owner: str, now: datetime, stale_before: datetime) -> bool:
        """Become the run's worker, if it is free (or its worker stopped sending heartbeats)."""
        query = (
            update(executions)
            .where(
                executions.c.id == execution_id,
                executions.c.status.in_(_TAKEABLE),
                or_(executions.c.owner.is_(None), executions.c.heartbeat_at < stale_before),
            )
            .values(owner=owner, heartbeat_at=now)
        )
        with _guard("take an execution"), self.engine.begin() as conn:
            return conn.execute(query).rowcount == 1

    def heartbeat(self, *, owner: str, ids: Iterable[str], now: datetime) -> None:
        ids = builtins.list(ids)
        if ids:
            with _guard("send a heartbeat"), self.engine.begin() as conn:
                conn.execute(
                    update(executions)
                    .where(executions.c.id.in_(ids), executions.c.owner == owner)
                    .values(heartbeat_at=now)
                )

    def apply(
        self,
        execution_id: str,
        run: RunChange,
        steps: Iterable[tuple[str, StepChange]] = (),
        *,
        held_by: Owner,
        statuses: Iterable[ExecutionStatus] | None = None,
    ) -> bool:
        """Change a run and its steps at once, if it is (still) in one of `statuses` and held by
        `held_by`; False (nothing written) otherwise.

        When `run` makes it final, its claims are released in the same transaction.
        """
        conditions = [executions.c.id == execution_id, *_owned(held_by)]
        if statuses is not None:
            conditions.append(executions.c.status.in_([s.value for s in statuses]))
        # With nothing to change on the run itself, owner=owner: still a write, so the check
        # and the row lock are one statement (SQLite and PostgreSQL alike), never a read first.
        values = _run_values(run) or {"owner": executions.c.owner}
        with _guard("change an execution"), self.engine.begin() as conn:
            found = conn.execute(update(executions).where(*conditions).values(**values))
            if found.rowcount != 1:
                return False
            for step_id, change in steps:
                step_values = _step_values(change)
                if step_values:
                    conn.execute(
                        update(step_runs)
                        .where(
                            step_runs.c.execution_id == execution_id,
                            step_runs.c.step_id == step_id,
                        )
                        .values(**step_values)
                    )
            if run.status is not None and run.status.final:
                conn.execute(delete(claims).where(claims.c.execution_id == execution_id))
        return True

    def expired(self, *, now: datetime) -> builtins.list[tuple[str, str]]:
        """(execution, step) of every approval request past its expiry."""
        query = (
            select(step_runs.c.execution_id, step_runs.c.step_id)
            .join(executions, executions.c.id == step_runs.c.execution_id)
            .where(
                executions.c.status == ExecutionStatus.WAITING.value,
                step_runs.c.status == StepStatus.WAITING.value,
                step_runs.c.expires_at < now,
            )
        )
        with _guard("list expired approvals"), self.engine.connect() as conn:
            return [(r.execution_id, r.step_id) for r in conn.execute(query)]

    # -- claims (locks) ---------------------------------------------------------------------------

    def claim(self, key: str, *, execution_id: str, now: datetime) -> bool:
        """Take `key` for this run; True also when the run already holds it."""
        try:
            with _guard("take a claim"), self.engine.begin() as conn:
                conn.execute(
                    insert(claims).values(key=key, execution_id=execution_id, created_at=now)
                )
        except IntegrityError:
            return self.holder(key) == execution_id
        return True

    def holder(self, key: str) -> str | None:
        with _guard("read a claim"), self.engine.connect() as conn:
            row = conn.execute(select(claims.c.execution_id).where(claims.c.key == key)).first()
        return row.execution_id if row is not None else None


class _Lost(Exception):
    """The episode already has its run (or another replica started its re-run first), or the
    claim is held: the transaction rolls back."""


def _insert_runs(conn: Any, runs: Sequence[tuple[Record, Iterable[AuditEntry]]]) -> None:
    """New runs, their steps and their first audit entries, in the caller's transaction:
    executemany (psycopg pipelines it), not a multi-row VALUES, whose compilation SQLAlchemy
    does not cache (that costs more than the round trips)."""
    conn.execute(insert(executions), [_execution_row(record) for record, _ in runs])
    steps = [_step_row(r.execution.id, s) for r, _ in runs for s in r.execution.steps]
    if steps:
        conn.execute(insert(step_runs), steps)
    entries = audit_rows(e for _, audit in runs for e in audit)
    if entries:
        conn.execute(insert(audit_log), entries)


def _claim_row(claim: str, record: Record) -> dict[str, Any]:
    return {
        "key": claim,
        "execution_id": record.execution.id,
        "created_at": record.execution.created_at,
    }


def _inserted(conn: Any, table: Table, row: dict[str, Any]) -> bool:
    """INSERT … ON CONFLICT DO NOTHING RETURNING the key: whether the row went in."""
    # The row as parameters, not .values(): the statement is built once and compiled once.
    return conn.execute(_insert_new(conn, table), row).first() is not None


def _insert_new(conn: Any, table: Table) -> Any:
    """INSERT … ON CONFLICT DO NOTHING RETURNING the key, built once per dialect and table."""
    found = _INSERT_NEW.get((conn.dialect.name, table.name))
    if found is None:
        key = table.primary_key.columns.values()[0]
        found = insert_for(conn.engine, table).on_conflict_do_nothing().returning(key)
        _INSERT_NEW[(conn.dialect.name, table.name)] = found
    return found


_INSERT_NEW: dict[tuple[str, str], Any] = {}


def _episode_row(episode: Episode, execution_id: str, at: datetime) -> dict[str, Any]:
    return {
        "key": episode.key,
        "runbook_id": episode.runbook_id,
        "fingerprint": episode.fingerprint,
        "starts_at": episode.starts_at,
        "execution_id": execution_id,
        "runs": 1,
        "repeats": 0,
        "created_at": at,
    }


_OPEN = [
    s.value for s in (ExecutionStatus.PENDING, ExecutionStatus.RUNNING, ExecutionStatus.WAITING)
]
_TAKEABLE = [ExecutionStatus.PENDING.value, ExecutionStatus.RUNNING.value]


def _execution_row(record: Record) -> dict[str, Any]:
    execution = record.execution
    return {
        "id": execution.id,
        "runbook_id": execution.runbook_id,
        "title": execution.title,
        "status": execution.status.value,
        "mode": execution.mode,
        "dry_run": execution.dry_run,
        "params": dict(execution.params),
        "started_by": execution.started_by,
        "alert_fingerprint": execution.alert_fingerprint,
        "alert_name": execution.alert_name,
        "source": record.source,
        "path": record.path,
        "lock_key": execution.lock_key,
        "reason": execution.reason,
        "cursor": record.cursor,
        "owner": record.owner,
        "heartbeat_at": record.heartbeat_at,
        "stop_reason": record.stop_reason,
        "created_at": execution.created_at,
        "started_at": execution.started_at,
        "finished_at": execution.finished_at,
        "resolved_at": execution.resolved_at,
    }


def _step_row(execution_id: str, step: StepRun) -> dict[str, Any]:
    approval = step.approval
    return {
        "execution_id": execution_id,
        "step_id": step.step_id,
        "position": step.position,
        "kind": step.kind,
        "title": step.title,
        "status": step.status.value,
        "inputs": dict(step.inputs),
        "outputs": dict(step.outputs),
        "plan": [dict(c) for c in step.plan],
        "error": step.error,
        "attempts": step.attempts,
        "started_at": step.started_at,
        "finished_at": step.finished_at,
        "requested_at": approval.requested_at if approval else None,
        "expires_at": approval.expires_at if approval else None,
        "decision": approval.decision if approval else None,
        "decided_by": approval.decided_by if approval else None,
        "decided_at": approval.decided_at if approval else None,
        "comment": approval.comment if approval else "",
    }


def _run_values(change: RunChange) -> dict[str, Any]:
    values: dict[str, Any] = {
        "status": change.status.value if change.status is not None else None,
        "reason": change.reason,
        "cursor": change.cursor,
        "started_at": change.started_at,
        "finished_at": change.finished_at,
        "resolved_at": change.resolved_at,
    }
    out = {k: v for k, v in values.items() if v is not None}
    if change.owner is not KEEP:
        out["owner"] = change.owner
    if change.stop_reason is not KEEP:
        out["stop_reason"] = change.stop_reason
    return out


def _step_values(change: StepChange) -> dict[str, Any]:
    values: dict[str, Any] = {
        "status": change.status.value if change.status is not None else None,
        "inputs": dict(change.inputs) if change.inputs is not None else None,
        "outputs": dict(change.outputs) if change.outputs is not None else None,
        "plan": [dict(c) for c in change.plan] if change.plan is not None else None,
        "error": change.error,
        "attempts": change.attempts,
        "started_at": change.started_at,
        "finished_at": change.finished_at,
        "requested_at": change.requested_at,
        "expires_at": change.expires_at,
        "decision": change.decision,
        "decided_by": change.decided_by,
        "decided_at": change.decided_at,
        "comment": change.comment,
    }
    return {k: v for k, v in values.items() if v is not None}


def _owned(owner: Owner) -> builtins.list[Any]:
    if owner is ANY_OWNER:
        return []
    if owner is None:
        return [executions.c.owner.is_(None)]
    return [executions.c.owner == owner]


def _execution(row: Any, steps: Iterable[Any], episode: Episode | None = None) -> Execution:
    return Execution(
        id=row.id,
        runbook_id=row.runbook_id,
        title=row.title,
        status=ExecutionStatus(row.status),
        mode=row.mode,
        dry_run=row.dry_run,
        params=dict(row.params),
        started_by=row.started_by,
        created_at=_utc(row.created_at) or MIN_TIME,
        reason=row.reason or "",
        alert_fingerprint=row.alert_fingerprint,
        alert_name=row.alert_name,
        lock_key=row.lock_key,
        started_at=_utc(row.started_at),
        finished_at=_utc(row.finished_at),
        resolved_at=_utc(row.resolved_at),
        still_firing_at=episode.still_firing_at if episode else None,
        repeats=episode.repeats if episode else 0,
        steps=tuple(_step(s) for s in steps),
    )


def _step(row: Any) -> StepRun:
    approval = None
    if row.requested_at is not None:
        approval = Approval(
            requested_at=_utc(row.requested_at) or MIN_TIME,
            expires_at=_utc(row.expires_at) or MIN_TIME,
            decision=row.decision,
            decided_by=row.decided_by,
            decided_at=_utc(row.decided_at),
            comment=row.comment or "",
        )
    return StepRun(
        step_id=row.step_id,
        position=row.position,
        kind=row.kind,
        title=row.title,
        status=StepStatus(row.status),
        inputs=dict(row.inputs or {}),
        outputs=dict(row.outputs or {}),
        plan=tuple(row.plan or ()),
        error=row.error or "",
        attempts=row.attempts or 0,
        started_at=_utc(row.started_at),
        finished_at=_utc(row.finished_at),
        approval=approval,
    )


__all__ = ["ANY_OWNER", "Episode", "Record", "RunbookStore", "episode_key"]
