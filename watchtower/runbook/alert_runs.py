"""What an alert does to runs: a firing episode starts one run, a resolution is recorded on
its runs and closes those no longer needed. The part of the `Engine` facade Alertmanager drives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from watchtower.alerting import AlertStart
from watchtower.model import Alert
from watchtower.runbook import machine, scope
from watchtower.runbook.errors import ExpressionError, ParamError
from watchtower.runbook.machine import ALERTMANAGER
from watchtower.runbook.model import (
    ANY_OWNER,
    AuditEntry,
    Episode,
    NewRun,
    Record,
    Runbook,
    episode_key,
)

if TYPE_CHECKING:
    from watchtower.runbook.engine import Engine


class AlertRuns:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def start(
        self,
        runbook_id: str,
        *,
        alert: Alert,
        mode: Literal["automatic", "suggest"],
        rerun_after: timedelta | None = None,
    ) -> str | None:
        """A run for a firing alert's episode; None when that episode already has its run.

        An episode is one runbook, one fingerprint, one `startsAt`: retries, both peers of an
        HA pair and every `repeat_interval` deliver it again, and it starts one run, whenever
        they arrive and on whichever replica. A delivery after that run ended is recorded on it
        as still firing (and reported to `on_still_firing`); with `rerun_after`, a delivery
        that long after the run ended starts one more run. A new episode (the alert resolved
        and fired again: a new `startsAt`) starts a new run.

        Labels reach the steps only as the runbook's declared parameters, typed and checked
        against their patterns; labels it does not declare are dropped. When a label does not
        match, nothing runs: the execution is recorded as failed, saying which label and why
        (raising would make Alertmanager retry the same labels forever).
        """
        plan = self._plan(runbook_id, alert=alert, mode=mode)
        if plan is None:
            return None
        runbook, episode, claim, problem = plan.runbook, plan.episode, plan.claim, plan.problem
        key = episode.key

        def create(replaces: str | None = None) -> str | None:
            said = plan.note
            if replaces is not None:
                said += f", a re-run after {rerun_after} (the episode's earlier run: {replaces})"
            record, audit = self._new_run(plan, alert, mode, note=said)
            store = self.engine.store
            if not store.create(
                record, None if problem else claim, episode=episode, replaces=replaces, audit=audit
            ):
                return None
            self.engine.worker.wake()
            return record.execution.id

        if not problem:
            # The usual case, a new episode and a free claim: one transaction, no reads first.
            # The store inserts the episode and the claim only if neither exists yet.
            started = create()
            if started is not None:
                return started
        # The episode already has its run, or another of the alert's runs holds the claim (or
        # the labels were refused): read what is there, then decide.
        replaces = None
        known = self.engine.store.episode(key)
        if known is not None:
            earlier = self.engine.store.get(known.execution_id)
            if not earlier.status.final:
                return None  # its run is still going: this delivery is the same episode's
            now = self.engine.now()
            due = earlier.finished_at is None or (
                rerun_after is not None and now - earlier.finished_at >= rerun_after
            )
            if not due:
                self.engine.store.still_firing(key, at=now)
                self.engine.on_still_firing(runbook.id, alert.fingerprint)
                return None
            replaces = earlier.id
        if self.engine.store.holder(claim) is not None:
            return None
        return create(replaces)

    def start_many(self, starts: Sequence[AlertStart]) -> list[str | Exception | None]:
        """`start` for many: the new episodes' runs whose labels fit are created together, in
        one transaction (`RunbookStore.create_many`); the rest, and any the store turned down
        (the episode has its run, the claim is held), go through `start` one by one, which
        decides as it always does. For each, its run, None, or what starting it raised."""
        out: list[str | Exception | None] = [None] * len(starts)
        batch: list[tuple[int, NewRun]] = []
        one_by_one: list[int] = []
        keys: set[str] = set()
        for n, start in enumerate(starts):
            alert = start.alert
            try:
                plan = self._plan(start.runbook, alert=alert, mode=start.mode)
            except Exception as exc:
                out[n] = exc
                continue
            if plan is None:
                continue
            if plan.problem or plan.episode.key in keys or plan.claim in keys:
                one_by_one.append(n)  # refused, or a second episode or claim in this batch
                continue
            keys.update((plan.episode.key, plan.claim))
            record, audit = self._new_run(plan, alert, start.mode, note=plan.note)
            run = NewRun(record=record, claim=plan.claim, episode=plan.episode, audit=audit)
            batch.append((n, run))
        if batch:
            try:
                won = self.engine.store.create_many([run for _, run in batch])
            except Exception:  # each is tried alone, and says its own failure
                won = [False] * len(batch)
            for (n, run), ok in zip(batch, won, strict=True):
                if ok:
                    out[n] = run.record.execution.id
                else:
                    one_by_one.append(n)
            if any(won):
                self.engine.worker.wake()
        for n in sorted(one_by_one):
            start = starts[n]
            try:
                out[n] = self.start(
                    start.runbook, alert=start.alert, mode=start.mode, rerun_after=start.rerun_after
                )
            except Exception as exc:
                out[n] = exc
        return out

    def _new_run(
        self, plan: _Plan, alert: Alert, mode: Literal["automatic", "suggest"], *, note: str
    ) -> tuple[Record, tuple[AuditEntry, ...]]:
        """The planned run, not stored yet (failed at once when its labels were refused)."""
        return self.engine.new_run(
            plan.runbook,
            params=plan.params,
            mode=mode,
            started_by=ALERTMANAGER,
            dry_run=False,
            lock_key=plan.lock_key,
            alert=alert,
            note=note,
            refused=plan.problem,
        )

    def _plan(self, runbook_id: str, *, alert: Alert, mode: str) -> _Plan | None:
        """What a firing alert's run would be; None when the alert is not firing."""
        runbook = self.engine.runbook(runbook_id)
        if alert.status != "firing":
            return None
        if mode not in ("automatic", "suggest"):
            raise ValueError(f"mode {mode!r} must be automatic or suggest")
        problem = ""
        params: dict[str, Any] = {}
        lock_key = None
        try:
            params = scope.run_params(runbook, alert.labels, self.engine.settings, from_labels=True)
            lock_key = scope.lock_key(runbook, params, self.engine.settings)
        except (ParamError, ExpressionError) as exc:
            problem = f"refused: the alert's labels do not fit this runbook: {exc}"
        episode = Episode(
            key=episode_key(runbook.id, alert.fingerprint, alert.starts_at),
            runbook_id=runbook.id,
            fingerprint=alert.fingerprint,
            starts_at=alert.starts_at,
            execution_id="",
        )
        return _Plan(
            runbook=runbook,
            episode=episode,
            claim=f"alert:{runbook.id}:{alert.fingerprint}",
            params=params,
            lock_key=lock_key,
            problem=problem,
            note=f"alert {alert.name} ({alert.fingerprint}), {mode}",
        )

    def resolved(
        self, fingerprint: str, *, at: datetime, starts_at: datetime | None = None
    ) -> None:
        """Record the resolution on the alert's open runs, and close those no longer needed.

        A run of this episode (of any episode of the fingerprint when `starts_at` is None) that
        had already ended gets the resolution recorded too: it shows when the alert cleared.
        """
        for execution_id in self.engine.store.resolved_after(
            self.engine.store.episode_runs(fingerprint=fingerprint, starts_at=starts_at), at=at
        ):
            execution = self.engine.store.get(execution_id)
            self.engine.store.audit(
                AuditEntry(
                    at=self.engine.now(),
                    execution_id=execution_id,
                    runbook_id=execution.runbook_id,
                    actor=ALERTMANAGER,
                    action="alert-resolved",
                    comment=f"{machine.resolved_at(at)}, after the run had ended",
                )
            )
        for execution_id in self.engine.store.open_ids(fingerprint=fingerprint):
            record = self.engine.store.record(execution_id)
            resolved = machine.resolved(record, at=at, now=self.engine.now())
            self.engine.ledger.apply(resolved, held_by=ANY_OWNER)
            record = self.engine.store.record(execution_id)
            if not record.execution.status.final:
                reason = machine.no_longer_needed(at)
                now = self.engine.now()
                self.engine._stop(*machine.stop(record, reason, actor=ALERTMANAGER, now=now))


@dataclass(frozen=True, kw_only=True)
class _Plan:
    """A firing alert's run, before anything is stored."""

    runbook: Runbook
    episode: Episode
    claim: str
    params: dict[str, Any]
    lock_key: str | None
    problem: str  # why its labels were refused, or ""
    note: str  # the run's note: the alert, and how it was routed
