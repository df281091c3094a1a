"""The status page's render time over a week (or more) of history in SQLite.

    python -m benchmarks.status_page [--days 7] [--runs 15] [--rollups 50,500]

Nine sources (the upload_get probe and eight checks) at one result a minute: 7 days is about
91,000 results. Measured: the first render (closed days summed in SQL, then cached), later
renders (today's counts and the last 24 h of probe results only), the JSON, and as the baseline
what a naive page would pay just to read those days' results one by one (`history()`).

`--rollups` measures the page over daily rollups: 50 and 500 sources x 90 days of rollup rows
(one per component, day and source, as the store writes them) plus the last 25 hours of raw
results at one per 5 minutes (the 24 h uptime and the states read those): the first render on
a database whose closed hours and days no replica has sealed yet (only a render that races the
scheduler's sealing job, watchtower/web/sealing.py, pays that), the job itself, the first render
of a new replica once they are sealed (a new app, module caches cleared), and the median of
later renders, page and JSON, against the issue's budget: with nothing written between them
(the page reads only the results' version and keeps the rest), and each right after one result
was written (the page reads again what it kept); and the 90-day bars summed
per component and day in SQL (`rollup_totals`, as the page reads them) against reading every
source's rollup row and summing in Python (as the page did before), best of 3 each.

`history_watchtower` is shared with benchmarks/status_and_metrics.py, which adds a larger
fleet of checks (`fleet_checks`) to the same nine and measures `/metrics` as well.
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import random
import statistics
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import delete

from benchmarks.common import Figure, note, print_figures, timed
from tests.watchtower.web.history import synthetic_history
from watchtower import status
from watchtower.checks.base import Check
from watchtower.config import Settings
from watchtower.model import Result, Status
from watchtower.probes.base import interval_for as probe_interval
from watchtower.runtime import Watchtower, build, feeds_for
from watchtower.sealed import sealed_days, sealed_hours
from watchtower.status import DayRollup, charts
from watchtower.web import create_app
from watchtower.web.sealing import seal_closed

# A bigger deployment than the epic's: the same kinds of checks over more tables, functions,
# distributions and clusters, each on the status-page row of what it watches. With the nine
# sources of tests/watchtower/web/history.py these 41 make 50. (check, title, component, resources)
FLEET: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    (
        "dynamodb_throttling",
        "DynamoDB throttling",
        "dynamodb",
        ("sessions", "likes", "comments", "albums", "shares"),
    ),
    (
        "dynamodb_writes",
        "DynamoDB writes",
        "dynamodb",
        ("sessions", "likes", "comments", "albums", "shares"),
    ),
    (
        "lambda_cold_starts",
        "Lambda cold starts",
        "lambda",
        (
            "image_resize",
            "gallery_api",
            "share_api",
            "auth",
            "notify",
            "export",
            "import",
            "search",
        ),
    ),
    (
        "lambda_errors",
        "Lambda errors",
        "lambda",
        ("image_api", "image_resize", "gallery_api", "share_api", "auth", "notify", "export"),
    ),
    (
        "cloudfront_hit_rate",
        "CloudFront hit rate",
        "cloudfront",
        ("static", "avatars", "downloads"),
    ),
    ("cloudfront_5xx", "CloudFront 5xx rate", "cloudfront", ("images", "static", "avatars")),
    ("redis_memory", "Redis memory", "cache", ("gallery", "sessions")),
    ("redis_evictions", "Redis evictions", "cache", ("gallery",)),
    ("postgres_replication_lag", "PostgreSQL replication lag", "legacy", ("replica_1",)),
    ("postgres_connections", "PostgreSQL connections", "legacy", ("primary", "replica_1")),
    ("s3_errors", "S3 5xx errors", "upload_path", ("images", "exports")),
    ("api_latency", "API Gateway latency", "get_path", ("get_image", "list_gallery")),
)


def fleet_checks(count: int) -> list[Check]:
    """The first `count` checks of FLEET, as registered checks would be (never run here)."""
    made: list[Check] = []
    for check, title, component, resources in FLEET:
        for resource in resources:
            cls = type(
                f"Fleet_{check}_{resource}",
                (Check,),
                {
                    "name": f"{check}_{resource}",
                    "title": f"{title}: {resource.replace('_', '-')}",
                    "component": component,
                },
            )
            made.append(cls())
    if count > len(made):
        raise ValueError(f"FLEET has {len(made)} checks, not {count}")
    return made[:count]


def fleet_history(
    now: datetime, checks: Iterable[Check], *, days: float, every: int = 60, seed: int = 11
) -> Iterator[Result]:
    """One result a minute for each check, oldest first: mostly ok, with a few incidents."""
    rng = random.Random(seed)
    checks = list(checks)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    # Each check has one 30-minute warning spell, and every sixth a 10-minute critical one,
    # spread over the week so the daily bars differ from row to row.
    spells = {
        c.name: (
            today - timedelta(days=n % 7) + timedelta(hours=(n * 5) % 24),
            timedelta(minutes=10 if n % 6 == 0 else 30),
            Status.CRITICAL if n % 6 == 0 else Status.WARNING,
        )
        for n, c in enumerate(checks)
    }
    at = now - timedelta(days=days)
    while at <= now:
        for check in checks:
            start, length, bad = spells[check.name]
            value = rng.lognormvariate(0, 0.3)
            status = bad if start <= at < start + length else Status.OK
            said = "within its thresholds" if status is Status.OK else f"{status.value}: over"
            yield Result(
                name=check.name,
                kind="check",
                status=status,
                reason=f"{check.title}: {value:.2f} in 5 min, {said}",
                observed_at=at,
                figures={"value": value, "datapoints": 5.0},
                thresholds={"warning": 2.0, "critical": 4.0},
            )
        at += timedelta(seconds=every)


@contextlib.contextmanager
def history_watchtower(
    directory: Path, now: datetime, *, days: float, fleet: int = 0
) -> Iterator[Watchtower]:
    """A Watchtower over a SQLite file holding `days` of history of the nine sources plus the
    first `fleet` checks of FLEET; its metrics fed the last hour of results, as if it had run."""
    wt = build(Settings(database_url=f"sqlite:///{directory / f'history-{fleet}.sqlite'}"))
    try:
        extra = fleet_checks(fleet)
        wt.checks.update({c.name: c for c in extra})
        wt.store.feeds = {f.name: f for f in feeds_for(wt.settings, wt.probes, wt.checks)}
        started = time.perf_counter()
        stream = heapq.merge(
            synthetic_history(now, days=days),
            fleet_history(now, extra, days=days),
            key=lambda r: r.observed_at,
        )
        count = 0
        batch: list[Result] = []
        recent = now - timedelta(hours=1)
        for result in stream:
            batch.append(result)
            if result.observed_at >= recent:
                wt.metrics.observe(result)
            if len(batch) == 5000:
                wt.store.add(batch)
                count += len(batch)
                batch = []
        wt.store.add(batch)
        count += len(batch)
        for name, probe in wt.probes.items():
            wt.metrics.interval.labels("probe", name).set(probe_interval(probe, wt.settings))
        for check in wt.checks.values():
            wt.metrics.interval.labels("check", check.name).set(wt.interval(check))
        sources = len(wt.probes) + len(wt.checks)
        took = time.perf_counter() - started
        note(f"{sources} sources: {count:,} results over {days:g} days stored in {took:.1f} s")
        yield wt
    finally:
        wt.close()


def run(*, quick: bool, days: float = 7, runs: int | None = None) -> list[Figure]:
    runs = runs or (5 if quick else 15)
    now = datetime.now(UTC).replace(microsecond=0)
    with (
        tempfile.TemporaryDirectory(prefix="bench-status-") as tmp,
        history_watchtower(Path(tmp), now, days=days) as wt,
    ):
        client = create_app(wt).test_client()

        def page() -> None:
            answer = client.get("/")
            assert answer.status_code == 200, answer.status_code

        first = timed(page)
        warm = [timed(page) for _ in range(runs)]
        json = [timed(lambda: client.get("/api/v1/status")) for _ in range(runs)]
        naive = timed(lambda: wt.store.history(since=now - timedelta(days=days)))
    note(f"first render {first:.0f} ms; then median of {runs}")
    name = f"{days:g} d"
    return [
        Figure(
            benchmark="status_page",
            name=f"page, first render ({name})",
            value=first,
            baseline_name="naive read of the same days",
            baseline=naive,
        ),
        Figure(
            benchmark="status_page",
            name=f"page, later renders ({name})",
            value=statistics.median(warm),
            baseline_name="naive read of the same days",
            baseline=naive,
        ),
        Figure(
            benchmark="status_page",
            name=f"/api/v1/status ({name})",
            value=statistics.median(json),
            baseline_name="naive read of the same days",
            baseline=naive,
        ),
    ]


def synthetic_checks(count: int) -> list[Check]:
    """`count` checks spread over the page's components (never run here)."""
    components = ("upload_path", "get_path", "dynamodb", "lambda", "cloudfront", "cache", "legacy")
    return [
        type(
            f"Synthetic_{n}",
            (Check,),
            {"name": f"source_{n:03d}", "title": f"Source {n}", "component": components[n % 7]},
        )()
        for n in range(count)
    ]


def rollup_rows(now: datetime, checks: Iterable[Check], days: int) -> Iterator[DayRollup]:
    """A day's rollup per check and day: mostly ok, a warning day in 9, a critical one in 23."""
    today = now.date()
    for n, check in enumerate(checks):
        for back in range(days):
            day = today - timedelta(days=back)
            bad = (n + back) % 23 == 0, (n + back) % 9 == 0
            yield DayRollup(
                component=check.component,
                day=day,
                source=check.name,
                interval=60,
                ok=1400,
                warning=30 if bad[1] else 0,
                critical=10 if bad[0] else 0,
                worst=Status.CRITICAL if bad[0] else Status.WARNING if bad[1] else Status.OK,
                worst_reason="synthetic",
            )


def rollup_run(sources: int, *, days: int = 90, runs: int = 15) -> list[Figure]:
    from watchtower.store import rollups as rollups_table

    now = datetime.now(UTC).replace(microsecond=0)
    with tempfile.TemporaryDirectory(prefix="bench-rollups-") as tmp:
        wt = build(Settings(database_url=f"sqlite:///{Path(tmp) / 'history.sqlite'}"))
        try:
            wt.checks.clear()
            wt.probes.clear()
            checks = synthetic_checks(sources)
            wt.checks.update({c.name: c for c in checks})
            wt.store.feeds = {f.name: f for f in feeds_for(wt.settings, wt.probes, wt.checks)}
            started = time.perf_counter()
            rows = [
                {
                    "component": r.component,
                    "day": r.day.isoformat(),
                    "source": r.source,
                    "interval_seconds": r.interval,
                    "ok": r.ok,
                    "warning": r.warning,
                    "critical": r.critical,
                    "unknown": r.unknown,
                    "worst_rank": 3 if r.critical else 2 if r.warning else 0,
                    "worst": r.worst.value,
                    "worst_reason": r.worst_reason,
                }
                for r in rollup_rows(now, checks, days - 1)  # today comes from the results
            ]
            with wt.store.engine.begin() as conn:
                conn.execute(rollups_table.insert(), rows)
            recent = list(fleet_history(now, checks, days=25 / 24, every=300))
            for at in range(0, len(recent), 5000):
                wt.store.add(recent[at : at + 5000])
            note(
                f"{sources} sources: {len(rows):,} rollup rows and {len(recent):,} results "
                f"written in {time.perf_counter() - started:.1f} s"
            )
            client = create_app(wt).test_client()

            def page() -> None:
                answer = client.get("/")
                assert answer.status_code == 200, answer.status_code

            # The first render on a database no replica has rendered from yet: it sums the
            # closed hours and days and seals them (watchtower/sealed.py). The scheduler's
            # sealing job does that ahead of the page; a render only pays it racing the job.
            unsealed = timed(page)
            with wt.store.engine.begin() as conn:  # nothing sealed again, for the job alone
                conn.execute(delete(sealed_hours))
                conn.execute(delete(sealed_days))
            job = timed(lambda: seal_closed(wt))
            # A new replica (a new app, its caches empty, the module caches cleared as in a new
            # process) on the same database: its first render reads the sealed periods.
            for cached in (charts._feed_parts, charts._bar, charts._time_open, charts._source_head):
                cached.cache_clear()
            client = create_app(wt).test_client()
            first = timed(page)
            warm = [timed(page) for _ in range(runs)]
            json = [timed(lambda: client.get("/api/v1/status")) for _ in range(runs)]
            # Each render right after a write (one result, not timed): what was kept is read
            # again, as on the first render after each check cycle stores its results.
            written = []
            for n in range(runs):
                wt.store.add([replace(recent[-1 - n], observed_at=now)])
                written.append(timed(page))
            since = now.date() - timedelta(days=days - 1)
            summed = min(timed(lambda: bars_summed_in_sql(wt, since, now)) for _ in range(3))
            per_source = min(timed(lambda: bars_per_source(wt, since, now)) for _ in range(3))
        finally:
            wt.close()
    label = f"{sources} sources x {days} d rollups"
    return [
        Figure(
            benchmark="status_page",
            name=f"90-day bars, summed in SQL, {label}",
            value=summed,
            baseline_name="per-source rollups summed in Python",
            baseline=per_source,
        ),
        Figure(
            benchmark="status_page",
            name=f"page, first render of a new replica, {label}",
            value=first,
            baseline_name="budget (issue 16)",
            baseline=100.0,
        ),
        Figure(
            benchmark="status_page",
            name=f"page, first render racing the sealing job (nothing sealed), {label}",
            value=unsealed,
            baseline_name="budget (issue 16)",
            baseline=100.0,
        ),
        Figure(
            benchmark="status_page",
            name=f"the scheduler's sealing job, nothing sealed yet, {label}",
            value=job,
            baseline_name="that render, which it spares",
            baseline=unsealed,
        ),
        Figure(
            benchmark="status_page",
            name=f"page, later renders, {label}, p50",
            value=statistics.median(warm),
            baseline_name="budget (issue 16)",
            baseline=30.0,
        ),
        Figure(
            benchmark="status_page",
            name=f"/api/v1/status, {label}, p50",
            value=statistics.median(json),
            baseline_name="budget (issue 16)",
            baseline=30.0,
        ),
        Figure(
            benchmark="status_page",
            name=f"page, each render after a new result, {label}, p50",
            value=statistics.median(written),
            baseline_name="budget (issue 16)",
            baseline=30.0,
        ),
    ]


def bars_summed_in_sql(wt: Watchtower, since: date, now: datetime) -> int:
    """The 90-day bars as the page reads them: one row per component and day."""
    return len([status.day_of_totals(t, t.day, now) for t in wt.store.rollup_totals(since=since)])


def bars_per_source(wt: Watchtower, since: date, now: datetime) -> int:
    """The baseline: every source's rollup row read, then summed per component and day."""
    grouped: dict[tuple[str, date], list[DayRollup]] = {}
    for r in wt.store.rollups(since=since):
        grouped.setdefault((r.component, r.day), []).append(r)
    return len([status.day_of(day, rows, now) for (_, day), rows in grouped.items()])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.status_page", description=__doc__)
    parser.add_argument("--days", type=float, default=7)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--rollups", default="", help="source counts, e.g. 50,500")
    args = parser.parse_args()
    if args.rollups:
        figures = []
        for count in args.rollups.split(","):
            figures += rollup_run(int(count), runs=args.runs)
        print_figures(figures)
        return
    print_figures(run(quick=False, days=args.days, runs=args.runs))


if __name__ == "__main__":
    main()
