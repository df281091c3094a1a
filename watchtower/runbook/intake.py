"""The webhook's deferred intake: notifications are acknowledged once stored (one write each),
and dispatched from the store, in batches, by the intake's thread.

`keep` is the webhook's one write: the request threads' notifications arriving together are
stored together, in one transaction (a group commit: the first thread in writes every
notification waiting, then hands the next batch to one of the threads that arrived meanwhile),
and each thread returns once its own is committed. On PostgreSQL that transaction also NOTIFYs
the intake.

Where the intake runs (WATCHTOWER_WEBHOOK_INTAKE): `scheduler`, in the process that runs the
schedule, which starts it (`start`); `process`, in a process of its own (`watchtower intake`);
either way it wakes on PostgreSQL's NOTIFY (a connection of its own LISTENs), or on its own
every `idle_seconds` (a lost wake-up, SQLite); `web`, on a thread of the web process, started
by the first notification it keeps (`submit`). In one process (`watchtower serve`, tests)
`submit` wakes it directly either way. Keeping it out of the web process keeps
its database waits off the request threads' GIL: docs/performance.md, "third pass".

While its thread runs, the process's GIL switch interval is SWITCH_INTERVAL (Python's default is
5 ms): the intake waits on the database several times per pass, and after each wait it needs
the GIL back from the process's other threads, which, busy, keep it for a whole interval (the
convoy effect). The interval is put back when the intake stops.

A pass takes up to BATCH notifications and dispatches them together (`dispatch_many`: their
alerts recorded in one statement, their new episodes' runs created in one transaction), with the
same outcome as the synchronous webhook's `dispatch` alert by alert. A notification is claimed
before it is dispatched and marked done after; one whose dispatch failed (the store, a runbook
that did not start) stays claimed and is taken again after `stale`, like one whose intake died
(replicas share the table; dispatching twice starts nothing twice, since runs are keyed by
alert episode).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from watchtower.alerting import (
    AlertRecorder,
    Notification,
    Route,
    dispatch_many,
    parse_notification,
)
from watchtower.errors import PayloadError
from watchtower.runbook.alert_records import Arrived, Listener

log = logging.getLogger(__name__)

STOP_SLICE = 0.5  # seconds: the longest a LISTEN wait outlives `stop`
BATCH = 100
POLL = 1.0  # seconds: the longest a notification waits when no wake-up reached the intake
SWITCH_INTERVAL = 0.0005  # seconds; sys.getswitchinterval() is 0.005 by default


class Intake:
    def __init__(
        self,
        *,
        store: Any,  # watchtower.runbook.store.RunbookStore
        alerts: AlertRecorder,
        engine: Any,  # watchtower.runbook.engine.Engine (the RunbookStarter)
        routes: Sequence[Route],
        clock: Callable[[], datetime],
        stale: timedelta = timedelta(seconds=30),
        idle_seconds: float = POLL,
        switch_interval: float | None = SWITCH_INTERVAL,
        here: bool = True,
    ) -> None:
        self.store = store
        self.alerts = alerts
        self.engine = engine
        self.routes = routes
        self.clock = clock
        self.stale = stale
        self.idle_seconds = idle_seconds
        self.switch_interval = switch_interval  # None: leave the process's as it is
        # True: `submit` starts the intake in this process (WEBHOOK_INTAKE=web); False: the
        # scheduler's or its own process `start`s it, and it LISTENs for what others keep.
        self.here = here
        self._deaf = False  # the last attempt to LISTEN failed (said once, not every poll)
        self._restore: float | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._writer = GroupWriter(lambda batch: store.keep_notifications(batch, dispatched=False))

    def keep(self, arrived: Arrived) -> int:
        """Store a notification to dispatch (with those arriving at the same time); its id, once
        committed. Raises what the store raised (StoreUnavailable)."""
        return self._writer.write(arrived)

    def submit(self) -> None:
        """A notification was stored: dispatch it soon (starting the thread the first time,
        when the intake runs here)."""
        if self.here:
            self.start()
        self._wake.set()

    def start(self) -> None:
        """Run the intake's thread in this process, or again if it died (the scheduler calls
        this hourly, like the runbook worker's start); `stop` is final."""
        with self._lock:
            if self._stop.is_set() or self.running:
                return
            interval = sys.getswitchinterval()
            if self.switch_interval is not None and self.switch_interval < interval:
                self._restore = interval if self._restore is None else self._restore
                sys.setswitchinterval(self.switch_interval)
            self._thread = threading.Thread(target=self._loop, name="intake", daemon=True)
            self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            if self._restore is not None:
                sys.setswitchinterval(self._restore)
                self._restore = None

    def drain(self, *, max_passes: int = 100) -> int:
        """Dispatch every stored notification not yet dispatched, in this thread; how many."""
        done = 0
        for _ in range(max_passes):
            count = self._pass()
            done += count
            if count == 0:
                break
        return done

    def _loop(self) -> None:
        listener = None
        try:
            while not self._stop.is_set():
                listener = self._wait(listener)
                self._wake.clear()
                try:
                    while self._pass() and not self._stop.is_set():
                        pass
                except Exception:  # the store: the next pass tries again
                    log.exception("the webhook intake could not dispatch stored notifications")
        finally:
            if listener is not None:
                listener.close()

    def _wait(self, listener: Listener | None) -> Listener | None:
        """Until woken (NOTIFY, this process's `submit`) or `idle_seconds`; the listener to
        wait on next time (None: polling, until LISTEN works again)."""
        if listener is None and not self.here:
            try:
                listener = self.store.listen_for_notifications()
            except Exception as exc:
                if not self._deaf:
                    log.warning("the webhook intake polls: it could not LISTEN (%s)", exc)
                self._deaf = True
            else:
                self._deaf = False
        if listener is None or self._wake.is_set():
            self._wake.wait(self.idle_seconds)
            return listener
        try:
            # In slices, so that `stop` ends the thread (and closes its connection) promptly.
            until = time.monotonic() + self.idle_seconds
            while not self._stop.is_set() and (left := until - time.monotonic()) > 0:
                if listener.wait(min(left, STOP_SLICE)):
                    break
        except Exception as exc:
            log.warning("the webhook intake stopped hearing NOTIFY (%s); polls meanwhile", exc)
            listener.close()
            return None
        return listener

    def _pass(self) -> int:
        now = self.clock()
        taken = self.store.claim_notifications(now=now, stale_before=now - self.stale, limit=BATCH)
        finished = []
        parsed: list[tuple[int, tuple[Notification, datetime]]] = []
        for stored in taken:
            try:
                parsed.append(
                    (stored.id, (parse_notification(stored.body.encode()), stored.received_at))
                )
            except PayloadError:  # validated before it was stored; kept, never retried
                log.error("stored notification %d no longer parses", stored.id)
                finished.append(stored.id)
        try:
            outcomes = dispatch_many(
                [p for _, p in parsed], routes=self.routes, store=self.alerts, runbooks=self.engine
            )
        except Exception:
            log.exception("%d notifications: the alert store failed; retried", len(parsed))
            outcomes = []
        for (number, _), done in zip(parsed, outcomes, strict=False):
            if done.failed:
                for failed in done.failed:
                    log.error(
                        "notification %d, alert %s: runbook %r did not start: %s",
                        number,
                        failed.fingerprint,
                        failed.runbook,
                        failed.error,
                    )
                continue  # taken again after `stale`
            finished.append(number)
        self.store.notifications_done(finished, at=self.clock())
        return len(finished)


class _Waiting:
    def __init__(self, item: Arrived) -> None:
        self.item = item
        self.woken = threading.Event()
        self.lead = False  # woken to write the next batch, not with a result
        self.result: int | None = None
        self.error: BaseException | None = None


class GroupWriter:
    """Leader and followers: the first caller writes every item waiting in one call to
    `write_many`; callers arriving meanwhile wait, and one of them writes the next batch."""

    def __init__(self, write_many: Callable[[list[Arrived]], list[int]]) -> None:
        self._write_many = write_many
        self._lock = threading.Lock()
        self._waiting: list[_Waiting] = []
        self._writing = False

    def write(self, item: Arrived) -> int:
        me = _Waiting(item)
        with self._lock:
            self._waiting.append(me)
            lead = not self._writing
            self._writing = True
        if not lead:
            me.woken.wait()
        if me.lead or lead:
            self._lead()
        if me.error is not None:
            raise me.error
        assert me.result is not None
        return me.result

    def _lead(self) -> None:
        with self._lock:
            batch, self._waiting = self._waiting, []
        try:
            numbers = self._write_many([w.item for w in batch])
            for waiting, number in zip(batch, numbers, strict=True):
                waiting.result = number
        except BaseException as exc:  # every writer of the batch hears it
            for waiting in batch:
                waiting.error = exc
        with self._lock:
            following = self._waiting[0] if self._waiting else None
            self._writing = following is not None
        for waiting in batch:
            waiting.woken.set()
        if following is not None:
            following.lead = True
            following.woken.set()
