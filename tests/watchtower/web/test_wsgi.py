"""`wsgi.create_app(environ)` reads that environ and nothing else: Watchtower's settings, the
checks' thresholds, the runbooks directory and the cutover's settings all come from it, while
`os.environ` says something else everywhere (and would fail start-up if it were read)."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchtower import wsgi
from watchtower.runtime import Watchtower
from watchtower.web.cutover import EXTENSION

ROOT = Path(__file__).resolve().parents[3]


def test_create_app_reads_only_the_environ_it_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    for variable, value in {
        "WATCHTOWER_DATABASE_URL": f"sqlite:///{elsewhere / 'os-environ.sqlite'}",
        "WATCHTOWER_PUBLIC_URL": "https://from-os-environ.example",
        "WATCHTOWER_RUNBOOKS_DIR": str(elsewhere / "runbooks"),
        "WATCHTOWER_AWS_REGION": "ap-south-1",
        "WATCHTOWER_CHECK_UPLOAD_SUCCESS_WINDOW_SECONDS": "999",
        "WATCHTOWER_CHECK_NO_SUCH_CHECK_X": "1",  # a ConfigError if read
        "WATCHTOWER_CUTOVER_WINDOW_HOURS": "48",
        "WATCHTOWER_CUTOVER_SIGNERS": "Someone else",
        "WATCHTOWER_CUTOVER_NO_SUCH_SETTING": "1",  # a ConfigError if read
    }.items():
        monkeypatch.setenv(variable, value)
    database = tmp_path / "given.sqlite"
    given = {
        "WATCHTOWER_DATABASE_URL": f"sqlite:///{database}",
        "WATCHTOWER_PUBLIC_URL": "https://given.example",
        "WATCHTOWER_RUNBOOKS_DIR": str(ROOT / "runbooks"),
        "WATCHTOWER_AWS_REGION": "eu-west-1",
        "WATCHTOWER_CHECK_UPLOAD_SUCCESS_WINDOW_SECONDS": "120",
        "WATCHTOWER_CUTOVER_WINDOW_HOURS": "12",
        "WATCHTOWER_CUTOVER_SIGNERS": "Engineering lead,Product owner",
    }

    app = wsgi.create_app(given)
    try:
        wt: Watchtower = app.extensions["watchtower"]
        settings = wt.settings
        assert settings.database_url == given["WATCHTOWER_DATABASE_URL"]
        assert settings.public_url == "https://given.example"
        assert settings.region == "eu-west-1"
        assert settings.check_overrides == {"upload_success": {"window_seconds": 120}}
        assert database.exists() and not elsewhere.exists()
        # Every collaborator was handed the same settings, and reads the given database.
        assert wt.runbooks.settings is settings
        assert wt.runbooks.runbooks and not wt.runbooks.problems  # the given runbooks directory
        service = app.extensions[EXTENSION]
        assert service is wt.cutover
        assert service.settings is settings
        assert service.cutover.window_seconds == 12 * 3600
        assert service.cutover.signers == ("Engineering lead", "Product owner")
        assert str(service.store.engine.url) == given["WATCHTOWER_DATABASE_URL"]
        assert service.store.engine is wt.store.engine
        with app.test_client() as client:
            assert client.get("/healthz").status_code == 200
            assert client.get("/readyz").status_code == 200
    finally:
        wsgi.close_app(app)
