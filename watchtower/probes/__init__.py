"""The probes: one class per module, each with `@register`; `registry()` finds them."""

from __future__ import annotations

import importlib
import pkgutil

from watchtower.probes.base import Probe, registered


def registry() -> dict[str, Probe]:
    """Every probe, by name; importing this package's modules registers them."""
    for module in pkgutil.iter_modules(__path__):
        if module.name not in {"base", "runner"}:
            importlib.import_module(f"{__name__}.{module.name}")
    return {name: cls() for name, cls in sorted(registered().items())}
