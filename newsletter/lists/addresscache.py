"""A persistent cache of email-validator's verdicts on addresses it has already accepted.

Validating an address costs about 100 µs (most of it IDNA checks of the domain), so a
1,000,000-member list would spend minutes being re-validated before every send. The
verdict for a given string never changes for a given email-validator version, so accepted
addresses are remembered, keyed by the exact text, in a SQLite file under ``var/cache/``
named after that version, and so are refused ones with their reason (a list with 10 % bad
rows otherwise paid for validating each of them again on every read). Deliverability
checks (DNS) are never cached.

A whole member file can be vouched for too: once every row of a file has been read with no
problem and every address was already in its normalised form, the file's SHA-256 is
recorded, and a later read of the same bytes skips the per-address look-ups altogether
(a million-row file is hashed in about 50 ms; looking each address up costs seconds).
A file whose rows were not all clean is remembered too when every row that was not is one
the lean path can replay: a refused row (with its line and reason) or an address that was
not in its normalised form (with that form), keyed by the row's place among the file's
records. Any change to the file changes its digest, and it is read the full way again.

A reader who is forgotten is forgotten here too (``forget``): every spelling of their
address, a refusal of it, and the notes of any file that named it.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import email_validator

#: Verdicts held before they are stored in one transaction (``flush``), sorted: see
#: ``validateworker`` for what smaller transactions cost.
COMMIT_EVERY = 100_000


class Spelling(NamedTuple):
    """One way an address was written, and the cache's verdict on it."""

    as_written: str
    normalised: str | None
    refused: str | None


def _address_key(text: str | None) -> str | None:
    """As ``members.address_key`` (which imports this module): how addresses compare."""
    return None if text is None else text.strip().lower()


class RowNote(NamedTuple):
    """What the lean path must do with one record of a remembered file: refuse it (``reason``)
    or send to ``normalised`` instead of the address as written."""

    line: int
    normalised: str | None
    reason: str | None


def _in_key_order(verdicts: dict[str, str]) -> list[tuple[str, str]]:
    """The items sorted by their keys alone, which are unique: comparing pairs costs about
    four times as much (a million sorted at once: 1.7 s of CPU against 0.4 s; in a first
    read's transactions of 100,000, 0.45 s a million)."""
    return [(raw, verdicts[raw]) for raw in sorted(verdicts)]


def cache_path(var_dir: Path) -> Path:
    """Named after email-validator's version and this project's rules (v2: Unicode domains
    in their ASCII form; v3: RFC 5321's 64-octet local part, names fit for the To header),
    either of which changes what an address becomes or which files read clean."""
    version = getattr(email_validator, "__version__", "unknown")
    return var_dir / "cache" / f"addresses-v3-email-validator-{version}.sqlite"


class AddressCache:
    """Maps an address as written to its normalised form; open, use, then ``close()``."""

    def __init__(self, path: Path, commit_every: int = COMMIT_EVERY) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path  # the validation processes open it too (``prevalidate``)
        self._db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS accepted (raw TEXT PRIMARY KEY, normalised TEXT NOT NULL)"
            " WITHOUT ROWID"
        )
        self._db.execute("CREATE TABLE IF NOT EXISTS clean_files (sha256 TEXT PRIMARY KEY)")
        # New tables, not new meanings: a cache written by this version still reads right
        # with the one before (which knows only ``accepted`` and ``clean_files``).
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS refused (raw TEXT PRIMARY KEY, reason TEXT NOT NULL)"
            " WITHOUT ROWID"
        )
        self._db.execute("CREATE TABLE IF NOT EXISTS noted_files (sha256 TEXT PRIMARY KEY)")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS file_notes (sha256 TEXT, record INT, line INT,"
            " normalised TEXT, reason TEXT, PRIMARY KEY (sha256, record)) WITHOUT ROWID"
        )
        # Verdicts not stored yet, by address as written; reads consult them first.
        self._pending: dict[str, str] = {}
        self._pending_refused: dict[str, str] = {}
        self._commit_every = commit_every
        self._ahead: dict[str, str] = {}  # ``expect``

    def get(self, raw: str) -> str | None:
        known = self._ahead.get(raw) or self._pending.get(raw)
        if known is not None:
            return known
        row = self._db.execute("SELECT normalised FROM accepted WHERE raw = ?", (raw,)).fetchone()
        return None if row is None else str(row[0])

    def expect(self, raws: list[str]) -> None:
        """Read the accepted forms of ``raws`` (a few hundred) in one query, for the ``get``
        calls about them that follow; those of an earlier call are let go."""
        found = self._db.execute(
            "SELECT raw, normalised FROM accepted WHERE raw IN (SELECT value FROM json_each(?))",
            (json.dumps(raws),),
        )
        self._ahead = dict(found.fetchall())

    def refusal(self, raw: str) -> str | None:
        """Why ``raw`` was refused before, or None if it was not."""
        if raw in self._pending_refused:
            return self._pending_refused[raw]
        row = self._db.execute("SELECT reason FROM refused WHERE raw = ?", (raw,)).fetchone()
        return None if row is None else str(row[0])

    def verdicts(self, raws: list[str]) -> dict[str, tuple[str | None, str | None]]:
        """The known verdicts on ``raws`` (at most a few hundred), stored or pending:
        (normalised, None) for an accepted address, (None, reason) for a refused one; an
        accepted form wins, as in ``get``."""
        marks = ",".join("?" * len(raws))
        found: dict[str, tuple[str | None, str | None]] = {
            raw: (None, str(reason)) for raw, reason in
            self._db.execute(f"SELECT raw, reason FROM refused WHERE raw IN ({marks})", raws)
        }
        found.update((raw, (None, self._pending_refused[raw]))
                     for raw in raws if raw in self._pending_refused)
        found.update((raw, (str(normalised), None)) for raw, normalised in self._db.execute(
            f"SELECT raw, normalised FROM accepted WHERE raw IN ({marks})", raws
        ))
        found.update((raw, (self._pending[raw], None)) for raw in raws if raw in self._pending)
        return found

    def put_refused(self, raw: str, reason: str) -> None:
        self._pending_refused[raw] = reason
        self._flush_when_full()

    def notes(self, digest: str) -> dict[int, RowNote] | None:
        """The notes of a file with these bytes (record index → note), or None when it was
        not remembered."""
        found = self._db.execute("SELECT 1 FROM noted_files WHERE sha256 = ?", (digest,))
        if found.fetchone() is None:
            return None
        rows = self._db.execute(
            "SELECT record, line, normalised, reason FROM file_notes WHERE sha256 = ?", (digest,)
        )
        return {int(r[0]): RowNote(int(r[1]), r[2], r[3]) for r in rows}

    def is_noted(self, digest: str) -> bool:
        """Whether a file with these bytes was read before and its notes remembered."""
        found = self._db.execute("SELECT 1 FROM noted_files WHERE sha256 = ?", (digest,))
        return found.fetchone() is not None

    def remember_notes(self, digest: str, notes: Iterable[tuple[int, RowNote]]) -> None:
        self.flush()
        self._db.execute("BEGIN")
        try:
            self._db.executemany(
                "INSERT OR REPLACE INTO file_notes VALUES (?, ?, ?, ?, ?)",
                ((digest, record, *note) for record, note in notes),
            )
            self._db.execute("INSERT OR IGNORE INTO noted_files VALUES (?)", (digest,))
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def put(self, raw: str, normalised: str) -> None:
        self._pending[raw] = normalised
        self._flush_when_full()

    def put_many(self, accepted: list[tuple[str, str]], refused: list[tuple[str, str]]) -> None:
        """``put`` and ``put_refused`` for many verdicts at once (a validation pool's)."""
        self._pending.update(accepted)
        self._pending_refused.update(refused)
        self._flush_when_full()

    def _flush_when_full(self) -> None:
        if len(self._pending) + len(self._pending_refused) >= self._commit_every:
            self.flush()

    def is_clean(self, digest: str) -> bool:
        """Whether a file with these bytes was read before with nothing to correct."""
        found = self._db.execute("SELECT 1 FROM clean_files WHERE sha256 = ?", (digest,))
        return found.fetchone() is not None

    def mark_clean(self, digest: str) -> None:
        self.flush()
        self._db.execute("INSERT OR IGNORE INTO clean_files VALUES (?)", (digest,))

    def flush(self) -> None:
        """Store the pending verdicts in one transaction. (The connection is in autocommit
        mode, where ``with connection:`` opens none: each row was its own transaction, 13 µs
        apiece against 1.2 µs in one.) In key order: a transaction of addresses in no order
        touches a page of the index for each, and the pages it changes no longer fit the
        connection's page cache, which writes them out again and again."""
        if not self._pending and not self._pending_refused:
            return
        self._db.execute("BEGIN")
        try:
            self._db.executemany("INSERT OR IGNORE INTO accepted VALUES (?, ?)",
                                 _in_key_order(self._pending))
            self._db.executemany("INSERT OR IGNORE INTO refused VALUES (?, ?)",
                                 _in_key_order(self._pending_refused))
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        self._pending = {}
        self._pending_refused = {}

    def spellings(self, key: str) -> list[Spelling]:
        """The remembered spellings of the address ``key`` (lower-cased), accepted or refused."""
        self.flush()
        self._db.create_function("address_key", 1, _address_key, deterministic=True)
        accepted = self._db.execute(
            "SELECT raw, normalised, NULL FROM accepted WHERE address_key(normalised) = ?"
            " UNION ALL SELECT raw, NULL, reason FROM refused WHERE address_key(raw) = ?"
            " ORDER BY 1", (key, key),
        )
        return [Spelling(*row) for row in accepted]

    def forget(self, key: str) -> int:
        """Drop every spelling of ``key`` and the notes of every file that named it (such a
        file is read in full again); how many spellings were dropped."""
        self.flush()
        self._ahead = {}
        self._db.create_function("address_key", 1, _address_key, deterministic=True)
        self._db.execute("BEGIN IMMEDIATE")
        try:
            dropped = self._forget(key)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        return dropped

    def _forget(self, key: str) -> int:
        noted = [row[0] for row in self._db.execute(
            "SELECT DISTINCT sha256 FROM file_notes WHERE address_key(normalised) = ?"
            " OR instr(address_key(reason), ?) > 0", (key, key),
        )]
        for digest in noted:
            self._db.execute("DELETE FROM file_notes WHERE sha256 = ?", (digest,))
            self._db.execute("DELETE FROM noted_files WHERE sha256 = ?", (digest,))
        accepted = self._db.execute(
            "DELETE FROM accepted WHERE address_key(normalised) = ?", (key,)
        ).rowcount
        refused = self._db.execute("DELETE FROM refused WHERE address_key(raw) = ?", (key,))
        return accepted + refused.rowcount

    def close(self) -> None:
        self.flush()
        self._db.close()


@contextmanager
def opened_cache(var_dir: Path) -> Iterator[AddressCache]:
    """The publication's address cache (under ``var_dir``), closed afterwards."""
    cache = AddressCache(cache_path(var_dir))
    try:
        yield cache
    finally:
        cache.close()


def file_digest(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
