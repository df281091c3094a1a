"""pyproject.toml declares the dependencies; the hashed lock files decide what is installed. These
tests keep the two from drifting apart, and the development environment equal to its lock.

`make check-upgrades` runs the suite against the newest versions the ranges allow, where the last
test below is bound to fail (it is deselected there)."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# The platform the locks are compiled for (the Makefile's LOCK: --python-version 3.11, linux).
LOCK_ENVIRONMENT = {
    **default_environment(),
    "python_version": "3.11",
    "python_full_version": "3.11.0",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "os_name": "posix",
}
FROM_PYPROJECT = "watchtower (pyproject.toml)"


@dataclass(frozen=True)
class Pin:
    version: Version
    via: frozenset[str]  # what asked for it, as uv wrote it in the "# via" comments


def read_lock(path: Path) -> dict[str, Pin]:
    """The pins of a `uv pip compile --generate-hashes` file, by canonical name."""
    pins: dict[str, Pin] = {}
    name = version = None
    via: set[str] = set()

    def close() -> None:
        if name is not None and version is not None:
            pins[canonicalize_name(name)] = Pin(Version(version), frozenset(via))

    in_via = False
    for line in path.read_text().splitlines():
        pin = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)", line)
        if pin:
            close()
            name, version, via, in_via = pin[1], pin[2], set(), False
        elif line.strip().startswith("# via"):
            rest = line.strip()[len("# via") :].strip()
            in_via = not rest
            if rest:
                via.add(rest)
        elif in_via and line.strip().startswith("#   "):
            via.add(line.strip()[1:].strip())
        elif not line.strip().startswith("--hash"):
            in_via = False
    close()
    return pins


def declared(*extras: str) -> list[Requirement]:
    """The requirements pyproject.toml declares for these extras, for the lock's platform."""
    project = PYPROJECT["project"]
    raw = list(project["dependencies"])
    for extra in extras:
        raw += project["optional-dependencies"][extra]
    wanted = [Requirement(r) for r in raw]
    return [r for r in wanted if r.marker is None or r.marker.evaluate(LOCK_ENVIRONMENT)]


ALL_EXTRAS = tuple(PYPROJECT["project"]["optional-dependencies"])
LOCKS = {
    # requirements.lock is what the image installs: the server and legacy extras (Makefile LOCK).
    "requirements.lock": ("server", "legacy"),
    "requirements-dev.lock": ALL_EXTRAS,
}


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_every_declared_dependency_is_pinned_inside_its_range(lock: str) -> None:
    pins = read_lock(ROOT / lock)
    assert len(pins) > 10, f"{lock} read as {len(pins)} pins: the parser no longer fits the file"
    problems = []
    for requirement in declared(*LOCKS[lock]):
        pin = pins.get(canonicalize_name(requirement.name))
        if pin is None:
            problems.append(f"{requirement} is declared in pyproject.toml but not pinned")
        elif not requirement.specifier.contains(pin.version, prereleases=True):
            problems.append(f"{requirement.name}=={pin.version} is outside {requirement}")
    assert not problems, f"{lock} and pyproject.toml disagree (run `make lock`): {problems}"


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_nothing_is_pinned_for_pyproject_that_it_does_not_declare(lock: str) -> None:
    names = {canonicalize_name(r.name) for r in declared(*LOCKS[lock])}
    stale = sorted(
        name
        for name, pin in read_lock(ROOT / lock).items()
        if FROM_PYPROJECT in pin.via and name not in names
    )
    assert not stale, f"{lock} pins {stale} for pyproject.toml, which no longer declares them"


def test_the_image_ships_the_versions_the_tests_ran_with() -> None:
    runtime = read_lock(ROOT / "requirements.lock")
    development = read_lock(ROOT / "requirements-dev.lock")
    differ = {
        name: (str(pin.version), str(development[name].version) if name in development else None)
        for name, pin in runtime.items()
        if name not in development or development[name].version != pin.version
    }
    assert not differ, f"requirements.lock and requirements-dev.lock differ: {differ}"


def test_the_environment_is_the_lock() -> None:
    """`make install` installs requirements-dev.lock with --require-hashes; an environment made
    from the ranges instead (pip install -e '.[dev]') would test other versions than CI's."""
    wrong = {}
    for name, pin in read_lock(ROOT / "requirements-dev.lock").items():
        try:
            installed = Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            wrong[name] = (str(pin.version), None)
            continue
        if installed != pin.version:
            wrong[name] = (str(pin.version), str(installed))
    assert not wrong, (
        f"installed versions differ from requirements-dev.lock (run `make install`): {wrong}"
    )


def test_the_lock_parser_reads_what_uv_writes(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    lock.write_text(
        "# This file was autogenerated by uv\n"
        "boto3==1.2.3 \\\n    --hash=sha256:aa \\\n    --hash=sha256:bb\n"
        "    # via\n    #   watchtower (pyproject.toml)\n    #   moto\n"
        "Flask==3.1.0 \\\n    --hash=sha256:cc\n    # via watchtower (pyproject.toml)\n"
        "psycopg-binary==3.3.9 ; implementation_name != 'pypy' \\\n    --hash=sha256:dd\n"
        "    # via psycopg\n"
    )
    pins = read_lock(lock)
    assert pins == {
        "boto3": Pin(Version("1.2.3"), frozenset({FROM_PYPROJECT, "moto"})),
        "flask": Pin(Version("3.1.0"), frozenset({FROM_PYPROJECT})),
        "psycopg-binary": Pin(Version("3.3.9"), frozenset({"psycopg"})),
    }
