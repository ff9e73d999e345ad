"""Whether a list's member files hold an address, and its rows there, answered from memory.

The public sign-up form asks whether a list holds an address for every submission (an
already subscribed reader gets a reminder instead of a confirmation), hundreds of times a
second; the reader's own page asks for the reader's rows in every file (their lists and
their name) on every view; confirming a sign-up asks before it appends the reader. Lists
may hold a million members: reading the files each time is out of the question, and so is
holding a million strings. Each file is read once into a sorted array of 64-bit keyed
hashes of its addresses, with where each row starts in the file (its byte offset and
line): about 24 bytes a member. A file is read again only when its size, modification
time or inode changes; a sign-up file that grows is re-read alone, not the large file
beside it. A row asked for (``rows_holding``) is read at its offset, a record parsed as
every reader parses one (a quoted value may span lines), and its address compared again;
``holds`` answers from the hashes alone.

Addresses compare as ``address.same_address`` has them: an address written in its usual
form (ASCII, no quoting) by its lower-cased text, any other also by its normalised form
(``row_key``), so ``Kim@Bücher.example`` is found as ``kim@xn--bcher-kva.example``.

A hash is keyed with a secret drawn per process, so no one can craft addresses that collide;
two different addresses share a hash with a chance of about one in 2^64 per pair. A missing
file holds nobody; a file that cannot be read as a member file holds nobody either for
``holds`` (``lists check`` reports it, and it is logged), while ``rows_holding`` raises its
``ListError``: the reader could be in it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import re
import secrets
import sys
import threading
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import ListError
from .address import address_key, row_key, same_address
from .csvfile import COMMENT, Header, Record, first_header, iter_records, split_error
from .reader_data import Membership, columns_of
from .reader_data import rows_holding as read_rows_holding

log = logging.getLogger(__name__)

#: What identifies one version of a file: (inode, size, modification time in ns).
Signature = tuple[int, int, int]
MISSING: Signature = (0, -1, 0)
_BOM = b"\xef\xbb\xbf"
_ROW_MASK = (1 << 32) - 1
#: Where a line ends at a carriage return alone (a binary line ends at ``\\n``).
_LONE_CR = re.compile(r"(?<=\r)(?!\n)")


@dataclass(frozen=True, slots=True)
class FileIndex:
    """One version of one member file: its rows' hashes, sorted, and where each row is."""

    signature: Signature
    hashes: array[int]  # sorted
    rows: array[int]  # for each hash, its row's place in ``offsets`` and ``lines``
    offsets: array[int]  # the byte offset where each row's record starts, in file order
    lines: array[int]  # and its first line
    header: Header | None = None
    #: Why the file could not be read whole (a row past the problem is not indexed).
    problem: ListError | None = None

    def spots(self, wanted: int) -> list[tuple[int, int]]:
        """(offset, line) of every row whose address has the hash ``wanted``."""
        at = bisect_left(self.hashes, wanted)
        found = []
        while at < len(self.hashes) and self.hashes[at] == wanted:
            row = self.rows[at]
            found.append((self.offsets[row], self.lines[row]))
            at += 1
        return found


class MemberKeys:
    """Keeps the index of every file it has been asked about; thread-safe. One per process,
    shared by the sign-up form, its confirmation and the reader's page."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(16)
        self._files: dict[Path, FileIndex] = {}
        self._lock = threading.Lock()

    def holds(self, paths: Sequence[Path], email: str, *, strict: bool = False) -> bool:
        """Whether any of ``paths`` has a row for ``email`` (compared as ``same_address``).
        ``strict``: a file that exists but cannot be read raises its ``ListError`` rather
        than holding no one past its problem."""
        wanted = self._hash(address_key(email))
        return any(self._index(path, strict).spots(wanted) for path in paths)

    def _index(self, path: Path, strict: bool) -> FileIndex:
        found = self.index(path)
        if strict and found.problem is not None and found.signature != MISSING:
            raise found.problem
        return found

    def rows_holding(
        self, path: Path, email: str, lists: tuple[str, ...] = ()
    ) -> list[Membership]:
        """The rows of ``path`` holding ``email``, as ``reader_data.rows_holding`` gives
        them, reading those rows alone; ``ListError`` when the file cannot be read."""
        key = address_key(email)
        index = self.index(path)
        if index.problem is not None:
            raise index.problem
        spots = index.spots(self._hash(key))
        if not spots or index.header is None:
            return []
        with path.open("rb") as handle:
            if _signature(os.fstat(handle.fileno())) != index.signature:  # changed meanwhile
                return read_rows_holding(path, key, lists)
            found = (_row_at(handle, path, spot) for spot in spots)
            return [
                Membership(path, line, lists, columns_of(record, index.header))
                for line, record in found
                if _holds(record, index.header, key)
            ]

    def index(self, path: Path) -> FileIndex:
        """The index of ``path`` as it is now, read again if the file changed."""
        signature = _stat(path)
        known = self._files.get(path)
        if known is not None and known.signature == signature:
            return known
        with self._lock:  # one reading of a changed file, whoever asks meanwhile waits for it
            known = self._files.get(path)
            if known is not None and known.signature == signature:
                return known
            made = self._read(path, signature)
            self._files[path] = made
            return made

    def _hash(self, key: str) -> int:
        return int.from_bytes(_digest(key, self._key), sys.byteorder)

    def _read(self, path: Path, signature: Signature) -> FileIndex:
        rows = _Rows(self._key)
        try:
            rows.read(path)
        except FileNotFoundError as exc:  # holds no one; its rows cannot be read
            return rows.index(signature, ListError(path, None, f"cannot read: {exc.strerror}"))
        except OSError as exc:
            return self._unreadable(path, rows, signature,
                                    ListError(path, None, f"cannot read: {exc.strerror}"))
        except ListError as exc:
            return self._unreadable(path, rows, signature, exc)
        return rows.index(signature)

    def _unreadable(
        self, path: Path, rows: _Rows, signature: Signature, problem: ListError
    ) -> FileIndex:
        log.warning("%s cannot be read as a member file; taken as holding no one past the "
                    "problem: %s", path, problem)
        return rows.index(signature, problem)


class _Rows:
    """The hashed addresses of a file's rows and where each row starts, as it is read.

    Records are split as ``csvfile.iter_records`` splits them (a comment or a blank line
    where a record would start is passed over; a quoted value may span lines; a record
    that does not split holds no address), by one lean loop that keeps no text: every
    call per row counts when a file holds a million."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self.digests = bytearray()  # 8 bytes a hash, in the machine's order (``array``'s)
        self.rows = array("I")  # the row of each hash (an address may give two)
        self.offsets = array("Q")
        self.lines = array("I")
        self.header: Header | None = None

    def read(self, path: Path) -> None:
        with path.open("rb") as raw:
            start = len(_BOM) if raw.read(len(_BOM)) == _BOM else 0
            raw.seek(start)
            text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
            try:
                self._read_records(_RecordFeed(text, start), path)
            finally:
                text.detach()

    def _read_records(self, feed: _RecordFeed, path: Path) -> None:
        reader = csv.reader(feed, strict=True)
        self.header = _header(reader, feed, path)
        while True:
            try:
                return self._take(reader, feed, self.header.email_index)
            except csv.Error:
                feed.fresh = True  # a record that does not split holds no address: read on
            except UnicodeDecodeError as exc:
                raise ListError(path, feed.number + 1, f"not UTF-8 text ({exc.reason})") from exc

    def _take(self, reader: Iterator[list[str]], feed: _RecordFeed, at: int) -> None:
        digests, rows, offsets, lines, secret = (
            self.digests, self.rows, self.offsets, self.lines, self._secret
        )
        for fields in reader:
            feed.fresh = True
            if at < len(fields) and (plain := fields[at].strip().lower()):
                row = len(offsets)
                offsets.append(feed.offset)
                lines.append(feed.line)
                digests += _digest(plain, secret)
                rows.append(row)
                if not plain.isascii() or '"' in plain or "\\" in plain:
                    self._normalised(fields[at], plain, row)

    def _normalised(self, written: str, plain: str, row: int) -> None:
        """An address written otherwise than as it is sent (a Unicode domain, quoting) is
        found by its normalised form too."""
        normalised = row_key(written)
        if normalised != plain:
            self.digests += _digest(normalised, self._secret)
            self.rows.append(row)

    def index(self, signature: Signature, problem: ListError | None = None) -> FileIndex:
        """The hashes sorted, each with its row (hash and row packed in one number for one
        sort: a third of the cost of sorting the rows by their hash)."""
        hashes = array("Q")
        hashes.frombytes(bytes(self.digests))
        packed = sorted([(h << 32) | row for h, row in zip(hashes, self.rows, strict=True)])
        return FileIndex(
            signature,
            array("Q", [p >> 32 for p in packed]),
            array("I", [p & _ROW_MASK for p in packed]),
            self.offsets,
            self.lines,
            self.header,
            problem,
        )


def _header(reader: Iterator[list[str]], feed: _RecordFeed, path: Path) -> Header:
    """The header: the first record (``first_header`` says what is wrong with it)."""
    try:
        fields = next(reader, None)
    except csv.Error as exc:
        raise ListError(path, feed.line, f"header row {split_error(exc)}") from exc
    except UnicodeDecodeError as exc:
        raise ListError(path, feed.number + 1, f"not UTF-8 text ({exc.reason})") from exc
    feed.fresh = True
    return first_header([] if fields is None else [Record(feed.line, fields)], path)


def _digest(key: str, secret: bytes) -> bytes:
    return hashlib.blake2b(key.encode(), digest_size=8, key=secret).digest()


class _RecordFeed:
    """Gives ``csv.reader`` a file's lines as ``open(newline="")`` splits them, passing over
    comment and blank lines where a record would start (and nowhere else), and noting the
    line and byte offset where the record being read starts (UTF-8: a line's bytes are its
    text encoded again)."""

    __slots__ = ("_at", "_lines", "fresh", "line", "number", "offset")

    def __init__(self, lines: Iterable[str], start: int) -> None:
        self._lines = iter(lines)
        self._at = start
        self.fresh = True
        self.number = 0
        self.line = 0
        self.offset = 0

    def __iter__(self) -> _RecordFeed:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.number += 1
        if self.fresh:
            while line.startswith(COMMENT) or not line.strip():
                self._at += _size(line)
                line = next(self._lines)
                self.number += 1
            self.fresh = False
            self.line, self.offset = self.number, self._at
        self._at += len(line) if line.isascii() else len(line.encode("utf-8"))
        return line


def _size(line: str) -> int:
    return len(line) if line.isascii() else len(line.encode("utf-8"))


def _row_at(handle: BinaryIO, path: Path, spot: tuple[int, int]) -> tuple[int, Record]:
    """The record that starts at ``spot``'s offset, parsed as ``iter_records`` does."""
    offset, line = spot
    handle.seek(offset)
    record = next(iter_records(_lines_from(handle), path), None)
    return line, record if record is not None else Record(line, None)


def _lines_from(handle: BinaryIO) -> Iterator[str]:
    """The lines from where ``handle`` stands, split as ``open(newline="")`` splits them
    (at ``\\r\\n``, ``\\n`` or a lone ``\\r``) and decoded one at a time, as a record is
    read: a byte further on that is not UTF-8 is not this record's problem."""
    for raw in handle:
        for text in _LONE_CR.split(raw.decode("utf-8")):
            if text:
                yield text


def _holds(record: Record, header: Header, key: str) -> bool:
    fields, at = record.fields, header.email_index
    return fields is not None and at < len(fields) and same_address(fields[at], key)


def _stat(path: Path) -> Signature:
    try:
        return _signature(os.stat(path))
    except FileNotFoundError:
        return MISSING


def _signature(found: os.stat_result) -> Signature:
    return (found.st_ino, found.st_size, found.st_mtime_ns)
