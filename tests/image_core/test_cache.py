"""The Redis gallery cache, against a real redis-server: hits, invalidation, sweeps by SCAN
(never KEYS), Redis down."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient

from image_core.api import create_app
from image_core.app import Components
from image_core.cache import (
    RedisGalleryCache,
    connect,
    generation_key,
    page_key,
    pages_pattern,
)
from tests.helpers import image_bytes
from tests.image_core.readback import metric
from watchtower.sandbox import servers

ALICE = {"X-User-Id": "alice"}
BOB = {"X-User-Id": "bob"}


def upload(client: FlaskClient, headers: dict[str, str] = ALICE) -> Any:
    return client.post(
        "/images",
        headers=headers,
        data={"file": (io.BytesIO(image_bytes()), "photo.jpg", "image/jpeg")},
        content_type="multipart/form-data",
    )


def pages(client: redis.Redis) -> set[str]:
    # SCAN here too: the point of this file is that nothing needs KEYS.
    return set(client.scan_iter(match="gallery:*", count=1000))


def page_keys(client: redis.Redis) -> set[str]:
    return {k for k in pages(client) if ":p:" in k}


def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    """The sweep runs on the service's pool after the response: wait for it, boundedly."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def command_calls(client: redis.Redis) -> dict[str, int]:
    """Calls per command since the last CONFIG RESETSTAT, e.g. {"scan": 3, "unlink": 1200}."""
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(s["calls"]) for name, s in stats.items()}


@pytest.fixture
def inspector(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def cached(make_components: Callable[..., Components], redis_url: str) -> Components:
    return make_components(redis_url=redis_url)


@pytest.fixture
def cached_client(cached: Components) -> FlaskClient:
    return create_app(components=cached).test_client()


def cache_events(components: Components, event: str) -> float | None:
    components.telemetry._sink.flush()  # type: ignore[attr-defined]
    return metric(components.settings, "CacheEvents", {"Event": event})


# -- hits and misses ------------------------------------------------------------------------------


def test_keys_are_hash_tagged_per_user() -> None:
    assert page_key("alice", "0", 20, None) == "gallery:{alice}:p:0:20:-"
    assert page_key("alice", "9f", 5, "abc") == "gallery:{alice}:p:9f:5:abc"
    assert generation_key("alice") == "gallery:{alice}:gen"
    assert pages_pattern("alice") == "gallery:{alice}:p:*"


def test_first_list_misses_and_fills_the_cache_second_is_a_hit(
    cached: Components, cached_client: FlaskClient, inspector: redis.Redis
) -> None:
    image_id = upload(cached_client).json["id"]
    first = cached_client.get("/images", headers=ALICE)
    assert first.status_code == 200
    generation = inspector.get(generation_key("alice"))
    (key,) = page_keys(inspector)
    assert key == page_key("alice", generation, 20, None)
    assert 0 < inspector.ttl(key) <= cached.settings.cache_ttl_seconds

    second = cached_client.get("/images", headers=ALICE)
    assert second.json == first.json
    assert [i["id"] for i in second.json["items"]] == [image_id]
    assert cache_events(cached, "miss") == 1
    assert cache_events(cached, "hit") == 1


def test_a_hit_is_served_from_redis(cached_client: FlaskClient, inspector: redis.Redis) -> None:
    # A page planted in Redis is what the API answers: the hit never reaches DynamoDB.
    inspector.set(page_key("alice", "0", 20, None), '{"items": [], "next_cursor": "planted"}')
    answer = cached_client.get("/images", headers=ALICE)
    assert answer.json == {"items": [], "next_cursor": "planted"}
    assert cached_client.get("/images?limit=19", headers=ALICE).json["next_cursor"] is None


def test_upload_and_delete_invalidate_only_that_users_pages(
    cached_client: FlaskClient, inspector: redis.Redis
) -> None:
    upload(cached_client, BOB)
    for query in ("", "?limit=1", "?limit=2"):
        cached_client.get(f"/images{query}", headers=ALICE)
        cached_client.get(f"/images{query}", headers=BOB)
    bob_generation = inspector.get(generation_key("bob"))
    bob_keys = {page_key("bob", bob_generation, n, None) for n in (20, 1, 2)}
    alice_keys = {page_key("alice", "0", n, None) for n in (20, 1, 2)}
    assert page_keys(inspector) == alice_keys | bob_keys

    image_id = upload(cached_client).json["id"]
    # At once: Alice's pages are unreachable (the very next list is fresh)...
    listed = cached_client.get("/images", headers=ALICE).json
    assert [i["id"] for i in listed["items"]] == [image_id]  # fresh, not the stale empty page
    # ...and soon their keys are swept; Bob's are untouched throughout.
    fresh = page_key("alice", inspector.get(generation_key("alice")), 20, None)
    assert eventually(lambda: page_keys(inspector) == bob_keys | {fresh})

    assert cached_client.delete(f"/images/{image_id}", headers=ALICE).status_code == 204
    assert cached_client.get("/images", headers=ALICE).json["items"] == []
    assert eventually(lambda: len(page_keys(inspector) - bob_keys) == 1)
    assert bob_keys <= page_keys(inspector)


def test_a_listing_that_raced_an_upload_is_never_cached_as_current(
    redis_url: str, inspector: redis.Redis
) -> None:
    client = connect(redis_url)
    try:
        cache = RedisGalleryCache(client, ttl=60)
        lookup = cache.get_page("alice", 20, None)  # a listing starts: miss, generation read
        assert lookup.page is None and lookup.generation == "0"
        cache.invalidate_user("alice")  # an upload lands while DynamoDB is being queried
        cache.put_page("alice", 20, None, {"items": ["stale"]}, lookup.generation)
        assert cache.get_page("alice", 20, None).page is None  # the stale page is unreachable
    finally:
        client.close()


def test_invalidation_uses_scan_and_unlink_never_keys(
    cached_client: FlaskClient, inspector: redis.Redis
) -> None:
    cached_client.get("/images", headers=ALICE)
    inspector.config_resetstat()
    upload(cached_client)
    assert eventually(lambda: command_calls(inspector).get("unlink") == 1)
    calls = command_calls(inspector)
    assert calls.get("scan", 0) >= 1
    assert "keys" not in calls and "del" not in calls


# -- many pages -----------------------------------------------------------------------------------


def test_one_invalidation_removes_1200_pages_in_batches(
    redis_url: str, inspector: redis.Redis
) -> None:
    pipe = inspector.pipeline(transaction=False)
    for n in range(1200):
        pipe.set(page_key("alice", "0", 20, f"cursor-{n}"), "{}")
    for n in range(30):
        pipe.set(page_key("alice2", "0", 20, f"cursor-{n}"), "{}")  # a prefix of it is "alice"
        pipe.set(f"other:{n}", "x")
    pipe.execute()
    inspector.config_resetstat()

    client = connect(redis_url)
    try:
        cache = RedisGalleryCache(client, ttl=60)  # no run_later: the sweep runs inline
        cache.invalidate_user("alice")
        assert cache.sweep_user("alice") == 0  # the first sweep left nothing behind
    finally:
        client.close()

    assert list(inspector.scan_iter(match="gallery:{alice}:p:*", count=1000)) == []
    assert inspector.dbsize() == 61  # alice2's 30 pages, 30 other keys, Alice's generation
    calls = command_calls(inspector)
    # 1260 keys at COUNT 500 take several SCAN round trips; none of them was KEYS.
    assert calls["scan"] >= 3
    assert calls["unlink"] == 1200
    assert "keys" not in calls
    # Non-transactional pipelines: no MULTI/EXEC holding the server for a whole batch.
    assert "multi" not in calls and "exec" not in calls


def test_glob_characters_in_a_user_id_match_only_that_user(
    redis_url: str, inspector: redis.Redis
) -> None:
    for user in ("a*", "ab", "a?", "a[b]"):
        inspector.set(page_key(user, "0", 20, None), "{}")
    client = connect(redis_url)
    try:
        cache = RedisGalleryCache(client, ttl=60)
        inspector.set(generation_key("a*"), "new")
        assert cache.sweep_user("a*") == 1
    finally:
        client.close()
    assert sorted(page_keys(inspector)) == [
        "gallery:{a?}:p:0:20:-",
        "gallery:{a[b]}:p:0:20:-",
        "gallery:{ab}:p:0:20:-",
    ]


# -- Redis down -----------------------------------------------------------------------------------


def test_redis_down_never_fails_a_request_and_is_counted(
    make_components: Callable[..., Components],
) -> None:
    down = make_components(redis_url=f"redis://127.0.0.1:{servers.free_port()}/0")
    client = create_app(components=down).test_client()
    created = upload(client)
    assert created.status_code == 201
    listed = client.get("/images", headers=ALICE)
    assert listed.status_code == 200
    assert [i["id"] for i in listed.json["items"]] == [created.json["id"]]
    assert client.delete(f"/images/{created.json['id']}", headers=ALICE).status_code == 204
    assert (cache_events(down, "bypass") or 0) >= 1
    assert cache_events(down, "hit") is None


def test_after_a_failure_the_cache_is_bypassed_until_the_cooldown_ends(
    redis_server: servers.RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis is down, then comes back on the same port; the cooldown is judged on a fake clock.

    (`redis_server` is requested so a missing redis-server skips, or fails in CI, as elsewhere.)
    """
    port = servers.free_port()
    now = [1000.0]
    events: list[str] = []
    client = connect(f"redis://127.0.0.1:{port}/0")
    cache = RedisGalleryCache(
        client, ttl=60, on_event=events.append, cooldown=5.0, clock=lambda: now[0]
    )
    revived: servers.RedisServer | None = None
    try:
        with caplog.at_level(logging.WARNING, logger="image_core.cache"):
            assert cache.get_page("alice", 20, None).generation is None
        assert events == ["bypass"]
        assert len(caplog.records) == 1  # it tried, and failed

        revived = servers.start_redis(port)
        other = redis.Redis(port=port, decode_responses=True)
        other.set(page_key("alice", "0", 20, None), '{"items": [], "next_cursor": null}')
        other.close()

        caplog.clear()
        now[0] += 4.9  # still cooling down: Redis is not even tried
        assert cache.get_page("alice", 20, None).generation is None
        cache.put_page("bob", 20, None, {"items": []}, "0")
        cache.invalidate_user("alice")
        assert events == ["bypass", "bypass"]
        assert caplog.records == []

        now[0] += 0.2  # the cooldown is over: tried again, and Redis is back
        assert cache.get_page("alice", 20, None).page == {"items": [], "next_cursor": None}
        assert events == ["bypass", "bypass", "hit"]
        cache.invalidate_user("alice")  # sweeps inline here
        assert cache.get_page("alice", 20, None).page is None
    finally:
        client.close()
        if revived is not None:
            revived.stop()
