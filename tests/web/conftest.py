"""A Watchtower over a real SQLite history store in tmp_path, its clock fixed at T0."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from watchtower.config import Settings
from watchtower.runtime import Watchtower, build
from watchtower.web import create_app

T0 = datetime(2026, 11, 27, 12, 30, tzinfo=UTC)


@pytest.fixture
def make_watchtower(tmp_path: Path) -> Iterator[Callable[..., Watchtower]]:
    built: list[Watchtower] = []

    def make(**settings: Any) -> Watchtower:
        wt = build(
            Settings(database_url=f"sqlite:///{tmp_path / f'h{len(built)}.sqlite'}", **settings)
        )
        wt.clock = T0.timestamp  # the web edge reads the clock through the Watchtower
        built.append(wt)
        return wt

    yield make
    for wt in built:
        wt.close()


@pytest.fixture
def wt(make_watchtower: Callable[..., Watchtower]) -> Watchtower:
    return make_watchtower()


@pytest.fixture
def app(wt: Watchtower) -> Flask:
    return create_app(wt)
