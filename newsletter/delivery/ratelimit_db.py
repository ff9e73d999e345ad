"""Token buckets shared by every sender process through a ``rate_buckets`` row.

A provider's limits are per account, not per process: two workers that each kept their
own bucket would send at twice the allowed rate. Each bucket is one row (``tokens`` left,
``updated`` when it was last refilled). Taking tokens is a single conditional ``UPDATE``:
the row refills for the time gone by and pays out only if enough is there. PostgreSQL
locks the row for the statement and re-checks the condition against the newest version
when two workers collide; SQLite runs the statement under its database-wide write lock.

To keep round trips low, a process takes tokens in chunks (a tenth of a second's worth by
default) and pays later calls from that reserve. Everything a process spends was granted
by the row, so the shared rate holds; a burst may exceed ``capacity`` by at most one
chunk per process. Hosts must keep their clocks in step (NTP), as the leases already need;
``updated`` never moves back, so a host whose clock lags waits the lag out rather than
refilling the bucket a second time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, case, literal, select, update

from ..store import Store
from ..store.db import dialect_insert
from ..store.tables import rate_buckets

#: How many seconds' worth of tokens one database round trip takes at most.
CHUNK_SECONDS = 0.1
#: Another process may have taken what the row held a moment ago; never spin on zero.
SHORTEST_WAIT = 0.001
#: Epoch seconds carry rounding error of about 1e-7 s; a microsecond's tokens absorb it, so
#: a bucket that slept exactly long enough is not sent back to sleep for a rounding error.
TIME_SLACK = 1e-6


class SharedTokenBucket:
    """``rate`` tokens per second across all processes, bursts up to ``capacity``.

    ``acquire`` behaves as ``TokenBucket.acquire``: it blocks until ``amount`` tokens are
    granted and returns the seconds waited; a rate of 0 means no limit (and no queries).
    """

    def __init__(
        self,
        store: Store,
        name: str,
        rate: float,
        capacity: float | None = None,
        *,
        chunk_seconds: float = CHUNK_SECONDS,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.name = name
        self.rate = rate
        self.capacity = capacity if capacity is not None else max(rate, 1.0)
        self.chunk = min(self.capacity, rate * chunk_seconds)
        self._clock = clock
        self._sleep = sleep
        self._reserve = 0.0
        self._row_exists = False
        self._lock = threading.Lock()

    def acquire(self, amount: float = 1.0) -> float:
        """Block until ``amount`` tokens are granted; returns the seconds waited."""
        if self.rate <= 0:
            return 0.0
        with self._lock:  # the process's threads share one reserve
            if self._reserve >= amount:
                self._reserve -= amount
                return 0.0
            chunk = max(amount - self._reserve, self.chunk)
            waited = self._take(chunk)
            self._reserve += chunk - amount
            return waited

    def _take(self, amount: float) -> float:
        """Take ``amount`` from the shared row, sleeping until it can pay."""
        # As in TokenBucket: a request larger than the bucket goes once the bucket is full.
        need = min(amount, self.capacity)
        waited = 0.0
        while True:
            delay = self._try(amount, need)
            if delay <= 0:
                return waited
            self._sleep(delay)
            waited += delay

    def _try(self, amount: float, need: float) -> float:
        """0 when ``amount`` was taken, else the seconds until ``need`` should be there."""
        now = self._clock()
        with self.store.engine.begin() as conn:
            if not self._row_exists:
                self._create_row(conn, now)
            if self._pay(conn, amount, need, now):
                return 0.0
            level = self._level(conn, now)
        if level is None:  # the row was deleted under us: make it again on the next try
            self._row_exists = False
            return SHORTEST_WAIT
        return max((need - level) / self.rate, SHORTEST_WAIT)

    def _pay(self, conn: Connection, amount: float, need: float, now: float) -> bool:
        level = _refilled(now, self.rate, self.capacity)
        paid = conn.execute(
            update(rate_buckets)
            .where(rate_buckets.c.name == self.name, level >= need - self.rate * TIME_SLACK)
            .values(tokens=level - amount, updated=_later(now))
            .returning(rate_buckets.c.name)
        ).first()
        return paid is not None

    def _level(self, conn: Connection, now: float) -> float | None:
        row = conn.execute(
            select(rate_buckets.c.tokens, rate_buckets.c.updated).where(
                rate_buckets.c.name == self.name
            )
        ).first()
        if row is None:
            return None
        elapsed = max(0.0, now - float(row.updated))
        return min(self.capacity, float(row.tokens) + elapsed * self.rate)

    def _create_row(self, conn: Connection, now: float) -> None:
        """A new bucket starts full; an existing row (another process's) is left alone."""
        conn.execute(
            dialect_insert(conn, rate_buckets)
            .values(name=self.name, tokens=self.capacity, updated=now)
            .on_conflict_do_nothing(index_elements=["name"])
        )
        self._row_exists = True

    def __repr__(self) -> str:
        return f"<SharedTokenBucket {self.name} {self.rate:g}/s>"


class SharedBuckets:
    """Makes the engine's buckets shared ones: ``SharedBuckets(store)(name, rate, capacity)``."""

    def __init__(self, store: Store, *, chunk_seconds: float = CHUNK_SECONDS) -> None:
        self.store = store
        self.chunk_seconds = chunk_seconds

    def __call__(self, name: str, rate: float, capacity: float) -> SharedTokenBucket:
        return SharedTokenBucket(self.store, name, rate, capacity, chunk_seconds=self.chunk_seconds)


def _refilled(now: float, rate: float, capacity: float) -> Any:
    """The row's tokens after refilling up to ``now`` (a clock behind the row adds nothing)."""
    stamp = rate_buckets.c.updated
    elapsed = case((stamp < now, literal(now) - stamp), else_=literal(0.0))
    level = rate_buckets.c.tokens + elapsed * rate
    return case((level > capacity, literal(capacity)), else_=level)


def _later(now: float) -> Any:
    """``updated`` never moves back, so a host with a slow clock cannot refill twice."""
    return case((rate_buckets.c.updated < now, literal(now)), else_=rate_buckets.c.updated)
