"""The addresses already read for one list, kept in a private SQLite database: a
million-member list's de-duplication costs about 50 MB of pages, not the few hundred a
Python set of its addresses would.

Its pages stay in memory up to ``PAGE_CACHE_KIB``, about a million members' worth; a larger
list's spill to a temporary file. With SQLite's default cache of 2 MB every new address (they
come in no order) evicted a page to that file and read another back: a third of the time of
checking a million-member list went to the disk (``bench/members.py``, ``checked``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

import orjson

#: The most memory the database's pages take before they spill to a file (KiB).
PAGE_CACHE_KIB = 64 * 1024
#: Where an address was first read, as (file index, line), if it was.
Earlier = Callable[[str], "tuple[int, int] | None"]


class SeenAddresses:
    """Addresses already read for one list, with the file and line of each (first wins).

    ``earlier``: where an address was read in files this read starts after (a check taken
    up again after its first files, ``keptfiles``); those come first."""

    def __init__(self, earlier: Earlier | None = None) -> None:
        self._earlier = earlier
        # An empty file name gives a private on-disk database that SQLite deletes on close.
        self._db = sqlite3.connect("", isolation_level=None)
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute(f"PRAGMA cache_size=-{PAGE_CACHE_KIB}")
        self._db.execute(
            "CREATE TABLE seen (key TEXT PRIMARY KEY, file INT, line INT) WITHOUT ROWID"
        )
        self._db.execute("BEGIN")

    def firsts(self, read: Sequence[tuple[str, int, int]]) -> list[tuple[int, int] | None]:
        """Record each key of ``read`` (key, file, line: a block of rows, in file order); for
        each, where it was first read if that was elsewhere, else None. In one statement: a
        statement a row was three quarters of checking a list. A block with no repeat, the
        common case, is answered by the count of rows it added alone."""
        found: list[tuple[int, int] | None] = (
            [self._earlier(key) for key, _, _ in read] if self._earlier else [None] * len(read))
        fresh = [entry for entry, before in zip(read, found, strict=True) if before is None]
        added = self._db.total_changes
        self._db.executemany("INSERT OR IGNORE INTO seen VALUES (?, ?, ?)", fresh)
        if self._db.total_changes - added == len(fresh):
            return found
        where = {key: (file, line) for key, file, line in self._db.execute(
            "SELECT key, file, line FROM seen WHERE key IN (SELECT value FROM json_each(?))",
            (orjson.dumps([key for key, _, _ in fresh]).decode(),),
        )}  # each of the block's keys: the row's own place, or an earlier row's
        return [before if before is not None else _elsewhere(where[key], (file, line))
                for (key, file, line), before in zip(read, found, strict=True)]

    def close(self) -> None:
        self._db.close()


def _elsewhere(first: tuple[int, int], here: tuple[int, int]) -> tuple[int, int] | None:
    return None if first == here else first
