"""The alerts table: the latest state per fingerprint, over SQLite and the real PostgreSQL."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

import watchtower.store
from watchtower.model import Alert
from watchtower.sandbox.servers import PostgresServer
from watchtower.store import HistoryStore, engine_for

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def alert(fingerprint: str = "aa", status: str = "firing", starts: int = 0, **kw: Any) -> Alert:
    return Alert(
        fingerprint=fingerprint,
        status=status,  # type: ignore[arg-type]
        labels={"alertname": "ImageUploadProbeFailing", "probe": "upload_get"},
        annotations={"summary": "s"},
        starts_at=T0 + timedelta(minutes=starts),
        ends_at=T0 + timedelta(minutes=starts + 5) if status == "resolved" else None,
        **kw,
    )


def test_round_trip_and_firing_alerts(store: HistoryStore) -> None:
    original = alert(generator_url="http://127.0.0.1:9090/graph")
    assert store.record_alert(original, received_at=T0)
    assert store.record_alert(alert("bb", starts=-3), received_at=T0)
    assert store.alert("aa") == original
    assert [a.fingerprint for a in store.firing_alerts()] == ["bb", "aa"]  # oldest first
    assert store.alert("cc") is None


def test_the_latest_state_wins_and_late_retries_change_nothing(store: HistoryStore) -> None:
    assert store.record_alert(alert(), received_at=T0)
    assert store.record_alert(alert(), received_at=T0 + timedelta(minutes=1))  # a repeat
    assert store.record_alert(alert(status="resolved"), received_at=T0 + timedelta(minutes=6))
    assert store.firing_alerts() == []
    # The firing notification, retried after its resolution: older, ignored.
    assert not store.record_alert(alert(), received_at=T0 + timedelta(minutes=7))
    assert store.alert("aa").status == "resolved"  # type: ignore[union-attr]
    # The next episode of the same alert fires again ...
    assert store.record_alert(alert(starts=30), received_at=T0 + timedelta(minutes=30))
    # ... and a late resolution of the previous episode does not end it.
    assert not store.record_alert(alert(status="resolved"), received_at=T0 + timedelta(minutes=31))
    assert [a.starts_at for a in store.firing_alerts()] == [T0 + timedelta(minutes=30)]


def test_retention_prunes_resolved_alerts_only(store: HistoryStore) -> None:
    store.record_alert(alert("aa", status="resolved"), received_at=T0)
    store.record_alert(alert("bb"), received_at=T0)
    assert store.prune(before=T0 + timedelta(days=1)) == 1
    assert store.alert("aa") is None and store.alert("bb") is not None


def test_alerts_recorded_together_end_as_one_by_one(store: HistoryStore) -> None:
    """The intake's batch: repeats, a resolution, a late retry and the next episode of one
    fingerprint in one call, beside another alert; each kept or not as if recorded in turn."""
    received = [
        (alert(), T0),
        (alert("bb", starts=-3), T0),
        (alert(), T0 + timedelta(minutes=1)),  # a repeat: kept
        (alert(status="resolved"), T0 + timedelta(minutes=6)),
        (alert(), T0 + timedelta(minutes=7)),  # the firing retried after it resolved: not
        (alert(starts=30), T0 + timedelta(minutes=30)),  # the next episode
        (alert(status="resolved"), T0 + timedelta(minutes=31)),  # the last one's, late: not
    ]
    assert store.record_alerts(received) == [True, True, True, True, False, True, False]
    assert [(a.fingerprint, a.starts_at) for a in store.firing_alerts()] == [
        ("bb", T0 - timedelta(minutes=3)),
        ("aa", T0 + timedelta(minutes=30)),
    ]
    assert store.record_alerts([]) == []
    # Against what is stored: an older episode changes nothing.
    assert store.record_alerts([(alert(starts=10), T0), (alert("cc"), T0)]) == [False, True]


def test_a_pooled_connection_that_died_while_idle_is_replaced_before_use(
    postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No ping at every checkout, but one after PING_IDLE seconds idle: a connection the
    server dropped meanwhile (restart, idle timeout) is replaced, and the read succeeds."""
    import psycopg

    monkeypatch.setattr(watchtower.store, "PING_IDLE", 0.0)
    engine = engine_for(postgres_server.url)
    try:
        with engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with psycopg.connect(postgres_server.url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        time.sleep(0.2)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
    finally:
        engine.dispose()
