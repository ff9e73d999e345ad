"""Member CSV files at the level of lines: records, comment lines, the header, new rows.

A record may span several physical lines (a quoted value containing a line break); a line
whose first character is ``#``, met between records, is a comment, and blank lines are
ignored. Readers and editors both go through ``iter_records`` so they agree on which lines
make up each record, which is what lets an edit copy every other line byte for byte.
"""

from __future__ import annotations

import csv
import functools
import io
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ListError
from ..models import Subscriber

COMMENT = "#"
EMAIL = "email"
NAME = "name"
# Extra columns become template fields, so they must be usable as merge-field names.
FIELD_NAME = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(slots=True)
class Record:
    """One record, or one comment/blank line (``fields`` is None), as it sits in the file."""

    line: int
    fields: list[str] | None
    raw: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def is_data(self) -> bool:
        return self.fields is not None

    @property
    def last_line(self) -> int:
        return self.line + max(len(self.raw), 1) - 1

    @property
    def text(self) -> str:
        return "".join(self.raw)


class _LineFeed:
    """Gives ``csv.reader`` physical lines, holding back comments and blanks between records."""

    def __init__(self, lines: Iterable[str], number: int = 0) -> None:
        self._lines = iter(lines)
        self.number = number  # of the last line given
        self.raw: list[str] = []
        self.held: list[Record] = []

    def __iter__(self) -> _LineFeed:
        return self

    def __next__(self) -> str:
        # Called for every line of a member list: the common case takes one test, and the
        # next line is fetched inline (a method call a line was a tenth of a first read).
        line = next(self._lines)
        self.number += 1
        while not self.raw and (line.startswith(COMMENT) or not line.strip()):
            self.held.append(Record(self.number, None, [line]))
            line = self._next_line()
        self.raw.append(line)
        return line

    def _next_line(self) -> str:
        line = next(self._lines)
        self.number += 1
        return line

    def take_record(self, fields: list[str]) -> Record:
        """The record just read, when no comment line came before it (``held`` is empty):
        ``take`` without the list it builds, for the common case."""
        raw = self.raw
        self.raw = []
        return Record(self.number - len(raw) + 1, fields, raw)

    def take(self, fields: list[str] | None, error: str = "") -> list[Record]:
        """The comment lines met so far, then the record just read; resets for the next one."""
        taken, raw = self.held, self.raw
        self.held, self.raw = [], []
        if raw:
            taken.append(Record(self.number - len(raw) + 1, fields, raw, error))
        return taken


def iter_records(lines: Iterable[str], path: Path, lines_before: int = 0) -> Iterator[Record]:
    """Every record and comment line of a member file, in order, streaming; ``lines`` may
    start after ``lines_before`` lines of the file (numbering goes on from there)."""
    feed = _LineFeed(lines, lines_before)
    # strict: a quote left open must be an error, not a value that swallows the rest of the file
    reader = csv.reader(feed, strict=True)
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            yield from feed.take(None, split_error(exc))
            continue
        except UnicodeDecodeError as exc:
            raise ListError(path, feed.number + 1, f"not UTF-8 text ({exc.reason})") from exc
        if feed.held:
            yield from feed.take(fields)
        else:
            yield feed.take_record(fields)
    yield from feed.take(None)


def clean_rows(lines: Iterable[str]) -> Iterator[list[str]]:
    """The fields of each record, as ``iter_records`` splits them, for a file known to read
    clean (nothing to report): no line numbers, raw text or comment records are kept, which
    makes it about three times cheaper. ``lines`` may be a file positioned after a record."""
    feed = _RecordStart(lines)
    for fields in csv.reader(feed, strict=True):
        feed.fresh = True
        yield fields


class _RecordStart:
    """``_LineFeed`` without its bookkeeping: drops comment and blank lines where a record
    would start, and nowhere else (inside a quoted value they are part of it)."""

    __slots__ = ("_lines", "fresh")

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = iter(lines)
        self.fresh = True

    def __iter__(self) -> _RecordStart:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        while self.fresh and (line.startswith(COMMENT) or not line.strip()):
            line = next(self._lines)
        self.fresh = False
        return line


def split_error(exc: csv.Error) -> str:
    if str(exc) == "unexpected end of data":
        return "a quoted value starts in this row and is never closed"
    return f"cannot be split into columns: {exc}"


@dataclass(frozen=True, slots=True)
class Header:
    """The column names of a member file (lower-cased, in file order)."""

    columns: tuple[str, ...]

    @classmethod
    def parse(cls, record: Record, path: Path) -> Header:
        # A byte-order mark survives when a file is read for editing, which keeps it intact.
        names = tuple(n.replace("\ufeff", "").strip().lower() for n in record.fields or ())
        problem = _header_problem(names)
        if problem:
            raise ListError(path, record.line, f"header row: {problem}")
        return cls(names)

    @property
    def email_index(self) -> int:
        return self.columns.index(EMAIL)

    @property
    def extra(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if c not in (EMAIL, NAME))

    def values(self, fields: Sequence[str]) -> dict[str, str]:
        return {column: value.strip() for column, value in zip(self.columns, fields, strict=True)}

    @property
    def layout(self) -> tuple[int, int | None, tuple[tuple[str, int], ...]]:
        """Where the address and the name are (None: no name column), and the other columns
        with their places."""
        return _layout(self.columns)

    def split(self, fields: Sequence[str]) -> tuple[str, str, dict[str, str]]:
        """A row of as many fields as columns as its address, its name ("" without the
        column) and its other columns, stripped: what ``values`` gives, without building and
        emptying a dict of every column for each of a million rows."""
        email_at, name_at, others = _layout(self.columns)
        return (
            fields[email_at].strip(),
            fields[name_at].strip() if name_at is not None else "",
            {column: fields[at].strip() for column, at in others},
        )

    def missing(self, names: Iterable[str]) -> list[str]:
        """Those of ``names`` that have no column in this file."""
        return [name for name in names if name not in self.columns]

    def missing_for(self, subscriber: Subscriber) -> list[str]:
        """The columns a row for ``subscriber`` would need but this file lacks."""
        wanted = [NAME] if subscriber.name else []
        return self.missing([*wanted, *subscriber.fields])

    def row(self, subscriber: Subscriber) -> list[str]:
        given = {**subscriber.fields, EMAIL: subscriber.email, NAME: subscriber.name}
        return [given.get(column, "") for column in self.columns]


@functools.lru_cache(maxsize=64)
def _layout(columns: tuple[str, ...]) -> tuple[int, int | None, tuple[tuple[str, int], ...]]:
    """Where a header's address and name are, and its other columns with their places."""
    others = tuple((column, at) for at, column in enumerate(columns) if column not in (EMAIL, NAME))
    return columns.index(EMAIL), columns.index(NAME) if NAME in columns else None, others


def _header_problem(names: tuple[str, ...]) -> str:
    if EMAIL not in names:
        return f"no {EMAIL!r} column (found: {', '.join(names) or 'nothing'})"
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        return f"column {twice[0]!r} appears twice"
    bad = [n for n in names if not FIELD_NAME.fullmatch(n)]
    if bad:
        return (
            f"column name {bad[0]!r} cannot be used in templates: start with a letter and use "
            "only letters, digits and '_' (for example first_name)"
        )
    return ""


def first_header(records: Iterable[Record], path: Path) -> Header:
    """The header: the first record that is not a comment."""
    for record in records:
        if record.is_data:
            return Header.parse(record, path)
        if record.error:
            raise ListError(path, record.line, f"header row {record.error}")
    raise ListError(path, None, "no header row: the first line must name the columns (email,name)")


def read_header(path: Path) -> Header:
    """The header of the member file at ``path``, reading no further than it."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return first_header(iter_records(handle, path), path)


def line_ending(record: Record) -> str:
    """The line ending a file uses, judged from one of its records."""
    return "\r\n" if record.raw and record.raw[0].endswith("\r\n") else "\n"


def format_row(values: Sequence[str], newline: str = "\n") -> str:
    """One CSV record as text, quoted so that it cannot be mistaken for a comment line."""
    buffer = io.StringIO()
    if values and values[0].startswith(COMMENT):
        csv.writer(buffer, lineterminator=newline, quoting=csv.QUOTE_ALL).writerow(values)
    else:
        csv.writer(buffer, lineterminator=newline).writerow(values)
    return buffer.getvalue()


def fields_of(pairs: Mapping[str, str]) -> dict[str, str]:
    """Template fields with keys lower-cased, as a member file's columns are."""
    return {key.strip().lower(): value for key, value in pairs.items()}


def column_count_problem(record: Record, header: Header) -> str:
    """Why ``record`` does not fit ``header``: its count of fields, and the likely cause."""
    found = len(record.fields or [])
    reason = f"expected {len(header.columns)} columns ({','.join(header.columns)}), found {found}"
    if record.last_line > record.line:
        reason += f"; the row runs on to line {record.last_line}: is a quote left open?"
    elif found > len(header.columns):
        reason += "; put values that contain commas in double quotes"
    return reason


@contextmanager
def text_from(path: Path, offset: int) -> Iterator[io.TextIOWrapper]:
    """The file's text from byte ``offset`` (where a line begins) on."""
    with path.open("rb") as raw:
        raw.seek(offset)
        yield io.TextIOWrapper(raw, encoding="utf-8", newline="")
