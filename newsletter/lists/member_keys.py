"""Whether a list's member files hold an address, answered from memory.

The public sign-up form asks this for every submission (an already subscribed reader gets a
reminder instead of a confirmation), hundreds of times a second, of lists that may hold a
million members: reading the files each time is out of the question, and so is holding a
million strings. Each file is read once into a sorted array of 64-bit keyed hashes of its
addresses (8 bytes a member) and read again only when its size, modification time or inode
changes; a sign-up file that grows is re-read alone, not the large file beside it.

A hash is keyed with a secret drawn per process, so no one can craft addresses that collide;
two different addresses share a hash with a chance of about one in 2^64 per pair. A missing
file holds nobody; a file that cannot be read as a member file holds nobody either (``lists
check`` reports it) and is logged.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import threading
from array import array
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..errors import ListError
from .address import address_key
from .csvfile import first_header, iter_records

log = logging.getLogger(__name__)

#: What identifies one version of a file: (inode, size, modification time in ns).
Signature = tuple[int, int, int]


class MemberKeys:
    """Keeps the hashed addresses of every file it has been asked about; thread-safe."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(16)
        self._files: dict[Path, tuple[Signature, array[int]]] = {}
        self._lock = threading.Lock()

    def holds(self, paths: Sequence[Path], email: str) -> bool:
        """Whether any of ``paths`` has a row for ``email`` (compared as ``address_key``)."""
        wanted = self._hash(address_key(email))
        return any(_contains(self._hashes(path), wanted) for path in paths)

    def _hash(self, key: str) -> int:
        digest = hashlib.blake2b(key.encode(), digest_size=8, key=self._key).digest()
        return int.from_bytes(digest, "little")

    def _hashes(self, path: Path) -> array[int]:
        signature = _signature(path)
        known = self._files.get(path)
        if known is not None and known[0] == signature:
            return known[1]
        with self._lock:  # one reading of a changed file, whoever asks meanwhile waits for it
            known = self._files.get(path)
            if known is not None and known[0] == signature:
                return known[1]
            hashes = array("Q", sorted(self._hash(key) for key in self._read(path)))
            self._files[path] = (signature, hashes)
            return hashes

    def _read(self, path: Path) -> Iterator[str]:
        try:
            yield from _addresses(path)
        except FileNotFoundError:
            return
        except (OSError, ListError) as exc:
            log.warning("%s cannot be read for sign-ups; taken as holding no one: %s", path, exc)


def _signature(path: Path) -> Signature:
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return (0, -1, 0)
    return (found.st_ino, found.st_size, found.st_mtime_ns)


def _contains(hashes: array[int], wanted: int) -> bool:
    at = bisect_left(hashes, wanted)
    return at < len(hashes) and hashes[at] == wanted


def _addresses(path: Path) -> Iterator[str]:
    """The comparison key of the address on each row of the file (valid or not)."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        records = iter_records(handle, path)
        at = first_header(records, path).email_index
        for record in records:
            fields = record.fields
            if fields is not None and at < len(fields) and fields[at].strip():
                yield address_key(fields[at])
