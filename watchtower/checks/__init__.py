"""The checks: each module here defines one class with `@register`; `registry()` finds them."""

from __future__ import annotations

import importlib
import pkgutil

from watchtower.checks.base import Check, registered


def registry() -> dict[str, Check]:
    """Every check, by name; importing this package's modules registers them."""
    for module in pkgutil.iter_modules(__path__):
        if module.name not in {"base", "runner"}:
            importlib.import_module(f"{__name__}.{module.name}")
    return {name: cls() for name, cls in sorted(registered().items())}
