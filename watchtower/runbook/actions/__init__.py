"""The runbook actions: each module here defines one class with `@register`; `registry()` finds
them. Adding an action is one module and its test; nothing else changes."""

from __future__ import annotations

import importlib
import pkgutil

from watchtower.runbook.actions.base import Action, registered


def registry() -> dict[str, Action]:
    """Every action, by name; importing this package's modules registers them."""
    for module in pkgutil.iter_modules(__path__):
        if module.name != "base" and not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")
    return {name: cls() for name, cls in sorted(registered().items())}
