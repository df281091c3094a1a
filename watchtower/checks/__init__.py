"""The checks: each module here defines one class with `@register`; `registry()` finds them."""

from __future__ import annotations

import sys

from watchtower.checks.base import REGISTRY, Check


def registry() -> dict[str, Check]:
    """Every check, by name; importing this package's modules registers them."""
    return REGISTRY.load(sys.modules[__name__], skip=("base", "runner"))


def tunables() -> dict[str, frozenset[str]]:
    """Each check's name and the thresholds it takes: what `Settings.from_env(checks=...)` reads
    from WATCHTOWER_CHECK_* variables."""
    return {name: frozenset(check.defaults) for name, check in registry().items()}
