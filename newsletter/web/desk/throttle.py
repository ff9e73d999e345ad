"""Sign-in throttling per account name and per client address, kept in the database so
every process serving the desk counts the same failures.

After ``FREE_FAILURES`` failures in a row a key is locked for a second, then two, four, …
up to ``MAX_WAIT``. A success clears the account's count (not the address's: one account
of one's own must not reset a guessing run against others from the same address).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from ...store import Store
from ...store import desk as desk_store

FREE_FAILURES = 5
FIRST_WAIT = 1.0
MAX_WAIT = 15 * 60.0


def keys(name: str, address: str) -> tuple[str, str]:
    # Names are compared as typed, lower-cased: "Alice" and "alice" share one count.
    return f"name:{name.strip().lower()[:150]}", f"addr:{address[:150]}"


def wait_after(failures: int) -> float:
    """Seconds locked after ``failures`` failures in a row (0: not locked)."""
    if failures < FREE_FAILURES:
        return 0.0
    return min(FIRST_WAIT * 2 ** min(failures - FREE_FAILURES, 30), MAX_WAIT)


class Throttle:
    def __init__(self, store: Store) -> None:
        self.store = store

    def retry_after(self, name: str, address: str) -> int:
        """Whole seconds until a sign-in may be tried (0: now)."""
        now = self.store.now()
        with self.store.engine.connect() as conn:
            until = desk_store.locked_until(conn, list(keys(name, address)))
        if until is None or until <= now:
            return 0
        return max(1, math.ceil((until - now).total_seconds()))

    def failed(self, name: str, address: str) -> None:
        now = self.store.now()
        with self.store.engine.begin() as conn:
            for key in keys(name, address):
                count = desk_store.count_failure(conn, key, now)
                desk_store.lock(conn, key, self._until(count, now))

    def succeeded(self, name: str) -> None:
        with self.store.engine.begin() as conn:
            desk_store.clear(conn, keys(name, "")[0])

    @staticmethod
    def _until(failures: int, now: datetime) -> datetime | None:
        wait = wait_after(failures)
        return now + timedelta(seconds=wait) if wait else None
