"""The status page's render time over a week (or more) of history in SQLite.

    python -m benchmarks.status_page [--days 7] [--runs 15]

Nine sources (the upload_get probe and eight checks) at one result a minute: 7 days is about
91,000 results. Measured: the first render (closed days summed in SQL, then cached), later
renders (today's counts and the last 24 h of probe results only), the JSON, and as the baseline
what a naive page would pay just to read those days' results one by one (`history()`).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.common import Figure, note, print_figures, timed
from tests.web.history import synthetic_history
from watchtower.config import Settings
from watchtower.runtime import build
from watchtower.web import create_app


def run(*, quick: bool, days: float = 7, runs: int | None = None) -> list[Figure]:
    runs = runs or (5 if quick else 15)
    now = datetime.now(UTC).replace(microsecond=0)
    with tempfile.TemporaryDirectory(prefix="bench-status-") as tmp:
        wt = build(Settings(database_url=f"sqlite:///{Path(tmp) / 'history.sqlite'}"))
        try:
            started = time.perf_counter()
            batch = []
            count = 0
            for result in synthetic_history(now, days=days):
                batch.append(result)
                if len(batch) == 5000:
                    wt.store.add(batch)
                    count += len(batch)
                    batch = []
            wt.store.add(batch)
            count += len(batch)
            took = time.perf_counter() - started
            note(f"{count:,} results over {days:g} days stored in {took:.1f} s")
            client = create_app(wt).test_client()

            def page() -> None:
                answer = client.get("/")
                assert answer.status_code == 200, answer.status_code

            first = timed(page)
            warm = [timed(page) for _ in range(runs)]
            json = [timed(lambda: client.get("/api/v1/status")) for _ in range(runs)]
            naive = timed(lambda: wt.store.history(since=now - timedelta(days=days)))
        finally:
            wt.close()
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


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.status_page", description=__doc__)
    parser.add_argument("--days", type=float, default=7)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    print_figures(run(quick=False, days=args.days, runs=args.runs))


if __name__ == "__main__":
    main()
