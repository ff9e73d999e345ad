"""The daemon's main thread: waiting for a stop signal, and renewing the lock meanwhile."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from newsletter.cli.daemon import StopSignals, keep_lease
from newsletter.errors import LockError
from newsletter.schedule.lock import LeaseLock
from newsletter.store import Store
from newsletter.store.tables import locks


class Ticker:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class Beats:
    """Stands in for the OS: each ``wait`` lets its timeout pass, then maybe a signal comes."""

    def __init__(self, ticker: Ticker, quiet_beats: int, then: signal.Signals) -> None:
        self.ticker = ticker
        self.left = quiet_beats
        self.then = then
        self.timeouts: list[float] = []

    def wait(self, timeout: float) -> signal.Signals | None:
        self.timeouts.append(timeout)
        if self.left == 0:
            return self.then
        self.left -= 1
        self.ticker.now += timeout
        return None


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 'lease.db'}")
    yield opened
    opened.close()


def test_stop_signals_wake_the_wait_and_are_put_back_afterwards() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with StopSignals() as signals:
        assert signals.wait(0) is None
        os.kill(os.getpid(), signal.SIGTERM)
        assert signals.wait(60) == signal.SIGTERM
        assert signals.wait(60) == signal.SIGTERM  # it stays received
    assert signal.getsignal(signal.SIGTERM) == before


def test_the_lease_is_renewed_three_times_a_lease_until_a_signal(store: Store) -> None:
    ticker = Ticker()
    lock = LeaseLock(store, lease_seconds=90, owner="host-a:1:aa", clock=ticker)
    beats = Beats(ticker, quiet_beats=4, then=signal.SIGINT)
    with lock:
        assert keep_lease(lock, beats) == signal.SIGINT
        holder = lock.holder()
    assert beats.timeouts == [30.0] * 5
    assert holder is not None and holder.until == 1_800_000_000.0 + 4 * 30 + 90


def test_a_lock_taken_over_meanwhile_stops_the_daemon(store: Store) -> None:
    ticker = Ticker()
    lock = LeaseLock(store, lease_seconds=90, owner="host-a:1:aa", clock=ticker)
    with lock:
        with store.engine.begin() as conn:
            conn.execute(locks.update().values(owner="host-b:2:bb"))
        with pytest.raises(LockError, match="lost the 'scheduler' lock: host-b:2:bb"):
            keep_lease(lock, Beats(ticker, quiet_beats=3, then=signal.SIGTERM))


def test_a_database_gone_for_a_whole_lease_stops_the_daemon(
    store: Store,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ticker = Ticker()
    lock = LeaseLock(store, lease_seconds=90, owner="host-a:1:aa", clock=ticker)
    lock.acquire()
    with store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE locks RENAME TO locks_away"))
    with pytest.raises(LockError, match="could not renew the scheduler lock for a whole lease"):
        keep_lease(lock, Beats(ticker, quiet_beats=10, then=signal.SIGTERM))
    retries = [m for m in caplog.messages if m.startswith("could not renew the scheduler lock")]
    assert len(retries) == 2  # at 30 s and 60 s; at 90 s the lease is over
