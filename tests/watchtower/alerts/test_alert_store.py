"""The alerts table: the latest state per fingerprint, over SQLite and the real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from watchtower.model import Alert
from watchtower.store import HistoryStore

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
