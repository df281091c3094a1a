"""`python -m benchmarks [--quick] [--only NAME ...]`: figures beside their baselines, one run.

Speed is printed, never asserted. Everything runs on loopback, bounded in count and time.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime
from importlib import metadata

from benchmarks.common import (
    FIGURE_HEADER,
    Figure,
    figure_rows,
    heading,
    print_figures,
    table,
    use_dummy_aws_credentials,
)
from watchtower.sandbox import servers

BENCHMARKS = [
    "upload_parallel",
    "http_latency",
    "cache_invalidation",
    "thumbnail",
    "status_page",
    "webhook_intake",
    "status_and_metrics",
    "image_api_throughput",
    "auth",
    "reconciliation",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer runs: a smoke test in ~3 min")
    parser.add_argument(
        "--only",
        action="append",
        choices=BENCHMARKS,
        metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}",
    )
    args = parser.parse_args(argv)
    selected = [name for name in BENCHMARKS if not args.only or name in args.only]

    use_dummy_aws_credentials()
    started = time.monotonic()
    print(f"benchmarks{' --quick' if args.quick else ''}: {', '.join(selected)}")
    print(machine())
    figures: list[Figure] = []
    failed: list[str] = []
    for name in selected:
        heading(name)
        # Other work on the machine shows up in the figures: say how busy it was.
        print(f"   load average before: {_load()}", flush=True)
        module = importlib.import_module(f"benchmarks.{name}")
        began = time.monotonic()
        try:
            found = module.run(quick=args.quick)
        except Exception:
            traceback.print_exc()
            failed.append(name)
            continue
        print()
        print_figures(found)
        print(f"   ({time.monotonic() - began:.0f} s; load average after: {_load()})")
        figures += found

    heading("summary")
    print(table(figure_rows(figures, with_benchmark=True), ["benchmark", *FIGURE_HEADER]))
    print("ratio = value / baseline; change = (value - baseline) / baseline.")
    print(f"total {time.monotonic() - started:.0f} s")
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine() -> str:
    """What the figures were measured on: they mean little without it."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(
                (line.split(":", 1)[1].strip() for line in info if line.startswith("model name")),
                cpu,
            )
    except OSError:
        pass
    versions = [f"Python {platform.python_version()}"]
    for module in ("PIL", "boto3", "moto", "redis"):
        with contextlib.suppress(ImportError):
            versions.append(f"{module} {importlib.import_module(module).__version__}")
    for distribution in ("gunicorn", "Werkzeug", "Flask", "SQLAlchemy", "psycopg"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions.append(f"{distribution} {metadata.version(distribution)}")
    for binary, flag in (("redis-server", "--version"), ("vipsthumbnail", "--version")):
        if shutil.which(binary):
            out = subprocess.run([binary, flag], capture_output=True, text=True).stdout.split()
            found = next((w for w in out if w.startswith(("v=", "vips-"))), "")
            versions.append(f"{binary} {found.removeprefix('v=').removeprefix('vips-')}")
    postgres = servers.which("postgres")
    if postgres:
        out = subprocess.run([postgres, "--version"], capture_output=True, text=True).stdout
        words = out.split()  # postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)
        versions.append(f"PostgreSQL {words[2] if len(words) > 2 else '?'}")
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"{now}; {os.cpu_count()} cores, {cpu}; {platform.system()}; {', '.join(versions)}"


if __name__ == "__main__":
    sys.exit(main())
