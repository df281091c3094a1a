"""The status page (`/`) and its JSON twin (`/api/v1/status`): what on-call needs at a glance.

The web edge: it reads the clock, the history store and the registries, and hands them to the
pure rules in `watchtower.status`. The days and the 7/30/90-day uptime read the daily rollups
the store writes as results arrive; closed days and hours are read once and kept (`PageCache`),
so a request reads only today's rollups, this hour's counts and probe results, and the newest
results; and those only when the results' version (`HistoryStore.version`, one small read at
the start of every render, so an unreachable store is noticed as before) changed since the
last render: results stored by any replica show on the next render.

The page outlives the history store: each replica keeps its last good view (`LastGood`). When the
store is unreachable, `/` and `/api/v1/status` answer 200 with that view under a banner saying
since when the data is frozen, and Watchtower itself shows as degraded; never a 503, never the
frozen figures as current. While the store is down, a request tries it again at most every
`RETRY_SECONDS`; the first good read ends the freeze by itself.
"""

from __future__ import annotations

import gzip
import logging
import threading
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from flask import Blueprint, current_app, jsonify, render_template, request
from flask.sansio.blueprints import BlueprintSetupState

from watchtower import status
from watchtower.errors import StoreUnavailable
from watchtower.model import Alert
from watchtower.runbook.actions.alertmanager_create_silence import (
    MAX_MINUTES as MAX_SILENCE_MINUTES,
)
from watchtower.runbook.maintenance import maintenance_windows
from watchtower.runtime import Watchtower, feeds_for
from watchtower.sealed import SealedPeriods
from watchtower.status import DAYS, Day, Feed, Hours, charts, floor_hour
from watchtower.status import maintenance as upkeep
from watchtower.status.kept import KeptReads, Readings
from watchtower.web.auth import require
from watchtower.web.status_json import to_json

REFRESH_SECONDS = 30
RETRY_SECONDS = 5.0  # while the store is down, how often a request tries it again
# A frozen database (SIGSTOP, a hung host) holds a pooled connection's read forever: the page
# waits this long for its reads, then serves the last good view.
READ_DEADLINE = 5.0
# The longest maintenance window a runbook can declare (a silence's longest), with a margin.
MAX_WINDOW = timedelta(minutes=MAX_SILENCE_MINUTES) + timedelta(hours=1)
log = logging.getLogger(__name__)
T = TypeVar("T")

bp = Blueprint("status", __name__)


@bp.after_request
def _gzip(response: Any) -> Any:
    return gzipped(response)


def gzipped(response: Any) -> Any:
    """HTML and JSON gzipped for a client that accepts it (the page is mostly repeated markup:
    20 components x 90 bars is about a tenth of its size gzipped)."""
    if (
        "gzip" not in request.headers.get("Accept-Encoding", "")
        or response.direct_passthrough
        or response.status_code != 200
        or "Content-Encoding" in response.headers
        or response.mimetype not in ("text/html", "application/json")
    ):
        return response
    response.set_data(gzip.compress(response.get_data(), compresslevel=6))
    response.headers["Content-Encoding"] = "gzip"
    response.headers["Content-Length"] = str(len(response.get_data()))
    response.vary.add("Accept-Encoding")
    return response


@bp.record_once
def _set_up(state: BlueprintSetupState) -> None:
    state.app.extensions["watchtower.status.cache"] = PageCache()
    state.app.extensions["watchtower.status.last_good"] = LastGood()
    # Compile the page's template when the app is built (start-up in `wsgi` and `serve`), not
    # on the first request: compiling it was most of the first render.
    for name in ("status/page.html", "base.html", "_header.html", "_footer.html"):
        state.app.jinja_env.get_template(name)


# -- what the integrator wires: the alert receiver and the runbook engine ------------------------


@dataclass(frozen=True, kw_only=True)
class ExecutionSummary:
    """One runbook execution, as the page lists it."""

    id: str
    runbook: str  # the runbook's id
    title: str
    state: str  # e.g. running, waiting for approval, succeeded, failed
    started_at: datetime
    finished_at: datetime | None = None
    trigger: str = ""  # e.g. the alert that started it, or who did
    url: str | None = None  # its page, when there is one


def firing_alerts(wt: Watchtower) -> list[Alert]:
    """The alerts Alertmanager reports firing now, newest first."""
    return sorted(wt.store.firing_alerts(), key=lambda a: a.starts_at, reverse=True)


def recent_executions(wt: Watchtower, limit: int = 8) -> list[ExecutionSummary]:
    """The latest runbook executions, newest first (a handful)."""
    return [
        ExecutionSummary(
            id=e.id,
            runbook=e.runbook_id,
            title=e.title,
            state=e.status.value.replace("_", " ")
            + (" (dry run)" if e.dry_run else "")
            + (", alert still firing" if e.still_firing else ""),
            started_at=e.started_at or e.created_at,
            finished_at=e.finished_at,
            trigger=f"alert {e.alert_name}" if e.alert_name else f"started by {e.started_by}",
            url=f"/executions/{e.id}",
        )
        for e in wt.runbooks.list(limit=limit)
    ]


# -- views ---------------------------------------------------------------------------------------


@bp.get("/")
@require("viewer")
def page() -> Any:
    view = current_view(_watchtower())
    return render_template("status/page.html", v=view, charts=charts, status=status)


@bp.get("/api/v1/status")
@require("viewer")
def api() -> Any:
    return jsonify(to_json(current_view(_watchtower())))


def current_view(wt: Watchtower) -> StatusView:
    """A fresh view, or the last good one frozen, when the history store cannot be read."""
    last: LastGood = current_app.extensions["watchtower.status.last_good"]
    now = wt.now()
    if last.should_try(now):
        cache: PageCache = current_app.extensions["watchtower.status.cache"]
        try:
            if wt.store.local:
                view = snapshot(wt, now=now, cache=cache)
            else:
                view = _within(lambda: snapshot(wt, now=now, cache=cache), READ_DEADLINE)
        except StoreUnavailable as exc:
            log.warning("status page frozen: %s", exc)
            last.failed(now, str(exc))
        else:
            last.keep(view)
            return view
    return last.frozen_view(wt, now)


def _watchtower() -> Watchtower:
    wt: Watchtower = current_app.extensions["watchtower"]
    return wt


# -- the page's data -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ComponentHistory:
    uptime: dict[str, status.Uptime]
    days: list[status.Day]


@dataclass(frozen=True, kw_only=True)
class StatusView:
    now: datetime
    sandbox: bool
    refresh_seconds: int
    overall: status.Overall
    components: list[status.ComponentState]
    history: dict[str, ComponentHistory]
    latency: list[status.StepLatency]
    latency_start: datetime
    alerts: list[Alert]
    executions: list[ExecutionSummary]
    frozen: Frozen | None = None  # set when this is the last good view, served during an outage
    served_at: datetime | None = None  # when it was served (frozen views only)
    maintenance: list[upkeep.Window] = field(default_factory=list)  # active now


@dataclass(frozen=True, kw_only=True)
class Frozen:
    """Why and since when the page shows its last good data instead of current data."""

    data_at: datetime | None  # when the frozen data was read; None: no good read yet
    unreachable_since: datetime  # the first failed read of this outage
    reason: str

    @property
    def watchtower_state(self) -> str:
        return "degraded"


class LastGood:
    """A replica's last good view, and the outage it is serving it through."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.view: StatusView | None = None
        self.failing_since: datetime | None = None
        self.last_try: datetime | None = None
        self.reason = ""

    def should_try(self, now: datetime) -> bool:
        with self._lock:
            if self.failing_since is None or self.last_try is None:
                return True
            return abs((now - self.last_try).total_seconds()) >= RETRY_SECONDS

    def keep(self, view: StatusView) -> None:
        with self._lock:
            self.view = view
            self.failing_since = None
            self.reason = ""

    def failed(self, now: datetime, reason: str) -> None:
        with self._lock:
            self.failing_since = self.failing_since or now
            self.last_try = now
            self.reason = reason

    def frozen_view(self, wt: Watchtower, now: datetime) -> StatusView:
        with self._lock:
            view, since, reason = self.view, self.failing_since or now, self.reason
        base = view if view is not None else empty_view(wt, now)
        frozen = Frozen(
            data_at=view.now if view is not None else None,
            unreachable_since=since,
            reason=reason,
        )
        said = (
            f"the last good data, from {status.ago(view.now, now)}"
            if view is not None
            else "no data: this replica has not read the store since it started"
        )
        return replace(
            base,
            frozen=frozen,
            served_at=now,
            overall=status.Overall(
                state=status.State.STALE,
                headline=f"Watchtower degraded: its history store is unreachable; showing {said}",
                detail=f"Frozen: {base.overall.headline}" if view is not None else "",
            ),
        )


def _within(read: Callable[[], StatusView], seconds: float) -> StatusView:
    box: list[StatusView] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            box.append(read())
        except BaseException as exc:  # handed to the request
            error.append(exc)

    worker = threading.Thread(target=run, name="status-read", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise StoreUnavailable(f"the history store did not answer within {seconds:g} s")
    if error:
        raise error[0]
    return box[0]


def empty_view(wt: Watchtower, now: datetime) -> StatusView:
    """What the page can say with no store at all: every component without data."""
    known = feeds(wt)
    components = status.component_states(known, {}, now)
    return StatusView(
        now=now,
        sandbox=wt.settings.sandbox,
        refresh_seconds=REFRESH_SECONDS,
        overall=status.overall(components, now),
        components=components,
        history={
            c.component.id: ComponentHistory(
                uptime=status.uptimes({}, now), days=status.days({}, now)
            )
            for c in components
        },
        latency=[],
        latency_start=floor_hour(now) - (status.LATENCY_HOURS - 1) * status.HOUR,
        alerts=[],
        executions=[],
    )


def feeds(wt: Watchtower) -> list[Feed]:
    """Every probe and check, as the page reads them."""
    return feeds_for(wt.settings, wt.probes, wt.checks)


def snapshot(wt: Watchtower, *, now: datetime, cache: PageCache | None = None) -> StatusView:
    known = tuple(feeds(wt))
    cache = cache or current_app.extensions["watchtower.status.cache"]
    # Read first: the reads kept under it are then never older than it (watchtower.status.kept).
    version = wt.store.version()
    kept = cache.kept_for(known)
    # The two newest of each: a retry (attempt 2) and its first attempt are one run.
    horizon = now - timedelta(seconds=3 * max((f.interval for f in known), default=60))
    recent = kept.newest_since(version, horizon, lambda since: wt.store.newest_since(since))
    runs = {
        f.name: status.latest_run(
            recent.get(f.name)
            or kept.get(version, ("newest", f.name), partial(wt.store.newest, f.name, count=2))
        )
        for f in known
    }
    readings = kept.get(version, "readings", Readings)
    components = status.component_states(known, runs, now, reader=readings)
    hours = cache.hours(wt, known, now, version)  # the last 24 h, for the 24 h uptime
    # Runbooks' declared maintenance: shown, and left out of every uptime and day
    # (watchtower.status.maintenance). A window lasts at most MAX_WINDOW, so those touching the
    # last 24 h and today are in the runs with a step started within two of them.
    windows = maintenance_since(wt, now - 2 * MAX_WINDOW)
    hours = {
        cid: upkeep.exclude(h, [w for w in windows if w.component == cid], now)
        for cid, h in hours.items()
    }
    by_component = cache.days(wt, known, now, windows, version)  # 90 days, from the rollups
    history = {}
    for c in components:
        days = by_component.get(c.component.id) or status.days_from_rollups([], now)
        history[c.component.id] = ComponentHistory(
            uptime=status.window_uptimes(hours.get(c.component.id, {}), days, now), days=days
        )
    probes = [f.name for f in known if f.kind == "probe"]
    samples = cache.step_samples(wt, probes, now, version)
    return StatusView(
        now=now,
        sandbox=wt.settings.sandbox,
        refresh_seconds=REFRESH_SECONDS,
        overall=status.overall(components, now),
        components=components,
        history=history,
        latency=status.step_latency(samples, now, status.LATENCY_HOURS),
        latency_start=floor_hour(now) - (status.LATENCY_HOURS - 1) * status.HOUR,
        alerts=firing_alerts(wt),
        executions=recent_executions(wt),
        maintenance=[w for w in windows if w.active(now)],
    )


class PageCache:
    """What the page reads of closed periods, read once: a closed day or hour no longer changes.

    * Daily rollups of closed UTC days, for the 7, 30 and 90 day uptime and the daily bars.
    * Per-component hours of the closed hours of the last 24 h, for the 24 h uptime.
    * Probe step times of closed UTC hours, for the latency charts.
    A period closes `GRACE` after its end, so a run that started before the boundary and was
    stored after it still lands in it. Open periods (today's rollups, this hour's counts and
    probe results) and the newest results are read again whenever the results' version changed
    (`kept`, keyed by `HistoryStore.version`): a render with nothing written since the last one
    reads only the version.
    """

    GRACE = timedelta(minutes=5)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._feeds: tuple[Feed, ...] = ()
        self.kept = KeptReads()
        self._forget()

    def _forget(self) -> None:
        self.kept.forget()
        self._days: dict[str, dict[date, Day]] = {}  # component -> closed day -> Day
        self._days_until: date | None = None  # closed days before this one are cached
        self._hours: Hours = {}
        self._hours_until: datetime | None = None  # closed hours before this one are cached
        self._steps = status.StepSamples(seconds={}, positions={}, thresholds={})
        self._steps_until: datetime | None = None  # closed hours before this one are cached

    def kept_for(self, known: tuple[Feed, ...]) -> KeptReads:
        """The kept reads, forgotten first when the feeds changed."""
        with self._lock:
            self._check_feeds(known)
        return self.kept

    def _check_feeds(self, known: tuple[Feed, ...]) -> None:
        if known is self._feeds:  # this render's, compared already
            return
        if known != self._feeds:  # a check or an interval changed: so did the sums
            self._forget()
        self._feeds = known

    def days(
        self,
        wt: Watchtower,
        known: Iterable[Feed],
        now: datetime,
        windows: Sequence[upkeep.Window] = (),
        version: Hashable = None,
    ) -> dict[str, list[Day]]:
        """The last DAYS days by component, oldest first: closed days computed once; the open
        ones' maintenance from `windows`."""
        known = tuple(known)
        today = now.astimezone(UTC).date()
        first = today - timedelta(days=DAYS - 1)
        closed = (now - self.GRACE).astimezone(UTC).date()  # days before this one are closed
        with self._lock:
            self._check_feeds(known)
            since = max(first, self._days_until or first)
            if since < closed:
                for t in _closed_days(wt, since=since, until=closed):
                    self._days.setdefault(t.component, {})[t.day] = status.day_of_totals(
                        t, t.day, now
                    )
                self._days_until = closed
            cached = {c: dict(days) for c, days in self._days.items()}
        end = today + timedelta(days=1)
        totals = self._open(
            version,
            ("totals", closed, end),
            lambda: wt.store.rollup_totals(since=closed, until=end),
        )
        open_ = {(t.component, t.day): t for t in totals}
        open_days = [closed + timedelta(days=n) for n in range((today - closed).days + 1)]
        for (component, d), seconds in upkeep.day_seconds(windows, open_days, now).items():
            open_[(component, d)] = replace(
                open_.get((component, d)) or _no_totals(component, d), maintenance=seconds
            )
        out: dict[str, list[Day]] = {}
        for feed_row in {row for f in known for row in f.rows} | set(cached):
            days = cached.get(feed_row, {})
            out[feed_row] = [
                days[d]
                if d < closed and d in days
                else status.day_of_totals(open_.get((feed_row, d)), d, now)
                for d in (first + timedelta(days=n) for n in range(DAYS))
            ]
        return out

    def hours(
        self, wt: Watchtower, known: Iterable[Feed], now: datetime, version: Hashable = None
    ) -> Hours:
        """Per-component hours of the last 24 h (the current one included)."""
        known = tuple(known)
        first = floor_hour(now) - 23 * status.HOUR
        closed = floor_hour(now - self.GRACE)  # hours before this one are closed
        with self._lock:
            self._check_feeds(known)
            since = max(first, self._hours_until or first)
            if since < closed:
                for row, hours in _closed_hours(wt, known, since=since, until=closed).items():
                    self._hours.setdefault(row, {}).update(hours)
                self._hours_until = closed
            merged: Hours = {
                row: {h: v for h, v in hours.items() if h >= first}
                for row, hours in self._hours.items()
            }
            self._hours = merged
            merged = {row: dict(hours) for row, hours in merged.items()}
        read = self._open(version, ("hours", closed), lambda: _read_hours(wt, known, since=closed))
        for row, hours in read.items():
            merged.setdefault(row, {}).update(hours)
        return merged

    def step_samples(
        self, wt: Watchtower, probes: list[str], now: datetime, version: Hashable = None
    ) -> status.StepSamples:
        first = floor_hour(now) - (status.LATENCY_HOURS - 1) * status.HOUR
        closed = floor_hour(now - self.GRACE)  # hours before this one are closed
        with self._lock:
            since = max(first, self._steps_until or first)
            if since < closed:
                read = _read_steps(wt, probes, since=since, until=closed)
                self._steps = self._steps.merge(read)
                self._steps_until = closed
            kept = {h: v for h, v in self._steps.seconds.items() if h >= first}
            cached = status.StepSamples(
                seconds=kept, positions=self._steps.positions, thresholds=self._steps.thresholds
            )
            self._steps = cached
        key = ("steps", closed, tuple(probes))
        return cached.merge(self._open(version, key, lambda: _read_steps(wt, probes, since=closed)))

    def _open(self, version: Hashable, key: Hashable, read: Callable[[], T]) -> T:
        """An open period's read, kept under the results' version; read every time without one."""
        return read() if version is None else self.kept.get(version, key, read)


def _closed_days(wt: Watchtower, *, since: date, until: date) -> list[status.DayTotals]:
    """Closed days' totals: sealed by whichever replica summed them first (watchtower.sealed),
    the rest summed from the daily rollups and sealed now."""
    sealed = SealedPeriods(wt.store.engine)
    have, totals = sealed.days(since=since, until=until)
    missing = {since + timedelta(days=n) for n in range((until - since).days)} - have
    if missing:
        first, end = min(missing), max(missing) + timedelta(days=1)
        found = {
            (t.component, t.day): t
            for t in wt.store.rollup_totals(since=first, until=end)
            if t.day in missing
        }
        windows = maintenance_since(wt, _midnight(first) - MAX_WINDOW, limit=10_000)
        for (component, d), seconds in upkeep.day_seconds(windows, missing, _midnight(end)).items():
            found[(component, d)] = replace(
                found.get((component, d)) or _no_totals(component, d), maintenance=seconds
            )
        fresh = list(found.values())
        _seal(lambda: sealed.seal_days(missing, fresh))
        totals += fresh
    return totals


def maintenance_since(wt: Watchtower, since: datetime, *, limit: int = 200) -> list[upkeep.Window]:
    """Maintenance windows declared by runs with a step started since `since` (one bounded,
    indexed query, not the newest runs whatever their age)."""
    runs = wt.runbooks.list(limit, step_started_since=since)
    return [upkeep.Window(**w) for w in maintenance_windows(runs)]


def _no_totals(component: str, day: date) -> status.DayTotals:
    return status.DayTotals(component=component, day=day, down=0, observed=0, degraded=0)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _closed_hours(
    wt: Watchtower, known: tuple[Feed, ...], *, since: datetime, until: datetime
) -> Hours:
    """Closed hours by component: sealed ones read, the rest summed from raw results and sealed."""
    sealed = SealedPeriods(wt.store.engine)
    have, figures = sealed.hours(since=since, until=until)
    count = int((until - since) / status.HOUR)
    missing = {since + n * status.HOUR for n in range(count)} - have
    if missing:
        read = _read_hours(wt, known, since=min(missing), until=max(missing) + status.HOUR)
        fresh = {
            row: {h: v for h, v in hours.items() if h in missing} for row, hours in read.items()
        }
        _seal(lambda: sealed.seal_hours(missing, fresh))
        for row, hours in fresh.items():
            figures.setdefault(row, {}).update(hours)
    return figures


def _seal(write: Callable[[], None]) -> None:
    # The figures were read; failing to keep them for other replicas costs only speed.
    try:
        write()
    except StoreUnavailable as exc:
        log.warning("status page: closed periods not sealed: %s", exc)


def _read_hours(
    wt: Watchtower, known: tuple[Feed, ...], *, since: datetime, until: datetime | None = None
) -> Hours:
    counts = wt.store.status_counts(since=since, until=until)
    problems = [
        r
        for feed in known
        if len(feed.rows) > 1
        for r in wt.store.problems(feed.name, since=since, until=until)
    ]
    return status.hours_from(known, counts, problems)


def _read_steps(
    wt: Watchtower, probes: list[str], *, since: datetime, until: datetime | None = None
) -> status.StepSamples:
    return status.step_samples(
        r for name in probes for r in wt.store.history(name, since=since, until=until)
    )
