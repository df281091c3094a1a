"""Audits the lock files for known vulnerabilities with pip-audit, bounded in time.

Usage: python scripts/audit_dependencies.py [--strict] [--timeout SECONDS] LOCK [LOCK ...]

Exit 1 when a locked package has a known vulnerability. When the vulnerability service cannot be
asked (no network, a time-out, a mirror that does not serve PyPI's per-version JSON API), every
package pip-audit could not look up is named, the audit says NOT DONE on one line, and the exit is
0: CI should not fail because a service is away, nor pass in silence. `--strict` makes that
exit 1 as well (for a release build).

pip-audit runs with `--disable-pip --require-hashes`: it reads the pinned, hashed lock as it is,
with no resolver and no virtualenv to build, so nothing is installed to audit it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

PER_REQUEST_TIMEOUT = 15  # pip-audit's socket timeout, seconds


@dataclass
class Outcome:
    lock: str
    packages: int = 0
    vulnerable: dict[str, list[str]] = field(default_factory=dict)  # "name==version" -> ids
    skipped: dict[str, str] = field(default_factory=dict)  # name -> why
    failure: str | None = None  # pip-audit did not finish

    @property
    def audited(self) -> bool:
        return self.failure is None and not self.skipped


def pip_audit() -> list[str]:
    beside = Path(sys.executable).with_name("pip-audit")
    found = str(beside) if beside.exists() else shutil.which("pip-audit")
    if found is None:
        raise SystemExit("pip-audit is not installed (it is a dev dependency: make install)")
    return [found]


def audit(lock: Path, *, timeout: float) -> Outcome:
    outcome = Outcome(lock=str(lock))
    command = [
        *pip_audit(),
        "--requirement",
        str(lock),
        "--require-hashes",
        "--disable-pip",
        "--progress-spinner",
        "off",
        "--timeout",
        str(PER_REQUEST_TIMEOUT),
        "--format",
        "json",
    ]
    try:
        done = subprocess.run(  # noqa: S603 (our own command line, no shell)
            command, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        outcome.failure = f"pip-audit did not finish within {timeout:.0f} s"
        return outcome
    try:
        report = json.loads(done.stdout)
    except ValueError:
        last = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        outcome.failure = f"pip-audit failed: {last[:300]}"
        return outcome
    for dependency in report.get("dependencies", []):
        outcome.packages += 1
        name = dependency["name"]
        if "skip_reason" in dependency:
            outcome.skipped[name] = dependency["skip_reason"]
        elif dependency.get("vulns"):
            key = f"{name}=={dependency.get('version', '?')}"
            outcome.vulnerable[key] = [
                f"{v['id']} (fixed in {', '.join(v.get('fix_versions') or ['no release yet'])})"
                for v in dependency["vulns"]
            ]
    return outcome


def report(outcome: Outcome) -> list[str]:
    lines = []
    if outcome.failure is not None:
        return [f"{outcome.lock}: NOT AUDITED: {outcome.failure}"]
    audited = outcome.packages - len(outcome.skipped)
    lines.append(
        f"{outcome.lock}: {outcome.packages} packages, {audited} audited, "
        f"{len(outcome.vulnerable)} with known vulnerabilities, "
        f"{len(outcome.skipped)} could not be audited"
    )
    for package, ids in sorted(outcome.vulnerable.items()):
        lines.append(f"  VULNERABLE {package}: {'; '.join(ids)}")
    reasons: dict[str, list[str]] = {}
    for name, why in outcome.skipped.items():
        # "Dependency not found on PyPI and could not be audited: flask (3.1.3)" -> the cause
        reasons.setdefault(why.split(":", 1)[0], []).append(name)
    for why, names in reasons.items():
        shown = ", ".join(sorted(names)[:8]) + (" ..." if len(names) > 8 else "")
        lines.append(f"  not audited ({why}): {shown}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("locks", nargs="+", type=Path)
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when not everything is audited"
    )
    parser.add_argument("--timeout", type=float, default=120, help="per lock file, seconds")
    args = parser.parse_args(argv)
    outcomes = [audit(lock, timeout=args.timeout) for lock in args.locks]
    for outcome in outcomes:
        print("\n".join(report(outcome)))
    if any(o.vulnerable for o in outcomes):
        print("dependency audit: FAILED (known vulnerabilities above; upgrade them: make lock)")
        return 1
    if all(o.audited for o in outcomes):
        print("dependency audit: passed (no known vulnerabilities)")
        return 0
    print(
        "dependency audit: NOT DONE: pip-audit could not look up the packages above (the "
        "reason is beside them); nothing was found, and nothing was proven"
    )
    return 1 if args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
