"""`watchtower cutover status|report|preflight` and their formats, from the terminal."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from freezegun import freeze_time
from sqlalchemy import update

from tests.watchtower.cutover.evidence import FLIP, samples, window
from watchtower.cli import main
from watchtower.cutover.canonical import canonical, text_sha256
from watchtower.cutover.config import CutoverSettings
from watchtower.cutover.model import CloseReason
from watchtower.cutover.store import CutoverStore, reports
from watchtower.store import HistoryStore, engine_for

HOUR_23 = FLIP + timedelta(hours=23)
AFTER = FLIP + timedelta(hours=24, minutes=5)


@pytest.fixture
def env(tmp_path: Path, moto) -> dict[str, str | None]:
    return {
        "WATCHTOWER_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite'}",
        "AWS_ENDPOINT_URL": moto.url,
        "WATCHTOWER_LAMBDA_FUNCTION": "image-api",
        "WATCHTOWER_LEGACY_DATABASE_URL": None,
    }


@pytest.fixture
def store(env: dict[str, str | None]) -> CutoverStore:
    engine = engine_for(str(env["WATCHTOWER_DATABASE_URL"]))
    HistoryStore(engine).create_schema()
    store = CutoverStore(engine)
    store.add_window(window())
    for sample in samples(window()):
        store.add_sample(sample)
    return store


def run(args: list[str], env: dict[str, str | None]) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, args, env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_status_at_hour_23_says_it_is_collecting(env, store) -> None:
    with freeze_time(HOUR_23):
        code, out, _ = run(["cutover", "status"], env)
    assert code == 0
    assert out.startswith(f"Cutover window {window().id}: COLLECTING EVIDENCE")
    assert "PostgreSQL writes stopped" in out and "OK" in out
    assert "Sign-off: The window is not over: it ends at 2026-06-02 10:03:27 UTC" in out


def test_status_in_every_format(env, store) -> None:
    with freeze_time(AFTER):
        code, out, _ = run(["cutover", "status", "--format", "json"], env)
        assert code == 0
        body = json.loads(out)
        assert body["document"]["verdict"]["state"] == "ready"
        assert body["frozen"] is False
        assert body["sha256"] == text_sha256(canonical(body["document"]))
        code, md, _ = run(["cutover", "status", "--format", "md"], env)
        assert "**READY FOR SIGN-OFF**" in md and "> **DRAFT**" in md
        code, html, _ = run(["cutover", "status", "--format", "html"], env)
        assert html.startswith("<!doctype html>") and html.count("<svg") >= 8
        assert "<script" not in html and "style=" not in html


def test_the_signed_report_verifies_and_an_edit_fails_it(env, store, tmp_path: Path) -> None:
    from tests.watchtower.cutover.conftest import running_cutover
    from watchtower.config import Settings

    settings = Settings(database_url=str(env["WATCHTOWER_DATABASE_URL"]))
    with running_cutover(settings, cutover=CutoverSettings()) as service:
        service.sign(window().id, name="O", role="Operations lead", comment="", user="o", now=AFTER)
        service.sign(
            window().id, name="A", role="Engineering lead", comment="", user="a", now=AFTER
        )
    out_file = tmp_path / "report.md"
    code, _, err = run(["cutover", "report", "--output", str(out_file)], env)
    assert code == 0 and "written to" in err
    md = out_file.read_text()
    assert "**SIGNED**" in md and "Verified on read" in md
    code, out, _ = run(["cutover", "report", "--format", "json"], env)
    body = json.loads(out)
    assert body["frozen"] and body["verification"]["ok"]
    assert body["sha256"] == text_sha256(canonical(body["document"]))
    with store.engine.begin() as conn:
        conn.execute(
            update(reports).values(
                document=store.report(window().id).document.replace('"O"', '"Mallory"')  # type: ignore[union-attr]
            )
        )
    code, out, err = run(["cutover", "report", "--format", "md"], env)
    assert code == 1
    assert "does not verify" in err and "edited after it was frozen" in err
    assert "VERIFICATION FAILED" in out


def test_a_failed_window_exits_1(env, store) -> None:
    from tests.watchtower.cutover.evidence import window as make_window

    CutoverStore(store.engine).close(
        window().id,
        reason=CloseReason.ABANDONED,
        by="o",
        at=FLIP + timedelta(hours=1),
        comment="test",
    )
    failed = make_window(id="w2", opened_at=FLIP + timedelta(hours=2))

    def insert(at, figures):
        if at > failed.opened_at + timedelta(hours=1):
            figures["legacy_inserts"] = {
                "rows_since_flip": 2,
                "rows_in_slot": 0,
                "first_insert_at": (failed.opened_at + timedelta(minutes=61)).isoformat(),
            }

    store.add_window(failed)
    for sample in samples(failed, until=failed.opened_at + timedelta(hours=3), change=insert):
        store.add_sample(sample)
    with freeze_time(failed.opened_at + timedelta(hours=3)):
        code, out, _ = run(["cutover", "status"], env)
    assert code == 1
    assert "FAILED" in out and "2 rows inserted into gallery_images" in out
    assert "2026-06-01 13:04:27 UTC" in out


def test_a_bad_setting_is_named(env, store) -> None:
    code, _, err = run(["cutover", "status"], {**env, "WATCHTOWER_CUTOVER_WINDOW_HOURS": "a day"})
    assert code == 2 and "WATCHTOWER_CUTOVER_WINDOW_HOURS='a day' is not a whole number" in err
    code, _, err = run(["cutover", "status"], {**env, "WATCHTOWER_CUTOVER_WINDOWS": "1"})
    assert code == 2 and "WATCHTOWER_CUTOVER_WINDOWS: no such cutover setting" in err


def test_no_window_yet(env) -> None:
    code, _, err = run(["cutover", "status"], env)
    assert code == 2 and "no cutover window has been opened yet" in err


def test_preflight_without_dual_writes_fails_the_gate(env, store) -> None:
    code, out, _ = run(["cutover", "preflight"], env)
    assert code == 1
    assert out.startswith("Gate FAILED")
    assert "no dual-write was attempted in 7 days" in out
    code, out, _ = run(["cutover", "preflight", "--format", "json", "--days", "3"], env)
    assert code == 1 and json.loads(out)["days"] == 3


def test_open_and_roll_back_from_the_terminal(env, store) -> None:
    CutoverStore(store.engine).close(
        window().id,
        reason=CloseReason.ABANDONED,
        by="o",
        at=FLIP + timedelta(hours=1),
        comment="test",
    )
    code, out, _ = run(["cutover", "open", "--by", "olive"], env)
    assert code == 0 and out.startswith("window ")
    code, out, _ = run(["cutover", "open", "--by", "olive"], env)
    assert code == 1
    code, out, _ = run(["cutover", "rollback", "--by", "olive", "--reason", "errors"], env)
    assert code == 0 and "closed as rolled back" in out
