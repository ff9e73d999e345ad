"""Safe edits of member CSV files: atomic, minimal, and refused if someone else got there first.

An edit streams the file into a temporary file in the same folder, changing only what it
must (appending rows, dropping the records of one address): every other byte — comments,
column order, quoting, line endings — is copied as it was. Before the temporary file
replaces the original, the original's modification time, size and SHA-256 are compared
with what was read; any difference means another program or person edited it meanwhile,
and the edit is abandoned rather than silently undoing their change.

A rewrite holds the file's lock (``appending.locked``) from before it reads the file until
the new content is in place, so a sign-up appended by another process waits for it rather
than landing between the check and the rename, where it would be lost.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from ..errors import ListError
from ..models import Subscriber
from ..render.message import UNFIT_FOR_HEADERS, describe_character
from .address import AddressKeys, same_address
from .appending import locked
from .csvfile import NAME, Header, Record, format_row, iter_records, line_ending

_CHUNK = 1 << 16


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What identifies one state of a file's content."""

    mtime_ns: int
    size: int
    sha256: str

    @classmethod
    def of(cls, path: Path) -> Fingerprint:
        with path.open("rb") as handle:
            info = os.fstat(handle.fileno())
            digest = hashlib.sha256()
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
        return cls(info.st_mtime_ns, info.st_size, digest.hexdigest())


class Rewrite:
    """One rewrite of a file: read its lines, write the new content, then ``commit()``.

    Leaving the ``with`` block without committing discards the temporary file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._source: IO[bytes] | None = None
        self._temp: IO[bytes] | None = None
        self._digest = hashlib.sha256()
        self._read_size = 0
        self._started: os.stat_result | None = None
        self._exhausted = False
        self._held = ExitStack()

    def __enter__(self) -> Rewrite:
        with ExitStack() as undo:
            undo.enter_context(locked(self.path))
            try:
                self._source = undo.enter_context(self.path.open("rb"))
            except OSError as exc:
                reason = f"cannot open for editing: {exc.strerror}"
                raise ListError(self.path, None, reason) from exc
            self._started = os.fstat(self._source.fileno())
            self._temp = tempfile.NamedTemporaryFile(
                dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp", delete=False
            )
            self._held = undo.pop_all()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._temp is not None:
            self._temp.close()
            Path(self._temp.name).unlink(missing_ok=True)
        self._held.close()  # the source file, then the lock

    def lines(self) -> Iterator[str]:
        """The original's lines, decoded, line endings kept; hashed as they are read."""
        assert self._source is not None, "use Rewrite in a with block"
        for raw in self._source:
            self._digest.update(raw)
            self._read_size += len(raw)
            yield raw.decode("utf-8")
        self._exhausted = True

    def write(self, text: str) -> None:
        assert self._temp is not None, "use Rewrite in a with block"
        self._temp.write(text.encode("utf-8"))

    def commit(self) -> None:
        """Put the new content in place, unless the original changed since it was read."""
        assert self._temp is not None and self._started is not None, "use Rewrite in a with block"
        if not self._exhausted:
            raise RuntimeError("commit() before the whole original was read")
        os.chmod(self._temp.name, stat.S_IMODE(self._started.st_mode))
        self._temp.flush()
        os.fsync(self._temp.fileno())
        self._temp.close()
        self._refuse_if_changed()
        os.replace(self._temp.name, self.path)
        self._temp = None
        sync_folder(self.path.parent)

    def _refuse_if_changed(self) -> None:
        assert self._started is not None
        read = Fingerprint(self._started.st_mtime_ns, self._read_size, self._digest.hexdigest())
        try:
            now = Fingerprint.of(self.path)
        except FileNotFoundError:
            now = None
        if now != read or self._started.st_size != self._read_size:
            raise ListError(
                self.path,
                None,
                "was changed by someone else while this edit was being made; "
                "nothing was written: run the command again",
            )


def sync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX); other systems have no directory handles."""
    if os.name != "posix":
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def append_members(path: Path, members: Iterable[Subscriber]) -> int:
    """Add one row per subscriber at the end of ``path``, in its column order; how many."""
    with Rewrite(path) as rewrite:
        copied = _copy_all(rewrite)
        newline = line_ending(copied.header_record)
        if not copied.ends_with_newline:
            rewrite.write(newline)
        added = 0
        for subscriber in members:
            _require_columns(path, copied.header, subscriber)
            rewrite.write(format_row(copied.header.row(subscriber), newline))
            added += 1
        if added:
            rewrite.commit()
    return added


def remove_member(path: Path, key: str) -> list[int]:
    """Drop every record of the address ``key`` from ``path``; the lines they were on."""
    removed: list[int] = []

    def keep(record: Record, header: Header) -> bool:
        fields = record.fields or []
        index = header.email_index
        if index < len(fields) and same_address(fields[index], key):
            removed.append(record.line)
            return False
        return True

    with Rewrite(path) as rewrite:
        _copy_all(rewrite, keep)
        if removed:
            rewrite.commit()
    return removed


def rename_members(path: Path, names: Mapping[str, str]) -> list[int]:
    """Give the rows of each address key in ``names`` its new name; the lines changed. A file
    without a name column is left as it is, and so is a name no email header could carry."""
    changed: list[int] = []
    keys = AddressKeys(names)
    with Rewrite(path) as rewrite:
        header: Header | None = None
        for record in iter_records(rewrite.lines(), rewrite.path):
            if header is None and record.is_data:
                header = Header.parse(record, rewrite.path)
                if NAME not in header.columns:
                    return []
            elif header is not None and (renamed := _renamed(record, header, keys, names)):
                rewrite.write(renamed)
                changed.append(record.line)
                continue
            rewrite.write(record.text)
        if changed:
            rewrite.commit()
    return changed


def _renamed(
    record: Record, header: Header, keys: AddressKeys, names: Mapping[str, str]
) -> str:
    """The record with its new name, or "" when it keeps it."""
    fields = record.fields
    if fields is None or len(fields) != len(header.columns):
        return ""
    key = keys.find(fields[header.email_index])
    new = None if key is None else names[key]
    at = header.columns.index(NAME)
    if new is None or fields[at] == new or UNFIT_FOR_HEADERS.search(new):
        return ""
    text = format_row([*fields[:at], new, *fields[at + 1:]], line_ending(record))
    return text if record.text.endswith("\n") else text.rstrip("\r\n")


@dataclass(frozen=True, slots=True)
class _Copied:
    header: Header
    header_record: Record
    ends_with_newline: bool


def _copy_all(rewrite: Rewrite, keep: Callable[[Record, Header], bool] | None = None) -> _Copied:
    """Copy the file's records, except data rows that ``keep`` rejects."""
    header: tuple[Header, Record] | None = None
    ends_with_newline = True
    for record in iter_records(rewrite.lines(), rewrite.path):
        if header is None and record.is_data:
            header = (Header.parse(record, rewrite.path), record)
        elif header is not None and record.is_data and keep and not keep(record, header[0]):
            continue
        rewrite.write(record.text)
        ends_with_newline = record.text.endswith("\n")
    if header is None:
        raise ListError(rewrite.path, None, "no header row: the first line must name the columns")
    return _Copied(header[0], header[1], ends_with_newline)


def _require_columns(path: Path, header: Header, subscriber: Subscriber) -> None:
    """The file has a column for each of the subscriber's values, and the name can go in
    the To header (a row that could not would be refused by every later read)."""
    found = UNFIT_FOR_HEADERS.search(subscriber.name)
    if found is not None:
        raise ListError(path, None, f"{NAME} holds {describe_character(found.group())}, "
                                    "which an email header cannot carry")
    missing = header.missing_for(subscriber)
    if missing:
        raise ListError(
            path,
            None,
            f"has no column for {', '.join(repr(m) for m in missing)} "
            f"(columns: {','.join(header.columns)}); add it to the header row first",
        )
