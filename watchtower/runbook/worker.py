"""The runbook worker: a dispatcher thread hands runnable runs to a pool, each held by a lease.

A worker takes a run (`RunbookStore.take`) when nobody holds it or its holder stopped sending
heartbeats; while it advances the run, a heartbeat thread tells the others it is alive. Each
move of the run is a `Transition` of the state machine (`watchtower.runbook.machine`), written
by the `Ledger` only while this worker still holds the run: a worker that lost its run (taken
over after a pause longer than the lease) writes nothing more.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from watchtower.runbook import machine
from watchtower.runbook.errors import Refused, RunbookError
from watchtower.runbook.machine import Outcome, Transition
from watchtower.runbook.model import ANY_OWNER, ExecutionStatus, Owner, Record, Runbook
from watchtower.runbook.parser import parse_source
from watchtower.runbook.steps import StepRunner, said

if TYPE_CHECKING:
    from watchtower.runbook.parser import Catalog
    from watchtower.runbook.store import RunbookStore

log = logging.getLogger(__name__)


def lower_priority(by: int) -> None:
    """Set this thread's nice value `by` above the process's (its main thread's). On Linux
    nice is per thread, and the threads it starts (a run's heartbeat, a step's timeout thread)
    inherit it; without privileges it cannot be raised back, so it lasts as long as the thread."""
    if by <= 0 or sys.platform != "linux":
        return
    thread = threading.get_native_id()
    try:
        wanted = min(19, os.getpriority(os.PRIO_PROCESS, os.getpid()) + by)
        if os.getpriority(os.PRIO_PROCESS, thread) < wanted:
            os.setpriority(os.PRIO_PROCESS, thread, wanted)
    except OSError as exc:  # a sandbox that forbids it: run at the process's priority
        log.warning("could not lower the runbook worker's priority: %s", exc)


class LostOwnership(Exception):
    """Another worker took this run over (ours stopped sending heartbeats): stop touching it."""


class Ledger:
    """Writes the state machine's transitions: the state in one transaction, then the audit."""

    def __init__(self, store: RunbookStore) -> None:
        self.store = store

    def apply(self, transition: Transition, *, held_by: Owner) -> bool:
        """Whether the change applied (the run was in the statuses it requires, held by
        `held_by`). The audit entries are written when it did, or when the change is not strict."""
        done = True
        if transition.writes:
            done = self.store.apply(
                transition.record.execution.id,
                transition.run,
                transition.steps,
                held_by=held_by,
                statuses=transition.requires,
            )
        if done or not transition.strict:
            for entry in transition.audit:
                self.store.audit(entry)
        return done

    def expire(self, execution_id: str, step_id: str, *, now: datetime) -> bool:
        record = self.store.record(execution_id)
        try:
            transition = machine.expire(record, step_id, now=now)
        except Refused:  # decided or cancelled since it was listed
            return False
        return self.apply(transition, held_by=ANY_OWNER)


class Worker:
    def __init__(
        self,
        *,
        store: RunbookStore,
        steps: StepRunner,
        catalog: Catalog,
        clock: Callable[[], datetime],
        lease: timedelta,
        workers: int,
        poll_seconds: float,
        nice: int = 0,
        worker_id: str,
        stopping: threading.Event,
    ) -> None:
        self.store = store
        self.ledger = Ledger(store)
        self.steps = steps
        self.catalog = catalog
        self.clock = clock
        self.lease = lease
        self.workers = workers
        self.nice = nice
        self.poll_seconds = poll_seconds
        self.worker_id = worker_id
        self._stopping = stopping
        # Parsed snapshots by (path, text): runs of one runbook version share one parse.
        self._snapshots: dict[tuple[str, str], Runbook] = {}
        self._busy: set[str] = set()
        self._busy_lock = threading.Lock()
        self._wake = threading.Event()
        self._dispatcher: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None

    def wake(self) -> None:
        self._wake.set()

    # -- the pool ---------------------------------------------------------------------------------

    def start(self) -> None:
        if self._dispatcher is not None:
            return
        self._stopping.clear()
        # Its threads are started by the dispatcher's `submit`: they inherit its priority.
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="runbook")
        self._dispatcher = threading.Thread(
            target=self._dispatch_forever, name="runbook-dispatcher", daemon=True
        )
        self._dispatcher.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking runs; runs in hand stop after their current step (others take them up)."""
        if self._dispatcher is None:
            return
        self._stopping.set()
        self._wake.set()
        self._dispatcher.join(timeout)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            deadline = time.monotonic() + timeout
            while self._busy and time.monotonic() < deadline:
                time.sleep(0.02)
        self._dispatcher = None
        self._pool = None

    @property
    def running(self) -> bool:
        return self._dispatcher is not None and self._dispatcher.is_alive()

    def _dispatch_forever(self) -> None:
        lower_priority(self.nice)
        while not self._stopping.is_set():
            try:
                self._dispatch_once()
            except Exception:  # the store down must not kill the worker
                log.exception("runbook dispatcher pass failed")
            self._wake.wait(self.poll_seconds)
            self._wake.clear()

    def _dispatch_once(self) -> None:
        self.expire_approvals()
        with self._busy_lock:
            busy = set(self._busy)
        free = self.workers - len(busy)
        if free <= 0 or self._pool is None:
            return
        for execution_id in self.store.runnable(stale_before=self._stale(), limit=free + len(busy)):
            if free <= 0:
                break
            if execution_id in busy or not self._take(execution_id):
                continue
            with self._busy_lock:
                self._busy.add(execution_id)
            free -= 1
            self._pool.submit(self._advance_then_release, execution_id)

    def _advance_then_release(self, execution_id: str) -> None:
        try:
            self._advance(execution_id)
        finally:
            with self._busy_lock:
                self._busy.discard(execution_id)
            self._wake.set()

    def run_pending(self, *, max_passes: int = 1000) -> int:
        """Advance every runnable run in this thread until each waits or ends (CLI and tests).

        Returns how many times a run moved on.
        """
        moved = 0
        for _ in range(max_passes):
            self.expire_approvals()
            progressed = False
            for execution_id in self.store.runnable(stale_before=self._stale(), limit=100):
                with self._busy_lock:
                    if execution_id in self._busy:
                        continue
                if self._take(execution_id) and self._advance(execution_id):
                    progressed = True
                    moved += 1
            if not progressed:
                break
        return moved

    def expire_approvals(self) -> int:
        expired = self.store.expired(now=self.clock())
        for execution_id, step_id in expired:
            self.ledger.expire(execution_id, step_id, now=self.clock())
        return len(expired)

    # -- leases -----------------------------------------------------------------------------------

    def _stale(self) -> datetime:
        return self.clock() - self.lease

    def _take(self, execution_id: str) -> bool:
        return self.store.take(
            execution_id, owner=self.worker_id, now=self.clock(), stale_before=self._stale()
        )

    def _advance(self, execution_id: str) -> bool:
        """Run this (taken) execution's steps until it waits, ends or we must stop."""
        with self._heartbeat(execution_id):
            return self._advance_held(execution_id)

    @contextlib.contextmanager
    def _heartbeat(self, execution_id: str) -> Iterator[None]:
        """Tell other workers, while this run is advanced here, that its worker is alive."""
        stop = threading.Event()
        every = max(self.lease.total_seconds() / 4, 0.05)

        def beat() -> None:
            while not stop.wait(every):
                try:
                    self.store.heartbeat(owner=self.worker_id, ids=[execution_id], now=self.clock())
                except Exception:  # the next beat may get through; the lease allows for three
                    log.exception("heartbeat of execution %s failed", execution_id)

        thread = threading.Thread(target=beat, name="runbook-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    # -- advancing one run ------------------------------------------------------------------------

    def apply(self, transition: Transition) -> Outcome:
        """Write a move of a run this worker holds; LostOwnership when it no longer does."""
        done = self.ledger.apply(transition, held_by=self.worker_id)
        if not done and transition.strict:
            raise LostOwnership
        return transition.outcome

    def _advance_held(self, execution_id: str) -> bool:
        moved = False
        try:
            while True:
                record = self.store.record(execution_id)
                execution = record.execution
                if record.owner != self.worker_id or execution.status.final:
                    return moved
                if self._stopping.is_set():
                    self.apply(machine.release(record))
                    return moved
                if record.stop_reason:
                    self.apply(machine.stopped(record, now=self.clock()))
                    return True
                try:
                    runbook = self._snapshot(record)
                except RunbookError as exc:
                    reason = f"the runbook is invalid: {exc}"
                    self.apply(
                        machine.finish(record, ExecutionStatus.FAILED, reason, now=self.clock())
                    )
                    return True
                if execution.status is ExecutionStatus.PENDING:
                    if self._begin(record) != "next":
                        return moved
                    moved = True
                    continue
                if record.cursor >= len(runbook.steps):
                    self.apply(machine.complete(record, now=self.clock()))
                    return True
                step = runbook.steps[record.cursor]
                outcome = self.steps.step(record, runbook, step, self.apply)
                moved = True
                if outcome != "next":
                    return moved
        except LostOwnership:
            log.warning("execution %s was taken over by another worker", execution_id)
            return moved
        except Exception as exc:
            log.exception("execution %s failed inside the engine", execution_id)
            try:
                record = self.store.record(execution_id)
                if not record.execution.status.final:
                    reason = f"engine error: {said(exc)}"
                    failed = machine.finish(
                        record, ExecutionStatus.FAILED, reason, now=self.clock()
                    )
                    self.apply(failed)
            except Exception:
                log.exception("could not record the failure of execution %s", execution_id)
            return True

    def _snapshot(self, record: Record) -> Runbook:
        """The runbook as the run started it (its stored text), parsed once per version: a
        parse (PyYAML) costs milliseconds of CPU, a large part of a short run's (performance.md)."""
        key = (record.path, record.source)
        runbook = self._snapshots.get(key)
        if runbook is None:
            runbook = parse_source(record.source, path=record.path, catalog=self.catalog)
            if len(self._snapshots) >= 64:  # versions in flight; a clear only costs parses
                self._snapshots.clear()
            self._snapshots[key] = runbook
        return runbook

    def _begin(self, record: Record) -> Outcome:
        """pending -> running, once the run holds its lock (a dry run takes none)."""
        execution = record.execution
        key = execution.lock_key
        free, holder = True, None
        if key is not None and not self.store.claim(
            key, execution_id=execution.id, now=self.clock()
        ):
            free, holder = False, self.store.holder(key)
        return self.apply(machine.begin(record, free=free, holder=holder, now=self.clock()))
