"""CPU per request spent on who is asking, with five scrypt-hashed users configured.

    python -m benchmarks.auth [--runs 200]

Issue 12, finding 3: any `Authorization` header cost one password hash per configured user
(~560 ms of CPU for `Bearer nope` with five scrypt users), on every route, the webhook's too.
Measured here in one process through the Flask test client, CPU time (`time.process_time`) per
request, each beside the same request without the header:

* `GET /api/v1/executions` (viewer) with a wrong bearer token: one SHA-256 and a few
  constant-time compares, no hash; the goal is under 5 ms;
* `POST /api/v1/alerts` with a wrong bearer token: the webhook runs no user authentication;
* basic auth with a wrong password for a hashed user: one scrypt, the one user named (slow on
  purpose, and limited per name and address; the limit is lifted here to measure it);
* and, as what the attack cost before, five `check_password_hash` calls, one per user.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from werkzeug.security import check_password_hash, generate_password_hash

from benchmarks.common import Figure, note, print_figures
from watchtower.config import Settings
from watchtower.runtime import build
from watchtower.web import create_app

NAME = "auth"
USERS = 5


def _cpu_ms(call: Callable[[], Any], runs: int) -> float:
    """Median CPU milliseconds of `call`, over `runs` batches of one call each (after a warm-up)."""
    call()
    samples = []
    for _ in range(runs):
        started = time.process_time()
        call()
        samples.append((time.process_time() - started) * 1000)
    return statistics.median(samples)


def _cpu_ms_mean(call: Callable[[], Any], runs: int) -> float:
    """Mean CPU milliseconds per call over `runs` calls: process_time ticks are coarse."""
    call()
    started = time.process_time()
    for _ in range(runs):
        call()
    return (time.process_time() - started) * 1000 / runs


def run(*, quick: bool, runs: int | None = None) -> list[Figure]:
    runs = runs or (50 if quick else 200)
    slow_runs = 3 if quick else 10
    users = tuple((f"user{n}", "viewer", generate_password_hash(f"pw-{n}")) for n in range(USERS))
    method = users[0][2].split("$", 1)[0]
    logging.getLogger("watchtower.web.throttle").setLevel(logging.ERROR)  # a line per failure
    note(f"{USERS} users hashed with {method}; {runs} requests per figure")
    with tempfile.TemporaryDirectory() as workdir:
        wt = build(
            Settings(
                database_url=f"sqlite:///{Path(workdir) / 'auth.sqlite'}",
                users=users,
                webhook_token="w" + "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ",
                signin_max_failures=1_000_000,
                signin_max_failures_per_address=1_000_000,
            )
        )
        try:
            client = create_app(wt).test_client()
            wrong = {"Authorization": "Bearer nope"}
            wrong_basic = {"Authorization": "Basic dXNlcjA6d3Jvbmc="}  # user0:wrong

            def page(headers: dict[str, str] | None = None) -> Callable[[], Any]:
                return lambda: client.get("/api/v1/executions?limit=1", headers=headers or {})

            def hook(headers: dict[str, str] | None = None) -> Callable[[], Any]:
                return lambda: client.post("/api/v1/alerts", data=b"{}", headers=headers or {})

            bare = _cpu_ms_mean(page(), runs)
            bearer = _cpu_ms_mean(page(wrong), runs)
            hook_bare = _cpu_ms_mean(hook(), runs)
            hook_bearer = _cpu_ms_mean(hook(wrong), runs)
            basic = _cpu_ms(page(wrong_basic), slow_runs)
            before = _cpu_ms(lambda: [check_password_hash(u[2], "nope") for u in users], slow_runs)
        finally:
            wt.close()
    note(f"wrong bearer token: {bearer:.2f} ms of CPU per request (goal: under 5 ms)")
    return [
        Figure(
            benchmark=NAME,
            name="GET /api/v1/executions, wrong bearer token, CPU",
            value=bearer,
            baseline_name="no Authorization header, CPU",
            baseline=bare,
        ),
        Figure(
            benchmark=NAME,
            name="GET /api/v1/executions, wrong bearer token, CPU",
            value=bearer,
            baseline_name=f"before: a hash per user ({USERS} scrypt), CPU",
            baseline=before,
        ),
        Figure(
            benchmark=NAME,
            name="POST /api/v1/alerts, wrong bearer token, CPU",
            value=hook_bearer,
            baseline_name="no Authorization header, CPU",
            baseline=hook_bare,
        ),
        Figure(
            benchmark=NAME,
            name="basic auth, wrong password (1 scrypt), CPU",
            value=basic,
            baseline_name=f"before: a hash per user ({USERS} scrypt), CPU",
            baseline=before,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.auth", description=__doc__)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    print_figures(run(quick=False, runs=args.runs))


if __name__ == "__main__":
    main()
