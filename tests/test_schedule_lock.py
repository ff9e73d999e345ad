"""The scheduler lock on real databases: one holder, renewals, expiry and takeover."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from sqlalchemy import select, update

from newsletter.errors import LockError
from newsletter.processes import worker_identity
from newsletter.schedule.lock import LeaseKeeper, LeaseLock, current_holder
from newsletter.store import Store
from newsletter.store.tables import locks


class Ticker:
    """Seconds since the epoch, moved by hand."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def lock(store: Store, ticker: Ticker, owner: str, lease: float = 60.0) -> LeaseLock:
    return LeaseLock(store, lease_seconds=lease, owner=owner, clock=ticker)


def test_a_second_holder_is_refused_with_the_holder_named(store: Store) -> None:
    ticker = Ticker()
    first, second = lock(store, ticker, "host-a:1:aa"), lock(store, ticker, "host-b:2:bb")
    first.acquire()
    with pytest.raises(LockError, match=r"held by host-a:1:aa \(lease until 2027-01-15"):
        second.acquire()
    with store.engine.connect() as conn:
        holder = current_holder(conn)
    assert holder is not None and (holder.owner, holder.until) == ("host-a:1:aa", ticker.now + 60)
    first.release()
    second.acquire()
    assert second.holder() is not None and second.holder().owner == "host-b:2:bb"  # type: ignore[union-attr]
    second.release()


def test_renewing_extends_the_lease_and_release_frees_it(store: Store) -> None:
    ticker = Ticker()
    held = lock(store, ticker, "host-a:1:aa")
    with held:
        ticker.now += 50
        held.renew()
        assert held.holder().until == ticker.now + 60  # type: ignore[union-attr]
        ticker.now += 30  # past the first lease, within the renewed one
        with pytest.raises(LockError):
            lock(store, ticker, "host-b:2:bb").acquire()
    with store.engine.connect() as conn:
        assert current_holder(conn) is None


def test_a_lease_left_to_expire_is_taken_over_and_the_old_holder_learns_it(store: Store) -> None:
    ticker = Ticker()
    old, new = lock(store, ticker, "host-a:1:aa"), lock(store, ticker, "host-b:2:bb")
    old.acquire()
    ticker.now += 61
    if store.dialect == "postgresql":
        old._release_advisory()  # the old holder's session is gone along with the host
    new.acquire()
    with pytest.raises(LockError, match="lost the 'scheduler' lock: host-b:2:bb"):
        old.renew()
    old.release()  # not ours any more: leaves the new holder alone
    assert new.holder().owner == "host-b:2:bb"  # type: ignore[union-attr]
    new.release()


def test_a_dead_process_on_this_host_is_replaced_at_once(store: Store) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    host = worker_identity().split(":")[0]
    dead_owner = f"{host}:{child.pid}:deadbeef"
    ticker = Ticker()
    with store.engine.begin() as conn:
        conn.execute(
            locks.insert().values(name="scheduler", owner=dead_owner, until=ticker.now + 3600)
        )
    with lock(store, ticker, "host-b:2:bb") as taken:
        assert taken.holder().owner == "host-b:2:bb"  # type: ignore[union-attr]


def test_a_live_holder_elsewhere_is_waited_for_until_its_lease_ends(store: Store) -> None:
    ticker = Ticker()
    with store.engine.begin() as conn:
        conn.execute(
            locks.insert().values(
                name="scheduler", owner="elsewhere:4242:cafe", until=ticker.now + 30
            )
        )
    newcomer = lock(store, ticker, "host-b:2:bb")
    if store.dialect == "postgresql":
        # There, the advisory lock proves nobody live holds the lease: the row is stale.
        newcomer.acquire()
    else:
        with pytest.raises(LockError, match="elsewhere:4242:cafe"):
            newcomer.acquire()
        ticker.now += 31
        newcomer.acquire()
    assert newcomer.holder().owner == "host-b:2:bb"  # type: ignore[union-attr]
    newcomer.release()


def test_on_postgresql_the_advisory_lock_refuses_a_live_contender(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("advisory locks are PostgreSQL's")
    first_store, second_store = Store.open(database_url), Store.open(database_url)
    try:
        ticker = Ticker()
        first = lock(first_store, ticker, "host-a:1:aa")
        first.acquire()
        # Even with the lease row gone stale, the live session keeps the lock.
        with first_store.engine.begin() as conn:
            conn.execute(update(locks).values(until=0.0))
        with pytest.raises(LockError, match="host-a:1:aa"):
            lock(second_store, ticker, "host-b:2:bb").acquire()
        first.release()
        second = lock(second_store, ticker, "host-b:2:bb")
        second.acquire()
        with second_store.engine.connect() as conn:
            assert conn.execute(select(locks.c.owner)).scalar_one() == "host-b:2:bb"
        second.release()
    finally:
        first_store.close()
        second_store.close()


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` (a renewal thread works on its own); fail after a generous minute."""
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.05)


def test_the_keeper_renews_the_lease_while_a_run_once_works(store: Store) -> None:
    held = LeaseLock(store, lease_seconds=0.6, owner="host-a:1:aa")
    held.acquire()
    first_until = held.holder().until  # type: ignore[union-attr]
    with LeaseKeeper(held) as keeper:
        wait_until(lambda: held.holder().until > first_until, "a renewal")  # type: ignore[union-attr]
        with pytest.raises(LockError, match="held by host-a:1:aa"):
            LeaseLock(store, lease_seconds=0.6, owner="host-b:2:bb").acquire()
    assert keeper.lost == ""
    with store.engine.connect() as conn:
        assert current_holder(conn) is None  # released at the end of the run


def test_the_keeper_says_when_another_scheduler_took_the_lock_over(store: Store) -> None:
    held = LeaseLock(store, lease_seconds=0.6, owner="host-a:1:aa")
    held.acquire()
    with LeaseKeeper(held) as keeper:
        with store.engine.begin() as conn:
            conn.execute(update(locks).values(owner="host-b:2:bb", until=time.time() + 60))
        wait_until(lambda: bool(keeper.lost), "the keeper to notice")
    assert "lost the 'scheduler' lock" in keeper.lost and "host-b:2:bb" in keeper.lost
    with store.engine.connect() as conn:
        holder = current_holder(conn)
    assert holder is not None and holder.owner == "host-b:2:bb"  # not released by the loser
