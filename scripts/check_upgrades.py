"""`make check-upgrades`: would the newest releases that pyproject.toml's ranges allow break us?

Resolves every extra afresh with the newest versions the ranges allow (ignoring the locks),
installs them into a throwaway virtual environment, runs the test suite there and prints what
differs from requirements-dev.lock and which tests failed. Nothing in the repository changes:
when the summary is clean, `make lock UPGRADE=--upgrade && make test` moves the pins for real.

Meant to run on a schedule (weekly, say) as well as by hand, so that a new moto, boto3 or Flask
release is found here before a newcomer's fresh install finds it.

    python scripts/check_upgrades.py [--keep] [-- PYTEST ARGS...]

Exit status: 0 the suite passed on the newest versions, 1 it did not, 2 the environment could not
be built (the line printed says why).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.test_dependencies import read_lock  # noqa: E402 - the one parser of our lock files

# The one test that checks the environment equals the lock, which here it must not.
DESELECT = "tests/test_dependencies.py::test_the_environment_is_the_lock"


def run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload]  # noqa: S603 - our own tools
        command, check=False, text=True, capture_output=True, **kwargs
    )


def fail(step: str, result: subprocess.CompletedProcess[str]) -> int:
    tail = (result.stderr or result.stdout).strip().splitlines()[-15:]
    print(f"check-upgrades: {step} failed (exit {result.returncode}):", *tail, sep="\n  ")
    return 2


def version_changes(lock: Path, upgraded: Path) -> list[str]:
    before, after = read_lock(lock), read_lock(upgraded)
    lines = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old is None and new is not None:
            lines.append(f"  + {name} {new.version} (new)")
        elif new is None and old is not None:
            lines.append(f"  - {name} {old.version} (no longer needed)")
        elif old is not None and new is not None and old.version != new.version:
            lines.append(f"  ~ {name} {old.version} -> {new.version}")
    return lines


def failures(junit: Path) -> list[str]:
    lines = []
    for case in ET.parse(junit).getroot().iter("testcase"):  # noqa: S314 - our own file
        for problem in [*case.iter("failure"), *case.iter("error")]:
            message = (problem.get("message") or "").strip().splitlines()
            first = message[0][:160] if message else problem.tag
            module = case.get("classname", "").replace(".", "/")
            lines.append(f"  {module}.py::{case.get('name')}: {first}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the throwaway environment")
    parser.add_argument("pytest_args", nargs="*", help="after --: what to pass to pytest")
    args = parser.parse_args(argv)

    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv is None:
        print("check-upgrades: uv is not installed (run `make install`)")
        return 2
    work = Path(tempfile.mkdtemp(prefix="watchtower-upgrades-"))
    venv, upgraded, junit = work / "venv", work / "upgraded.txt", work / "junit.xml"
    python = venv / "bin" / "python"
    try:
        steps = [
            (
                "resolving the newest allowed versions",
                [uv, "pip", "compile", "pyproject.toml", "--all-extras", "--upgrade", "--quiet",
                 "--python-version", "3.11", "--output-file", str(upgraded)],
            ),
            ("creating the environment",
             [uv, "venv", "--quiet", "--python", sys.executable, str(venv)]),
            ("installing",
             [uv, "pip", "install", "--quiet", "--python", str(python), "-r", str(upgraded)]),
            (
                "installing the project",
                [uv, "pip", "install", "--quiet", "--python", str(python), "--no-deps",
                 "--no-build-isolation", "-e", "."],
            ),
        ]  # fmt: skip
        for step, command in steps:
            print(f"check-upgrades: {step}", flush=True)
            result = run(command, cwd=ROOT)
            if result.returncode != 0:
                return fail(step, result)

        changes = version_changes(ROOT / "requirements-dev.lock", upgraded)
        print(f"check-upgrades: running the tests ({len(changes)} versions differ from the lock)")
        env = {
            **os.environ,
            "VIRTUAL_ENV": str(venv),
            "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
        }
        tests = subprocess.run(  # noqa: S603 - our own environment's pytest
            [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "--deselect", DESELECT,
             f"--junitxml={junit}", *args.pytest_args],
            cwd=ROOT, env=env, check=False,
        )  # fmt: skip

        print("\ncheck-upgrades: versions that differ from requirements-dev.lock")
        print("\n".join(changes) or "  none: the lock already has the newest allowed versions")
        broken = failures(junit) if junit.exists() else []
        if tests.returncode == 0:
            print("check-upgrades: the suite passes on the newest allowed versions;"
                  " `make lock UPGRADE=--upgrade && make test` takes them")  # fmt: skip
            return 0
        print(f"check-upgrades: the suite fails on the newest allowed versions (pytest exit "
              f"{tests.returncode}); {len(broken)} tests broke:")  # fmt: skip
        print("\n".join(broken) or "  (no junit report: see pytest's output above)")
        return 1
    finally:
        if args.keep:
            print(f"check-upgrades: kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
