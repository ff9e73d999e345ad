"""The addresses already read for one list, kept on disk: a million-member list's
de-duplication costs disk pages, not hundreds of megabytes of memory."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

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
        self._db.execute(
            "CREATE TABLE seen (key TEXT PRIMARY KEY, file INT, line INT) WITHOUT ROWID"
        )
        self._db.execute("BEGIN")

    def first(self, key: str, file: int, line: int) -> tuple[int, int] | None:
        """Record ``key`` at (file, line); if it was already there, where it was first."""
        if self._earlier is not None and (before := self._earlier(key)) is not None:
            return before
        cursor = self._db.execute("INSERT OR IGNORE INTO seen VALUES (?, ?, ?)", (key, file, line))
        if cursor.rowcount:
            return None
        found = self._db.execute("SELECT file, line FROM seen WHERE key = ?", (key,)).fetchone()
        return (int(found[0]), int(found[1]))

    def close(self) -> None:
        self._db.close()
