"""Token buckets shared through the database: the same answers as ``TokenBucket``, one row.

Each "process" is a bucket on a ``Store`` of its own (its own connections), as a worker on
another host would have. Time is a fake clock that passes only when a bucket sleeps, so the
waits are exact; one test uses real threads and the real clock to check the shared rate.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import delete, event, select

from newsletter.delivery.ratelimit_db import SharedBuckets, SharedTokenBucket
from newsletter.store import Store
from newsletter.store.tables import rate_buckets
from tests.clocks import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def other_store(database_url: str) -> Iterator[Store]:
    """The same database through other connections: a second process."""
    opened = Store.open(database_url)
    yield opened
    opened.close()


def bucket(
    store: Store, clock: FakeClock, rate: float, capacity: float | None = None, **kw: Any
) -> SharedTokenBucket:
    kw.setdefault("chunk_seconds", 0.0)  # exactly what is asked, so each wait is visible
    return SharedTokenBucket(
        store, "mailgun:requests", rate, capacity, clock=clock.time, sleep=clock.sleep, **kw
    )


def row(store: Store) -> tuple[float, float]:
    with store.engine.connect() as conn:
        found = conn.execute(select(rate_buckets.c.tokens, rate_buckets.c.updated)).one()
    return float(found.tokens), float(found.updated)


def approx(value: float) -> Any:
    return pytest.approx(value, abs=1e-6)


def test_a_full_bucket_pays_at_once_then_refills_at_the_rate(
    store: Store, clock: FakeClock
) -> None:
    limiter = bucket(store, clock, rate=10)
    assert limiter.acquire(10) == 0.0
    assert limiter.acquire(1) == approx(0.1)
    assert limiter.acquire(5) == approx(0.5)
    assert row(store) == (approx(0.0), approx(clock.now))


def test_two_processes_draw_from_one_row(
    store: Store, other_store: Store, clock: FakeClock
) -> None:
    first, second = bucket(store, clock, rate=10), bucket(other_store, clock, rate=10)
    assert first.acquire(10) == 0.0
    assert second.acquire(4) == approx(0.4)  # what the first took is gone for both
    assert first.acquire(2) == approx(0.2)
    assert clock.slept == [approx(0.4), approx(0.2)]


def test_a_request_larger_than_the_bucket_goes_once_it_is_full(
    store: Store, clock: FakeClock
) -> None:
    limiter = bucket(store, clock, rate=10, capacity=10)
    assert limiter.acquire(25) == 0.0  # a 25-message batch under a 10-message bucket
    assert row(store)[0] == approx(-15.0)
    assert limiter.acquire(1) == approx(1.6)  # the debt, then the token itself


def test_chunks_keep_round_trips_low(store: Store, clock: FakeClock) -> None:
    limiter = bucket(store, clock, rate=100, chunk_seconds=0.1)  # 10 tokens a trip
    updates: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE RATE_BUCKETS"):
            updates.append(statement)

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        waits = [limiter.acquire(1) for _ in range(20)]
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
    assert waits == [0.0] * 20
    assert len(updates) == 2
    assert row(store)[0] == approx(80.0)  # 100 to start, two chunks of ten taken


def test_no_rate_means_no_limit_and_no_queries(store: Store, clock: FakeClock) -> None:
    limiter = bucket(store, clock, rate=0)
    assert [limiter.acquire(1000) for _ in range(3)] == [0.0, 0.0, 0.0]
    with store.engine.connect() as conn:
        assert conn.execute(select(rate_buckets)).all() == []


def test_a_deleted_row_is_made_again_full(store: Store, clock: FakeClock) -> None:
    limiter = bucket(store, clock, rate=10)
    assert limiter.acquire(10) == 0.0
    with store.engine.begin() as conn:
        conn.execute(delete(rate_buckets))
    assert limiter.acquire(10) == approx(0.001)  # one short retry, then a fresh full bucket
    assert row(store)[0] == approx(0.0)


def test_a_clock_behind_the_row_adds_no_tokens(
    store: Store, other_store: Store, clock: FakeClock
) -> None:
    ahead = bucket(store, clock, rate=10)
    assert ahead.acquire(10) == 0.0
    behind_clock = FakeClock(clock.now - 0.05)  # a host whose clock runs 50 ms slow
    behind = bucket(other_store, behind_clock, rate=10)
    assert behind.acquire(1) == approx(0.15)  # it waits out the lag, then the token
    # Its attempts while behind left ``updated`` alone; the pay-out stamped its own time.
    assert row(store) == (approx(0.0), approx(behind_clock.now))
    assert behind_clock.now == approx(clock.now + 0.1)


def test_threads_on_their_own_connections_share_the_rate(database_url: str) -> None:
    rate, capacity, per_thread, threads = 200.0, 20.0, 40, 4
    stores = [Store.open(database_url) for _ in range(threads)]
    make = [SharedBuckets(s) for s in stores]
    barrier = threading.Barrier(threads)

    def spend(index: int) -> None:
        limiter = make[index]("resend:requests", rate, capacity)
        barrier.wait()
        for _ in range(per_thread):
            limiter.acquire(1)

    started = time.monotonic()
    workers = [threading.Thread(target=spend, args=(i,)) for i in range(threads)]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        elapsed = time.monotonic() - started
    finally:
        for store in stores:
            store.close()
    # Everything spent was granted by the one row: its capacity, a chunk held by each
    # thread, then the rate. So it cannot have gone faster than this (separate buckets,
    # one per thread, would have been done in a quarter of the time).
    beyond_bursts = per_thread * threads - capacity - threads * rate * 0.1
    assert elapsed >= beyond_bursts / rate
