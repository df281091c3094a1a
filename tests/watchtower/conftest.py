"""The one Watchtower fixture: `make_watchtower(**settings)` builds a Watchtower through the
composition root (`watchtower.runtime.build`) over a fresh SQLite history store in tmp_path, its
clock fixed at T0 unless a `clock` is given; every one built is closed after the test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from watchtower.config import Settings
from watchtower.runtime import Watchtower, build

T0 = datetime(2026, 11, 27, 12, 30, tzinfo=UTC)


@pytest.fixture
def make_watchtower(tmp_path: Path) -> Iterator[Callable[..., Watchtower]]:
    built: list[Watchtower] = []

    def make(*, clock: Callable[[], float] | None = None, **settings: Any) -> Watchtower:
        settings.setdefault("database_url", f"sqlite:///{tmp_path / f'h{len(built)}.sqlite'}")
        wt = build(Settings(**settings))
        # The web edge reads the clock through the Watchtower.
        wt.clock = clock or T0.timestamp
        built.append(wt)
        return wt

    yield make
    for wt in built:
        wt.close()
