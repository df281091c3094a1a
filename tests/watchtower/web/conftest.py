"""A Watchtower over a real SQLite history store in tmp_path, its clock fixed at T0, and its app."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask

from tests.watchtower.conftest import T0
from watchtower.runtime import Watchtower
from watchtower.web import create_app

__all__ = ["T0"]


@pytest.fixture
def wt(make_watchtower: Callable[..., Watchtower]) -> Watchtower:
    return make_watchtower()


@pytest.fixture
def app(wt: Watchtower) -> Flask:
    return create_app(wt)
