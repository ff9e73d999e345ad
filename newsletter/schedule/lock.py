"""One scheduler per database: a lease in the ``locks`` table, renewed while it is held.

The lease behaves the same on SQLite and PostgreSQL and across hosts: a holder that dies
stops renewing, its lease runs out, and the next scheduler to start takes over. Two
shortcuts make a takeover quicker without weakening the rule:

* a holder on this host whose process has gone is replaced at once;
* on PostgreSQL, contenders first race for a session advisory lock on a dedicated
  connection. The server drops it with the connection, so whoever wins it knows that no
  other live scheduler holds the lease, whatever the row still says.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, delete, select, text, update
from sqlalchemy.exc import SQLAlchemyError

from ..errors import LockError, StoreError
from ..processes import owner_is_dead, worker_identity
from ..store import Store
from ..store.db import dialect_insert
from ..store.tables import locks

log = logging.getLogger(__name__)

SCHEDULER_LOCK = "scheduler"


@dataclass(frozen=True, slots=True)
class LockHolder:
    """Who holds a lock, and until when (seconds since the epoch) unless they renew it."""

    name: str
    owner: str
    until: float

    @property
    def until_utc(self) -> datetime:
        return datetime.fromtimestamp(self.until, UTC)

    def expired(self, now: float) -> bool:
        return self.until < now

    def describe(self, now: float) -> str:
        when = f"{self.until_utc:%Y-%m-%d %H:%M:%S} UTC"
        state = f"lease expired at {when}" if self.expired(now) else f"lease until {when}"
        return f"{self.owner} ({state})"


def current_holder(conn: Connection, name: str = SCHEDULER_LOCK) -> LockHolder | None:
    row = conn.execute(select(locks.c.owner, locks.c.until).where(locks.c.name == name)).first()
    return LockHolder(name, row.owner, float(row.until)) if row is not None else None


class LeaseLock:
    """A named lock held for ``lease_seconds`` at a time; ``renew`` well before it runs out."""

    def __init__(
        self,
        store: Store,
        *,
        lease_seconds: float,
        name: str = SCHEDULER_LOCK,
        owner: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.name = name
        self.owner = owner or worker_identity()
        self.lease_seconds = lease_seconds
        self.clock = clock
        self._advisory = AdvisoryLock(store, name) if store.dialect == "postgresql" else None

    def acquire(self) -> None:
        """Take the lock or raise ``LockError`` naming whoever holds it."""
        if self._advisory is not None and not self._advisory.try_acquire():
            raise self._held_elsewhere()
        try:
            taken = self._guarded(self._take)
        except BaseException:
            self._release_advisory()
            raise
        if not taken:
            self._release_advisory()
            raise self._held_elsewhere()

    def renew(self) -> None:
        """Extend the lease; ``LockError`` if another scheduler has taken it meanwhile."""

        def extend(conn: Connection) -> int:
            return int(
                conn.execute(
                    update(locks)
                    .where(locks.c.name == self.name, locks.c.owner == self.owner)
                    .values(until=self.clock() + self.lease_seconds)
                ).rowcount
            )

        if not self._guarded(extend):
            raise LockError(f"lost the {self.name!r} lock: {self._holder_text()}")

    def release(self) -> None:
        """Give the lock up (a no-op if it is no longer ours)."""
        try:
            self._guarded(
                lambda conn: conn.execute(
                    delete(locks).where(locks.c.name == self.name, locks.c.owner == self.owner)
                )
            )
        finally:
            self._release_advisory()

    def holder(self) -> LockHolder | None:
        return self._guarded(lambda conn: current_holder(conn, self.name))

    def __enter__(self) -> LeaseLock:
        self.acquire()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    # -- taking the row ------------------------------------------------------------------
    def _take(self, conn: Connection) -> bool:
        now = self.clock()
        stmt = dialect_insert(conn, locks).values(
            name=self.name, owner=self.owner, until=now + self.lease_seconds
        )
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[locks.c.name],
                set_={"owner": stmt.excluded.owner, "until": stmt.excluded.until},
                where=(locks.c.until < now) | (locks.c.owner == self.owner),
            )
        )
        holder = current_holder(conn, self.name)
        if holder is None or holder.owner == self.owner:
            return holder is not None
        if self._advisory is not None or owner_is_dead(holder.owner):
            return self._take_over(conn, holder, now)
        return False

    def _take_over(self, conn: Connection, holder: LockHolder, now: float) -> bool:
        """Replace a holder known to be gone, unless it renewed in the meantime."""
        result = conn.execute(
            update(locks)
            .where(
                locks.c.name == self.name,
                locks.c.owner == holder.owner,
                locks.c.until == holder.until,
            )
            .values(owner=self.owner, until=now + self.lease_seconds)
        )
        return result.rowcount == 1

    def _held_elsewhere(self) -> LockError:
        return LockError(
            f"another scheduler is already running on this database: the {self.name!r} lock is "
            f"held by {self._holder_text()}; stop it first, or wait for its lease to expire"
        )

    def _holder_text(self) -> str:
        holder = self.holder()
        return holder.describe(self.clock()) if holder is not None else "nobody (it was released)"

    def _release_advisory(self) -> None:
        if self._advisory is not None:
            self._advisory.release()

    def _guarded(self, work: Callable[[Connection], Any]) -> Any:
        """Run ``work`` in a transaction; database failures become ``StoreError``."""
        try:
            with self.store.engine.begin() as conn:
                return work(conn)
        except SQLAlchemyError as exc:
            raise StoreError(f"scheduler lock {self.name!r}: {exc}") from exc


class AdvisoryLock:
    """A PostgreSQL session advisory lock, held on a connection of its own until released."""

    def __init__(self, store: Store, name: str) -> None:
        self.store = store
        self.name = name
        self._conn: Connection | None = None
        self._key = 0

    def try_acquire(self) -> bool:
        conn = self.store.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            schema = conn.execute(text("SELECT current_schema()")).scalar_one()
            self._key = _advisory_key(schema, self.name)
            taken = conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key})
            held = bool(taken.scalar_one())
        except SQLAlchemyError as exc:
            conn.close()
            raise StoreError(f"advisory lock {self.name!r}: {exc}") from exc
        if not held:
            conn.close()
            return False
        self._conn = conn
        return True

    def release(self) -> None:
        """Unlock at once; a session that cannot say so is dropped, which unlocks it as well."""
        if self._conn is None:
            return
        conn, self._conn = self._conn, None
        try:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
        except SQLAlchemyError:
            conn.invalidate()
        finally:
            conn.close()


def _advisory_key(schema: str, name: str) -> int:
    """A signed 64-bit key: one lock per schema, since tests and tenants may share a database."""
    digest = hashlib.blake2b(f"newsletter:{schema}:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class LeaseKeeper:
    """Keep a taken ``lock`` for a ``with`` block that does the work itself (``run --once``).

    The lease is renewed from a thread a few times per lease while the block runs, and
    released on exit. A renewal the database refuses is retried; once a whole lease has
    gone by without one, or another scheduler has taken the lock over, ``lost`` says why.
    """

    def __init__(self, lock: LeaseLock) -> None:
        self.lock = lock
        self.lost: str = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name="lease-keeper", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self.lock.release()

    def _renew(self) -> None:
        renewed_at = self.lock.clock()
        while not self._stop.wait(self.lock.lease_seconds / 3):
            try:
                self.lock.renew()
            except LockError as exc:
                self._give_up(str(exc))
                return
            except StoreError as exc:
                if self.lock.clock() - renewed_at >= self.lock.lease_seconds:
                    self._give_up(f"could not renew the scheduler lock for a whole lease: {exc}")
                    return
                log.warning("could not renew the scheduler lock; trying again: %s", exc)
            else:
                renewed_at = self.lock.clock()

    def _give_up(self, why: str) -> None:
        self.lost = why
        log.error("%s", why)
