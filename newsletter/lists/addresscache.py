"""A persistent cache of email-validator's verdicts on addresses it has already accepted.

Validating an address costs about 100 µs (most of it IDNA checks of the domain), so a
1,000,000-member list would spend minutes being re-validated before every send. The
verdict for a given string never changes for a given email-validator version, so accepted
addresses are remembered, keyed by the exact text, in a SQLite file under ``var/cache/``
named after that version. Rejected addresses are not cached: they are rare and are
reported every time. Deliverability checks (DNS) are never cached.

A whole member file can be vouched for too: once every row of a file has been read with no
problem and every address was already in its normalised form, the file's SHA-256 is
recorded, and a later read of the same bytes skips the per-address look-ups altogether
(a million-row file is hashed in about 50 ms; looking each address up costs seconds).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import email_validator

COMMIT_EVERY = 20_000


def cache_path(var_dir: Path) -> Path:
    """Named after email-validator's version and this project's rules (v2: Unicode domains
    in their ASCII form; v3: RFC 5321's 64-octet local part, names fit for the To header),
    either of which changes what an address becomes or which files read clean."""
    version = getattr(email_validator, "__version__", "unknown")
    return var_dir / "cache" / f"addresses-v3-email-validator-{version}.sqlite"


class AddressCache:
    """Maps an address as written to its normalised form; open, use, then ``close()``."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS accepted (raw TEXT PRIMARY KEY, normalised TEXT NOT NULL)"
            " WITHOUT ROWID"
        )
        self._db.execute("CREATE TABLE IF NOT EXISTS clean_files (sha256 TEXT PRIMARY KEY)")
        self._pending: list[tuple[str, str]] = []

    def get(self, raw: str) -> str | None:
        row = self._db.execute("SELECT normalised FROM accepted WHERE raw = ?", (raw,)).fetchone()
        return None if row is None else str(row[0])

    def put(self, raw: str, normalised: str) -> None:
        self._pending.append((raw, normalised))
        if len(self._pending) >= COMMIT_EVERY:
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
        apiece against 1.2 µs in one.)"""
        if not self._pending:
            return
        self._db.execute("BEGIN")
        try:
            self._db.executemany("INSERT OR IGNORE INTO accepted VALUES (?, ?)", self._pending)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        self._pending = []

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
