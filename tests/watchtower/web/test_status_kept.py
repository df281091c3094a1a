"""Later renders keep what they read while the results' version holds (watchtower.status.kept):
a result written by any replica shows on the next render, a render with nothing written since
reads no results, and an unreachable store still freezes the page, kept reads or not. Over
SQLite and the real PostgreSQL, as the store's contract suite runs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event

from tests.watchtower.web.conftest import T0
from tests.watchtower.web.history import check
from watchtower.errors import StoreUnavailable
from watchtower.model import Status
from watchtower.runtime import Watchtower
from watchtower.status.kept import KeptReads
from watchtower.store import HistoryStore, engine_for
from watchtower.web import create_app


def dynamodb(body: Any) -> Any:
    return next(c for c in body["components"] if c["id"] == "dynamodb")


def source(body: Any, name: str) -> Any:
    return next(s for c in body["components"] for s in c["sources"] if s["name"] == name)


def test_a_result_written_through_another_store_shows_on_the_next_render(
    make_watchtower: Callable[..., Watchtower], database_url: str
) -> None:
    wt = make_watchtower(database_url=database_url)
    wt.store.add([check("dynamodb_throttling", T0 - timedelta(seconds=40), Status.OK, "calm")])
    client = create_app(wt).test_client()
    first = client.get("/api/v1/status").json
    assert source(first, "dynamodb_throttling")["state"] == "ok"
    assert dynamodb(client.get("/api/v1/status").json) == dynamodb(first)  # kept, the same

    # Another replica: its own engine and store on the same database.
    engine = engine_for(database_url)
    try:
        other = HistoryStore(engine, wt.store.feeds)
        other.add(
            [check("dynamodb_throttling", T0 - timedelta(seconds=20), Status.CRITICAL, "throttled")]
        )
    finally:
        engine.dispose()
    body = client.get("/api/v1/status").json
    assert source(body, "dynamodb_throttling")["state"] == "critical"
    after = dynamodb(body)
    assert after["state"] == "critical"
    assert "throttled" in after["reason"]
    today = after["days"][-1]
    assert today["readings"]["critical"] == 1 and today["readings"]["ok"] == 1
    assert after["uptime"]["24h"] < 1
    page = client.get("/").get_data(as_text=True)
    assert "throttled" in page and "calm" not in page


def test_a_result_written_by_this_replica_shows_on_the_next_render(
    make_watchtower: Callable[..., Watchtower],
) -> None:
    wt = make_watchtower()
    wt.store.add([check("lambda_cold_starts", T0 - timedelta(seconds=40), Status.OK, "warm")])
    client = create_app(wt).test_client()
    assert "warm" in client.get("/").get_data(as_text=True)
    wt.store.add(
        [check("lambda_cold_starts", T0 - timedelta(seconds=5), Status.WARNING, "cold again")]
    )
    page = client.get("/").get_data(as_text=True)
    assert "cold again" in page
    body = client.get("/api/v1/status").json
    assert source(body, "lambda_cold_starts")["state"] == "warning"


def test_a_render_with_nothing_written_since_reads_only_the_version(
    make_watchtower: Callable[..., Watchtower], database_url: str
) -> None:
    wt = make_watchtower(database_url=database_url)
    wt.store.add([check("dynamodb_throttling", T0 - timedelta(seconds=40), Status.OK, "calm")])
    client = create_app(wt).test_client()
    client.get("/")
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(" ".join(statement.split()))

    event.listen(wt.store.engine, "before_cursor_execute", seen)
    try:
        client.get("/")
        kept = [s for s in statements if "FROM results" in s or "FROM rollups" in s]
        assert len(kept) == 1 and "max(results.id)" in kept[0], kept  # the version, nothing else
        statements.clear()
        wt.store.add([check("dynamodb_throttling", T0 - timedelta(seconds=5), Status.OK, "new")])
        statements.clear()
        client.get("/")
        read = [s for s in statements if "FROM results" in s or "FROM rollups" in s]
        assert len(read) > 1, read  # a write: read again
    finally:
        event.remove(wt.store.engine, "before_cursor_execute", seen)


class VersionDown(HistoryStore):
    """The real store, its version read failing as the translated store fails while `down`."""

    down = False

    def version(self) -> tuple[int | None, int | None]:
        if self.down:
            raise StoreUnavailable("the history store failed: OperationalError: refused")
        return super().version()


def test_kept_reads_never_stand_in_for_an_unreachable_store(
    make_watchtower: Callable[..., Watchtower],
) -> None:
    at = [T0]
    wt = make_watchtower(clock=lambda: at[0].timestamp())
    store = VersionDown(wt.store.engine, wt.store.feeds)
    wt.store = store
    store.add([check("dynamodb_throttling", T0 - timedelta(seconds=20), Status.OK, "calm")])
    client = create_app(wt).test_client()
    for _ in range(2):  # the second render from kept reads
        assert client.get("/api/v1/status").json["frozen"] is None
    store.down = True
    at[0] = T0 + timedelta(minutes=3)
    body = client.get("/api/v1/status").json
    assert body["frozen"]["data_at"] == T0.isoformat()
    assert body["watchtower"]["state"] == "degraded"
    page = client.get("/").get_data(as_text=True)
    assert "Updated <time" not in page and "Frozen since" in page
    store.down = False
    at[0] += timedelta(seconds=10)  # past the retry pause
    assert client.get("/api/v1/status").json["generated_at"] == at[0].isoformat()


def test_newest_results_kept_from_an_earlier_moment_are_what_the_store_gives_later(
    database_url: str,
) -> None:
    engine = engine_for(database_url)
    try:
        store = HistoryStore(engine)
        store.create_schema()
        store.add(
            [check("a", T0 + timedelta(minutes=m), Status.OK, f"a{m}") for m in (0, 2, 4, 6)]
            + [check("b", T0 + timedelta(minutes=m), Status.OK, f"b{m}") for m in (1, 5)]
            + [check("c", T0 + timedelta(minutes=3), Status.OK, "c3")]
            + [check("d", T0 + timedelta(minutes=6), Status.OK, "d6a")]
            + [check("d", T0 + timedelta(minutes=6), Status.CRITICAL, "d6b")]  # same moment
        )
        kept, version, reads = KeptReads(), store.version(), []

        def read(since: datetime) -> Any:
            reads.append(since)
            return store.newest_since(since)

        for minutes in (0, 0.5, 3, 4, 5, 6, 7):
            since = T0 + timedelta(minutes=minutes)
            assert kept.newest_since(version, since, read) == store.newest_since(since), minutes
        assert reads == [T0]  # one read, at the earliest moment; the later ones from it
        assert kept.newest_since(version, T0 - timedelta(minutes=1), read) == store.newest_since(
            T0 - timedelta(minutes=1)
        )
        assert reads == [T0, T0 - timedelta(minutes=1)]  # earlier than kept: read again
    finally:
        engine.dispose()


def test_a_read_that_ends_after_the_version_moved_on_is_not_kept() -> None:
    kept = KeptReads()
    late: list[str] = []

    def slow_read() -> str:
        # While this read was under way, another render read version 2 and kept its own.
        assert kept.get(2, "k", lambda: "two") == "two"
        late.append("done")
        return "one"

    assert kept.get(1, "k", slow_read) == "one"
    assert late == ["done"]
    assert kept.get(2, "k", lambda: "not read") == "two"
    assert kept.get(3, "k", lambda: "three") == "three"  # another version: read again
