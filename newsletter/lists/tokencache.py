"""Every member's signed unsubscribe token, kept from one issue to the next.

A token depends only on the secret key, the list and the address (``tokens.TokenSigner``),
yet a send signed one for every recipient of every issue: about 1.5 µs each in Python, a
fifth of a large send's CPU. The tokens signed for a list are kept here, a batch's as one
value (``TokenCache``); only a member new to the list, or to that part of it, is signed.

Where the tokens are kept, and why there. A token is a capability: whoever holds one can
unsubscribe that reader, or open their preferences. So a file of a million tokens is as
sensitive as the secret key that signs them, and it is kept as that key is when the
publication generates it (``var/secret.key``): a file only its owner may read or write,
in ``var/cache/``. Nothing of the key is in it, nor in its name, which carries a MAC of a fixed
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
from collections.abc import Iterator, Mapping
from pathlib import Path

import orjson
from filelock import FileLock

from ..tokens import TokenSigner

#: The files' names: ``tokens-<fingerprint>.sqlite`` under ``var/cache/``.
PREFIX = "tokens-"
SUFFIX = ".sqlite"
#: Held while a process sets a file up (``tokens.lock`` beside the files): two workers
#: starting at once would both switch a new file to WAL, and SQLite answers the loser
#: "database is locked" at once, without waiting out its busy timeout.
SETUP_LOCK = "tokens.lock"

_CREATE = (
    "CREATE TABLE IF NOT EXISTS batch_tokens (list_id TEXT NOT NULL, seq INTEGER NOT NULL,"
    " tokens BLOB NOT NULL, PRIMARY KEY (list_id, seq))"
)


def token_cache_path(var_dir: Path, signer: TokenSigner) -> Path:
    return var_dir / "cache" / f"{PREFIX}{signer.fingerprint()}{SUFFIX}"


class TokenCache:
    """The tokens of a list's members, by the place of the batch that last carried them.

    An issue's batches are cut from the member file the same way each time (in runs of it,
    each sorted by address: ``audience.in_address_runs``), so batch ``seq`` of the next
    issue to the list holds the same members as this one's, give or take the few that
    joined or left before it: its tokens are read as one value (a JSON object of address to
    token, parsed in C), with no look-up per recipient, which cost as much as signing (about
    1 µs a row in SQLite). A member not found there is signed, and the batch's tokens kept
    again. Threads share it: each call borrows a connection from a small pool (opening one
    per batch cost a third of what it saves). ``close()`` when done; it may be used again
    afterwards."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._idle: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(path.parent / SETUP_LOCK):
            _create_private(path)  # before SQLite opens it, which would make it 0644
            _drop_other_keys(path)
            with self._borrowed() as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute(_CREATE)

    def batch(self, list_id: str, seq: int) -> dict[str, str]:
        """The tokens kept for batch ``seq`` of issues to the list, by lower-cased address."""
        with self._borrowed() as db:
            found = db.execute(
                "SELECT tokens FROM batch_tokens WHERE list_id = ? AND seq = ?", (list_id, seq)
            ).fetchone()
        return orjson.loads(found[0]) if found else {}

    def keep(self, list_id: str, seq: int, tokens: Mapping[str, str]) -> None:
        """Keep ``tokens`` as batch ``seq``'s, in place of those kept before."""
        with self._borrowed() as db:
            db.execute(
                "INSERT OR REPLACE INTO batch_tokens VALUES (?, ?, ?)",
                (list_id, seq, orjson.dumps(tokens)),
            )

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
    quoted = orjson.dumps(key)  # as it is written in a batch's JSON object
    for path in _token_files(var_dir / "cache"):
        db = sqlite3.connect(path, isolation_level=None, timeout=30)
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute(_CREATE)
            dropped += _forget_in(db, key, quoted)
            db.execute("COMMIT")
        finally:
            db.close()
    return dropped


def _forget_in(db: sqlite3.Connection, key: str, quoted: bytes) -> int:
    dropped = 0
    holding = db.execute(
        "SELECT list_id, seq, tokens FROM batch_tokens WHERE instr(tokens, ?) > 0", (quoted,)
    ).fetchall()
    for list_id, seq, stored in holding:
        tokens = orjson.loads(stored)
        if tokens.pop(key, None) is not None:
            dropped += 1
            db.execute("UPDATE batch_tokens SET tokens = ? WHERE list_id = ? AND seq = ?",
                       (orjson.dumps(tokens), list_id, seq))
    return dropped
