"""Issue 13, item 8: the legacy path is deletable in one step. The image core is copied without
`image_core/legacy.py` (and its one test module, `test_dual_write.py`), psycopg is made
uninstalled (an import hook refuses it, as a missing package would), and the image core's tests
run there. docs/image-core.md says how to remove it for real.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
LEGACY_TESTS = {"test_dual_write.py"}

# Loaded first by the interpreter (sitecustomize): psycopg cannot be imported, as if absent.
NO_PSYCOPG = textwrap.dedent(
    """
    import importlib.abc, sys

    class _Absent(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "psycopg" or name.startswith(("psycopg.", "psycopg_")):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, _Absent())
    """
)


@pytest.mark.slow
def test_the_image_core_runs_its_tests_without_legacy_py_and_psycopg(tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    shutil.copytree(
        ROOT / "image_core",
        copy / "image_core",
        ignore=shutil.ignore_patterns("legacy.py", "__pycache__"),
    )
    assert not (copy / "image_core" / "legacy.py").exists()
    # The tests' shared fixtures and servers come along; the legacy test module does not.
    shutil.copytree(
        ROOT / "tests",
        copy / "tests",
        ignore=lambda d, names: (
            [n for n in names if n in LEGACY_TESTS or n == "__pycache__" or n == "watchtower"]
            if Path(d).name in ("image_core", "tests")
            else [n for n in names if n == "__pycache__"]
        ),
    )
    for name in ("pyproject.toml",):
        shutil.copy(ROOT / name, copy / name)
    shutil.copytree(
        ROOT / "watchtower", copy / "watchtower", ignore=shutil.ignore_patterns("__pycache__")
    )
    (copy / "sitecustomize.py").write_text(NO_PSYCOPG)
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    probe = subprocess.run(
        [sys.executable, "-c", "import image_core.app, image_core.api; import psycopg"],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "No module named 'psycopg'" in probe.stderr, (
        probe.stderr
    )  # psycopg is gone, the core is not
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-x",
            "-p",
            "no:cacheprovider",
            "-k",
            "not fuzz",
            "tests/image_core",
            "--ignore=tests/image_core/test_without_legacy.py",
        ],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "error" not in done.stdout.splitlines()[-1]
