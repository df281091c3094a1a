"""The webhook's settings: the routes file is validated at start-up, naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchtower.alerting import DEFAULT_ROUTES
from watchtower.config import Settings
from watchtower.errors import ConfigError

ROUTES = Path(__file__).parents[3] / "alerts" / "routes.yml"


def test_the_default_routes_and_limit() -> None:
    settings = Settings.from_env({})
    assert settings.routes == DEFAULT_ROUTES
    assert settings.webhook_max_bytes == 1_048_576
    assert "routes" not in repr(settings)


def test_a_routes_file_replaces_the_default(tmp_path: Path) -> None:
    path = tmp_path / "routes.yml"
    path.write_text(
        "routes:\n"
        "  - matchers: ['alertname = WatchtowerCheckUnknown', 'check = dual_write']\n"
        "    runbook: disable-dual-write\n"
        "    mode: suggest\n"
    )
    (route,) = Settings.from_env({"WATCHTOWER_ROUTES_FILE": str(path)}).routes
    assert (route.runbook, route.mode) == ("disable-dual-write", "suggest")
    assert Settings.from_env({"WATCHTOWER_ROUTES_FILE": str(ROUTES)}).routes == DEFAULT_ROUTES


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "cannot read it"),
        ("routes: [\n", "not valid YAML"),
        ("!!python/object:os.system {}", "not valid YAML"),  # safe_load only
        ("routes:\n  - {matchers: ['a = b'], runbook: r, mode: auto}", "routes[0].mode"),
    ],
)
def test_a_bad_routes_file_fails_start_up_naming_the_variable(
    tmp_path: Path, text: str | None, message: str
) -> None:
    path = tmp_path / "routes.yml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"WATCHTOWER_ROUTES_FILE": str(path)})
    assert str(caught.value).startswith("WATCHTOWER_ROUTES_FILE=")
    assert message in str(caught.value)


def test_the_size_limit_must_be_a_positive_whole_number() -> None:
    assert Settings.from_env({"WATCHTOWER_WEBHOOK_MAX_BYTES": "2048"}).webhook_max_bytes == 2048
    with pytest.raises(ConfigError, match="WATCHTOWER_WEBHOOK_MAX_BYTES"):
        Settings.from_env({"WATCHTOWER_WEBHOOK_MAX_BYTES": "0"})
