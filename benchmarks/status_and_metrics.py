"""The status page, /api/v1/status and /metrics with a week of history: 50 sources against 9.

Two Watchtowers over two SQLite files, built by benchmarks/status_page.py: the nine sources of
the epic (the upload_get probe and eight checks), and the same nine plus 41 more checks of the
same kinds over more tables, functions, distributions and clusters (`status_page.FLEET`), each
on the status-page row of what it watches (so DynamoDB's row has 12 sources, Lambda's 16).
Every source has one result a minute for 7 days (91,000 results for nine sources, 504,000 for
fifty), and its metrics were fed the last hour of results, as a running Watchtower's are.

Measured in process through Flask's test client (render time: no socket, no WSGI server):
the first render of the page (closed days summed in SQL, then cached), later renders, the JSON
twin and the Prometheus exposition, the two Watchtowers interleaved. Baseline: the nine.
"""

from __future__ import annotations

import functools
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.common import Figure, median, note, percentile, timed
from benchmarks.status_page import history_watchtower
from watchtower.web import create_app

NAME = "status_and_metrics"
DAYS = 7
BIG = 41  # fleet checks added to the nine: 50 sources


def run(*, quick: bool) -> list[Figure]:
    runs = 10 if quick else 40
    now = datetime.now(UTC).replace(microsecond=0)
    samples: dict[tuple[int, str], list[float]] = {}
    first: dict[int, float] = {}
    with (
        tempfile.TemporaryDirectory(prefix="bench-status-metrics-") as tmp,
        history_watchtower(Path(tmp), now, days=DAYS) as nine,
        history_watchtower(Path(tmp), now, days=DAYS, fleet=BIG) as fifty,
    ):
        clients = {
            len(wt.probes) + len(wt.checks): create_app(wt).test_client() for wt in (nine, fifty)
        }
        sizes: dict[tuple[int, str], int] = {}

        def call(sources: int, path: str) -> None:
            answer = clients[sources].get(path)
            assert answer.status_code == 200, (path, answer.status_code)
            sizes[(sources, path)] = len(answer.data)

        for sources in clients:
            first[sources] = timed(functools.partial(call, sources, "/"))
        order = list(clients)
        for n in range(runs):
            # Interleaved, alternating which goes first, so drift on the machine hits both.
            for sources in order if n % 2 == 0 else order[::-1]:
                for path in ("/", "/api/v1/status", "/metrics"):
                    took = timed(functools.partial(call, sources, path))
                    samples.setdefault((sources, path), []).append(took)
        for sources in clients:
            metrics = clients[sources].get("/metrics").data.decode()
            series = sum(1 for line in metrics.splitlines() if line and line[0] != "#")
            note(
                f"{sources} sources: page {sizes[(sources, '/')] / 1024:.0f} KiB, "
                f"/api/v1/status {sizes[(sources, '/api/v1/status')] / 1024:.0f} KiB, "
                f"/metrics {sizes[(sources, '/metrics')] / 1024:.0f} KiB in {series:,} samples"
            )
            for path in ("/", "/api/v1/status", "/metrics"):
                values = samples[(sources, path)]
                note(
                    f"  {path:15s} p50 {median(values):6.1f} ms  p95 {percentile(values, 95):6.1f} "
                    f"ms  max {max(values):6.1f} ms  n={len(values)}"
                )
    big, small = max(clients), min(clients)

    def pair(name: str, path: str, p: float) -> Figure:
        return Figure(
            benchmark=NAME,
            name=f"{name}, {big} sources, p{p:g}",
            value=percentile(samples[(big, path)], p),
            baseline_name=f"{small} sources, p{p:g}",
            baseline=percentile(samples[(small, path)], p),
        )

    return [
        Figure(
            benchmark=NAME,
            name=f"page, first render, {big} sources ({DAYS} d)",
            value=first[big],
            baseline_name=f"{small} sources",
            baseline=first[small],
        ),
        pair("page, later renders", "/", 50),
        pair("page, later renders", "/", 95),
        pair("/api/v1/status", "/api/v1/status", 50),
        pair("/metrics", "/metrics", 50),
        pair("/metrics", "/metrics", 95),
    ]
