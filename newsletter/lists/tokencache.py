"""Every member's signed unsubscribe token, kept from one issue to the next.

A token depends only on the secret key, the list and the address (``tokens.TokenSigner``),
yet a send signed one for every recipient of every issue: about 2 µs each in Python, a
fifth of a large send's CPU. The tokens signed for a list are kept here, and a batch's are
read back in one query (under a microsecond a recipient, in SQLite's C code); only a
member new to the list is signed, once.

Where the tokens are kept, and why there. A token is a capability: whoever holds one can
unsubscribe that reader, or open their preferences. So a file of a million tokens is as
sensitive as the secret key that signs them, and it is kept as that key is when the
publication generates it (``var/secret.key``): a file only its owner may read or write,
in ``var/``. Nothing of the key is in it, nor in its name, which carries a MAC of a fixed
value under a key derived from the secret with a salt of its own (``TokenSigner.fingerprint``):
it tells one key from another and gives nothing towards signing. A changed key, or a new
token scheme, names another file; the files of other keys are deleted when one is opened,
since their tokens no longer verify and need not be kept. Deriving the tokens so that a
leaked file would be harmless is not possible: anything a send can turn into a token
without the key is as good as the token.

A reader who is forgotten is forgotten here too (``forget``).
"""

from __future__ import annotations

import contextlib
import os
import queue
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import orjson

from ..tokens import TokenSigner

#: The files' names: ``tokens-<fingerprint>.sqlite`` under ``var/cache/``.
PREFIX = "tokens-"
SUFFIX = ".sqlite"

_CREATE = (
    "CREATE TABLE IF NOT EXISTS tokens (list_id TEXT NOT NULL, address TEXT NOT NULL,"
    " token TEXT NOT NULL, PRIMARY KEY (list_id, address)) WITHOUT ROWID"
)
#: A batch's tokens as one value: one step of the statement, so the sqlite3 module lets go
#: of the interpreter lock once per batch rather than once per row. CROSS JOIN keeps the
#: batch's addresses as the outer loop, each a seek in the key (the planner otherwise may
#: scan every kept token for each).
_LOOKUP = (
    "SELECT json_group_object(wanted.value, t.token) FROM json_each(?) AS wanted"
    " CROSS JOIN tokens AS t ON t.list_id = ? AND t.address = wanted.value"
)


def token_cache_path(var_dir: Path, signer: TokenSigner) -> Path:
    return var_dir / "cache" / f"{PREFIX}{signer.fingerprint()}{SUFFIX}"


class TokenCache:
    """Tokens by list id and lower-cased address. Threads share it: each call borrows a
    connection from a small pool (opening one per batch cost a third of what it saves).
    ``close()`` when done; it may be used again afterwards."""

    def __init__(self, path: Path) -> None:
        self.path = path
        _create_private(path)
        _drop_other_keys(path)
        self._idle: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        with self._borrowed() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(_CREATE)

    def known(self, list_id: str, addresses: Iterable[str]) -> dict[str, str]:
        """The kept tokens of these addresses on the list, by address; one not kept is
        missing."""
        wanted = orjson.dumps(list(addresses)).decode()
        with self._borrowed() as db:
            found = db.execute(_LOOKUP, (wanted, list_id)).fetchone()[0]
        return orjson.loads(found) if found else {}

    def keep(self, list_id: str, tokens: Mapping[str, str]) -> None:
        """Keep newly signed tokens (another process may have kept the same ones)."""
        if not tokens:
            return
        with self._borrowed() as db:
            db.execute("BEGIN")
            try:
                db.executemany("INSERT OR IGNORE INTO tokens VALUES (?, ?, ?)",
                               ((list_id, address, token) for address, token in tokens.items()))
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def close(self) -> None:
        with contextlib.suppress(queue.Empty):
            while True:
                self._idle.get_nowait().close()

    @contextlib.contextmanager
    def _borrowed(self) -> Iterator[sqlite3.Connection]:
        try:
            db = self._idle.get_nowait()
        except queue.Empty:
            db = sqlite3.connect(self.path, isolation_level=None, timeout=30,
                                 check_same_thread=False)
            db.execute("PRAGMA synchronous=NORMAL")
        try:
            yield db
        except BaseException:
            db.close()
            raise
        self._idle.put(db)


def _create_private(path: Path) -> None:
    """The file, readable and writable by its owner alone (SQLite gives its journal files
    the same permissions)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)  # one made before, or under a looser umask
    finally:
        os.close(fd)


def _drop_other_keys(path: Path) -> None:
    """Tokens signed with another key no longer verify: nothing to keep them for."""
    for other in _token_files(path.parent):
        if other.name != path.name:
            for leftover in (other, *_journals(other)):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()


def _token_files(folder: Path) -> Iterator[Path]:
    return folder.glob(f"{PREFIX}*{SUFFIX}") if folder.is_dir() else iter(())


def _journals(path: Path) -> list[Path]:
    return [path.with_name(path.name + end) for end in ("-wal", "-shm", "-journal")]


def forget(var_dir: Path, key: str) -> int:
    """Drop the kept tokens of the address ``key`` (lower-cased), for every list; how many."""
    dropped = 0
    for path in _token_files(var_dir / "cache"):
        db = sqlite3.connect(path, isolation_level=None, timeout=30)
        try:
            db.execute(_CREATE)
            dropped += db.execute("DELETE FROM tokens WHERE address = ?", (key,)).rowcount
        finally:
            db.close()
    return dropped
