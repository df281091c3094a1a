"""The runbook actions: each module here defines one class with `@register`; `registry()` finds
them. Adding an action is one module and its test; nothing else changes."""

from __future__ import annotations

import sys

from watchtower.runbook.actions.base import REGISTRY, Action


def registry() -> dict[str, Action]:
    """Every action, by name; importing this package's modules registers them."""
    return REGISTRY.load(sys.modules[__name__], skip=("base",))
