"""The sign-in ledger's contract, run over both of its forms: this process's memory and Redis."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from watchtower.ledger import Ledger, LedgerUnavailable, MemoryLedger, RedisLedger, ledger_for


@pytest.fixture(params=["memory", "redis"])
def ledger(request: pytest.FixtureRequest) -> Iterator[Ledger]:
    if request.param == "memory":
        yield MemoryLedger()
        return
    made, close = ledger_for(request.getfixturevalue("redis_url"))
    assert isinstance(made, RedisLedger)
    yield made
    close()


def test_hits_count_in_a_window_opened_by_the_first(ledger: Ledger) -> None:
    assert ledger.peek("a") == (0, 0)
    assert ledger.hit("a", 60)[0] == 1
    count, left = ledger.hit("a", 60)
    assert count == 2 and 55 <= left <= 60
    assert ledger.peek("a")[0] == 2
    assert ledger.peek("b") == (0, 0)
    ledger.clear("a")
    assert ledger.peek("a") == (0, 0)


def test_a_window_ends(ledger: Ledger) -> None:
    ledger.hit("short", 1)
    ledger.mark("flag", 1)
    assert ledger.values("flag") == [1]
    time.sleep(1.2)
    assert ledger.peek("short") == (0, 0)
    assert ledger.values("flag") == [0]
    assert ledger.hit("short", 1)[0] == 1  # a new window


def test_numbers_kept_without_expiry(ledger: Ledger) -> None:
    assert ledger.values("g1", "g2", "missing") == [0, 0, 0]
    assert ledger.bump("g1") == 1
    assert ledger.bump("g1") == 2
    assert ledger.values("g1", "g2") == [2, 0]


def test_a_redis_that_does_not_answer_is_a_store_unavailable() -> None:
    made, close = ledger_for("redis://127.0.0.1:9/0")  # nothing listens on port 9
    with pytest.raises(LedgerUnavailable, match="sign-in ledger"):
        made.peek("a")
    close()
