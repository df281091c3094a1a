"""The probes: one class per module, each with `@register`; `registry()` finds them."""

from __future__ import annotations

import sys

from watchtower.probes.base import REGISTRY, Probe


def registry() -> dict[str, Probe]:
    """Every probe, by name; importing this package's modules registers them."""
    return REGISTRY.load(sys.modules[__name__], skip=("base", "runner"))
