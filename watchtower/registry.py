"""One plugin registry for checks, probes, runbook actions and cutover criteria.

A plugin is a class with a `name`; its module decorates it with the package's `Registry.register`.
`Registry.load(package)` imports every public module of that package (names starting with `_`,
and those listed as infrastructure, are skipped), so adding a plugin is one module and its test.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from types import ModuleType
from typing import ClassVar, Generic, Protocol, TypeVar


class Named(Protocol):
    name: ClassVar[str]


P = TypeVar("P", bound=Named)


class Registry(Generic[P]):
    def __init__(self, kind: str) -> None:
        self.kind = kind  # "check", "probe", ...: named in errors
        self._classes: dict[str, type[P]] = {}

    def register(self, cls: type[P]) -> type[P]:
        """A class decorator; two different classes under one name is a programming error."""
        known = self._classes.get(cls.name)
        if known is not None and known is not cls:
            raise ValueError(f"two {self.kind}s are named {cls.name!r}")
        self._classes[cls.name] = cls
        return cls

    def registered(self) -> dict[str, type[P]]:
        return dict(self._classes)

    def load(self, package: ModuleType, *, skip: Iterable[str] = ()) -> dict[str, P]:
        """Imports the package's plugin modules; returns one instance of each plugin, by name."""
        skipped = set(skip)
        for module in pkgutil.iter_modules(package.__path__):
            if module.name not in skipped and not module.name.startswith("_"):
                importlib.import_module(f"{package.__name__}.{module.name}")
        return {name: cls() for name, cls in sorted(self._classes.items())}
