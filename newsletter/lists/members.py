"""Streaming a list's member CSV files: valid, de-duplicated subscribers out, problems noted.

Files are read a record at a time with ``csv``; nothing holds a whole file. The addresses
already met (needed to drop duplicates across a list's files) are kept in a private SQLite
database (``seen``), not in a set of hundreds of megabytes. Invalid rows are errors;
duplicates are warnings (the first row wins).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator, Sequence, Set
from contextlib import closing, nullcontext
from itertools import chain, islice
from pathlib import Path
from typing import NamedTuple, TypeVar

from ..errors import ConfigError, ListError
from ..models import Recipient, Subscriber
from ..render.message import UNFIT_FOR_HEADERS, describe_character
from .address import address_key, normalise_address
from .addresscache import AddressCache, RowNote, file_digest
from .appended import TailStart
from .csvfile import (
    NAME,
    Header,
    Record,
    clean_rows,
    column_count_problem,
    first_header,
    iter_records,
    text_from,
)
from .fileread import FileRead
from .leanread import NO_FIELDS, kept_fields, lean_recipients, make_recipient
from .prevalidate import POOL_FROM, Judged, Prevalidation
from .problems import Counts, Problem, Severity
from .seen import Earlier, SeenAddresses

#: Rows whose addresses are looked up in the cache together (``_looked_up``).
LOOK_AHEAD = 500
#: A file is read in large pieces: a read waits for the interpreter lock afterwards, up to
#: 5 ms while the thread of a ``Prevalidation`` holds it.
READ_BUFFER = 1 << 20

_T = TypeVar("_T")
#: A checked row: its normalised address, its name and its other columns.
_Row = tuple[str, str, dict[str, str]]


class Member(NamedTuple):  # one per member read: a tuple is the cheapest to make
    """A valid subscriber and where it was read; ``key`` is the address for comparisons."""

    subscriber: Subscriber
    path: Path
    line: int

    @property
    def key(self) -> str:
        return address_key(self.subscriber.email)


class MemberReader:
    """Reads the member files of one list, in order: each valid address once.

    Problems go to ``on_problem`` as they are found (default: appended to ``problems``);
    ``counts`` is complete once iteration has finished.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        *,
        check_deliverability: bool = False,
        on_problem: Callable[[Problem], None] | None = None,
        cache: AddressCache | None = None,
        dedupe: bool = True,
        pool_from: int = POOL_FROM,
    ) -> None:
        """``dedupe=False`` leaves dropping repeated addresses to the caller (the ledger's
        unique index does it when an audience is frozen), and reports no duplicates.
        A file with at least ``pool_from`` addresses, not vouched for, has them judged by a
        pool of processes as it is read (``prevalidate``)."""
        self.paths = tuple(paths)
        self.dedupe = dedupe
        self.check_deliverability = check_deliverability
        # Only syntax verdicts are cacheable; deliverability depends on DNS at the time.
        self.cache = None if check_deliverability else cache
        self.problems: list[Problem] = []
        self.counts = Counts()
        self.pool_from = pool_from
        self.validated_in_pool = 0  # addresses, over every read
        #: Keep a member whose name cannot go in a header (``recipients`` does): see
        #: ``_unfit_for_headers``.
        self.keep_unsendable = False
        self._on_problem = on_problem if on_problem is not None else self.problems.append
        self._held: list[Problem] | None = None  # a block's problems, until its repeats are known
        self._file = FileRead(-1, Path())

    def __iter__(self) -> Iterator[Subscriber]:
        return (member.subscriber for member in self.members())

    def members(
        self, *, start: int = 0, earlier: Earlier | None = None,
        after_file: Callable[[int], None] | None = None,
    ) -> Iterator[Member]:
        """The members of the files from index ``start`` on; ``earlier`` says where an
        address was read in the files before it (they count as read first, for repeats).
        ``after_file`` is called with each file's index once it is read."""
        self.counts = Counts()
        with closing(SeenAddresses(earlier)) if self.dedupe else nullcontext() as seen:
            for index, path in enumerate(self.paths[start:], start=start):
                checking = self._checking(index, path, seen)
                yield from self._read_file(index, path, checking)
                if after_file is not None:
                    after_file(index)

    def recipients(self, list_id: str, keep: Set[str] | None = None, *,
                   after: TailStart | None = None) -> Iterator[Recipient]:
        """The members as an issue's recipients, with only the ``keep`` columns (None: all);
        with ``after``, only those of the rows appended to the last file from there on.

        A file the address cache vouches for (these very bytes were read before, with nothing
        to correct) takes a lean path: none of its rows needs checking again, which makes
        reading a large list several times cheaper. Repeats are left in (``dedupe`` is not
        applied here): the ledger drops them as it freezes the audience.
        """
        self.counts = Counts()
        self.keep_unsendable = True
        if after is not None:
            index, path = len(self.paths) - 1, self.paths[-1]
            checked = self._as_recipients(index, path, list_id, keep)
            if after.offset:
                yield from self._read_file(index, path, checked, after=after)
            else:  # the whole file
                yield from self._read_file(index, path, checked, self._lean(path, list_id, keep))
            return
        for index, path in enumerate(self.paths):
            checked = self._as_recipients(index, path, list_id, keep)
            yield from self._read_file(index, path, checked, self._lean(path, list_id, keep))

    def addresses(self) -> Iterator[str]:
        """Only the comparison keys of the members: the count-only pass."""
        return (member.key for member in self.members())

    def count(self) -> Counts:
        for _ in self.members():
            pass
        return self.counts

    @property
    def errors(self) -> int:
        return sum(1 for p in self.problems if p.severity == Severity.ERROR)

    def _read_file(
        self,
        index: int,
        path: Path,
        read: Callable[[Iterator[Record], Header], Iterator[_T]],
        lean: Callable[[Iterator[list[str]], Header], Iterator[_T]] | None = None,
        after: TailStart | None = None,
    ) -> Iterator[_T]:
        """``lean`` reads a file the address cache vouches for, if given; ``after``, only the
        rows appended from there on (the header still from the top)."""
        try:
            self._file = self._start_file(index, path, after)
            handle = path.open(encoding="utf-8-sig", newline="", buffering=READ_BUFFER)
        except OSError as exc:
            self._end_pool()
            self._problem(path, None, f"cannot read: {exc.strerror}")
            return
        try:
            with handle:
                records = iter_records(handle, path)
                try:
                    header = first_header(records, path)
                except ListError as exc:
                    self._problem(exc.path, exc.line, exc.reason)
                    return
                if after is not None:
                    with text_from(path, after.offset) as rest:
                        records = iter_records(rest, path, after.lines)
                        yield from read(self._until_unreadable(records), header)
                elif lean is not None and (self._file.vouched or self._file.notes is not None):
                    yield from lean(clean_rows(handle), header)  # from after the header
                else:
                    yield from read(self._until_unreadable(records), header)
        finally:
            self._end_pool()
        if self.cache is not None:
            self._file.remember_in(self.cache)

    def _end_pool(self) -> None:
        """Stop the file's validation pool if it still runs (a read left off), and count."""
        if self._file.pool is not None:
            self.validated_in_pool += self._file.pool.close()
            self._file.pool = None

    def _checking(
        self, index: int, path: Path, seen: SeenAddresses | None
    ) -> Callable[[Iterator[Record], Header], Iterator[Member]]:
        """Every row checked: the members of one file, problems reported as they are met."""

        def read(records: Iterator[Record], header: Header) -> Iterator[Member]:
            for block in self._looked_up(records, header):
                yield from self._block_members(block, header, (index, path), seen)

        return read

    def _block_members(
        self, block: list[Record], header: Header, where: tuple[int, Path],
        seen: SeenAddresses | None,
    ) -> list[Member]:
        """The members of a block of records, repeats left out (asked about in one go), and
        the block's problems reported in line order, as a row at a time reported them."""
        held: list[Problem] = []
        self._held = held
        try:
            rows = [(record.line, row) for record in block
                    if (row := self._checked_row(record, header, where)) is not None]
            if seen is not None:
                rows = self._first_spellings(rows, where, seen)
        finally:
            self._held = None
            for problem in sorted(held, key=lambda problem: problem.line or 0):
                self._report(problem)
        return [Member(Subscriber(*row), where[1], line) for line, row in rows]

    def _first_spellings(
        self, rows: list[tuple[int, _Row]], where: tuple[int, Path], seen: SeenAddresses
    ) -> list[tuple[int, _Row]]:
        """``rows`` without those whose address was read before (each reported)."""
        firsts = seen.firsts([(address_key(row[0]), where[0], line) for line, row in rows])
        kept = []
        for (line, row), first in zip(rows, firsts, strict=True):
            if first is None:
                kept.append((line, row))
            else:
                self.counts.members -= 1
                self._duplicate(where[1], line, (self.paths[first[0]], first[1]))
        return kept

    def _rows(
        self, records: Iterator[Record], header: Header, where: tuple[int, Path]
    ) -> Iterator[_Row]:
        """Each valid row, every row checked and its problems reported (repeats left in)."""
        for block in self._looked_up(records, header):
            for record in block:
                row = self._checked_row(record, header, where)
                if row is not None:
                    yield row

    def _judged_recipients(
        self, records: Iterator[Record], header: Header, where: tuple[int, Path],
        list_id: str, keep: Set[str] | None,
    ) -> Iterator[Recipient]:
        """The recipients of a file whose addresses a pool is judging: a row whose address
        the pool accepted as written is taken as a vouched file's row is (what checking it
        would give), any other is checked the full way, with the pool's verdict on its
        address. Where the pool will not answer, the rest of the file is read by ``_rows``."""
        pool, file, counts = self._file.pool, self._file, self.counts
        assert pool is not None
        width, (email_at, name_at, others) = len(header.columns), header.layout
        kept = [(column, at) for column, at in others if keep is None or column in keep]
        none_kept = keep is not None and not (keep and others)  # as ``_kept`` gives them
        rows: Iterator[_Row] = iter(())
        chunk, end = Judged(0, [], frozenset(), {}), 0
        for record in records:
            fields = record.fields
            if fields is not None and len(fields) == width:
                index = file.record + 1
                if index >= end:
                    judged = pool.judged(index)
                    if judged is None:  # no more answers: the rest the full way
                        file.told = {}
                        rows = self._rows(chain([record], records), header, where)
                        break
                    chunk, end, file.told = judged, judged.end, judged.told
                email = fields[email_at].strip()
                at = index - chunk.start
                if email == chunk.addresses[at] and at not in chunk.irregular \
                        and "".join(fields).isprintable():
                    file.record = index
                    counts.rows += 1
                    counts.members += 1
                    yield make_recipient(Recipient, (
                        email,
                        fields[name_at].strip() if name_at is not None else "",
                        NO_FIELDS if none_kept else {c: fields[i].strip() for c, i in kept},
                        list_id,
                    ))
                    continue
            row = self._checked_row(record, header, where)
            if row is not None:
                columns = kept_fields(row[2], keep)
                yield make_recipient(Recipient, (row[0], row[1], columns, list_id))
        for address, name, columns in rows:
            yield make_recipient(Recipient, (address, name, kept_fields(columns, keep), list_id))

    def _looked_up(self, records: Iterator[Record], header: Header) -> Iterator[list[Record]]:
        """The records a few hundred at a time, the cache's verdicts on their addresses read
        for each block in one query: one query a row was a third of a first read's time."""
        at, width = header.email_index, len(header.columns)
        while block := list(islice(records, LOOK_AHEAD)):
            if self.cache is not None and not self._file.vouched and self._file.notes is None:
                asked = [r.fields[at].strip() if len(r.fields) == width else ""
                         for r in block if r.fields is not None]  # one per data record
                if self._file.pool is not None:  # its answers: neither looked up nor validated
                    self._file.told = self._file.pool.verdicts_on(self._file.record + 1, asked)
                self.cache.expect([raw for raw in asked if raw and raw not in self._file.told])
            yield block

    def _as_recipients(
        self, index: int, path: Path, list_id: str, keep: Set[str] | None
    ) -> Callable[[Iterator[Record], Header], Iterator[Recipient]]:
        def read(records: Iterator[Record], header: Header) -> Iterator[Recipient]:
            # Straight from the checked row, as the lean path makes them: no Subscriber or
            # Member in between (a frozen dataclass costs a microsecond a row to make) and
            # no Python-level ``__new__``.
            if self._file.pool is not None:
                return self._judged_recipients(records, header, (index, path), list_id, keep)
            return (
                make_recipient(Recipient, (email, name, kept_fields(fields, keep), list_id))
                for email, name, fields in self._rows(records, header, (index, path))
            )

        return read

    def _lean(
        self, path: Path, list_id: str, keep: Set[str] | None
    ) -> Callable[[Iterator[list[str]], Header], Iterator[Recipient]]:
        """A vouched file's rows become recipients unchecked: these bytes read clean before."""

        def read(rows: Iterator[list[str]], header: Header) -> Iterator[Recipient]:
            try:
                yield from lean_recipients(rows, header, self._file.notes or {}, path, list_id,
                                           keep, self._report, self.counts)
            except (csv.Error, UnicodeDecodeError, IndexError) as exc:  # digest taken just before
                raise ListError(path, None, f"changed while it was being read ({exc})") from exc

        return read

    def _start_file(self, index: int, path: Path, after: TailStart | None = None) -> FileRead:
        if self.cache is None:
            return FileRead(index, path)
        if after is not None:  # vouched for whole, if at all: never with notes of a part
            return FileRead(index, path, after.vouch_as, replayable=False)
        digest = file_digest(path)
        if self.cache.is_clean(digest):
            return FileRead(index, path, digest, vouched=True)
        notes = self.cache.notes(digest)
        if notes is not None:
            return FileRead(index, path, digest, notes=notes)
        # To be read row by row: what is new is validated over every core meanwhile.
        pool = Prevalidation(path, self.cache.path, self.pool_from)
        return FileRead(index, path, digest, pool=pool)

    def _until_unreadable(self, records: Iterator[Record]) -> Iterator[Record]:
        """The records, stopping (with a problem noted) where the file cannot be decoded."""
        try:
            yield from records
        except ListError as exc:
            self._problem(exc.path, exc.line, exc.reason)

    def _checked_row(
        self,
        record: Record,
        header: Header,
        where: tuple[int, Path],
    ) -> _Row | None:
        """The row's (email, name, other columns) if it is a valid one (it counts as a member:
        a repeat is told apart later, by the block)."""
        if record.error:
            self.counts.rows += 1
            self.counts.invalid += 1
            self._problem(where[1], record.line, record.error)
            return None
        if record.fields is None:
            return None  # a comment or a blank line
        self._file.record += 1
        joined = "".join(record.fields)
        if not joined.strip():
            return None  # rows of empty cells that spreadsheets leave behind
        self.counts.rows += 1
        try:
            row = self._row(record, header)
        except ConfigError as exc:
            self.counts.invalid += 1
            self._refuse(where[1], record.line, str(exc))
            return None
        # One C-speed test per row (0.1 µs): only a row with a character that is not
        # printable (a control character, or a space other than U+0020) is looked at field
        # by field.
        if not joined.isprintable() and self._unfit_for_headers(row, where[1], record.line):
            self.counts.invalid += 1
            return None
        self.counts.members += 1
        return row

    def _unfit_for_headers(self, row: _Row, path: Path, line: int) -> bool:
        """Whether the row is invalid: its name (which goes in the To header) holds a control
        character or a line break. Such a character in another column is a warning: it is
        fine in the body, and a subject using that column fails for this member alone.

        As an issue's recipients (``keep_unsendable``) such a member is kept and nothing is
        reported: the send fails that member alone, and records why on its ledger row."""
        _, name, fields = row
        found = UNFIT_FOR_HEADERS.search(name)
        if found is not None:  # never vouched for: each read reports it again
            self._file.spotless = self._file.replayable = False
        if self.keep_unsendable:
            return False
        if found is not None:
            reason = f"{NAME} holds {describe_character(found.group())}, which an email header " \
                     "cannot carry"
            self._problem(path, line, reason)
            return True
        for column, value in fields.items():
            if (match := UNFIT_FOR_HEADERS.search(value)) is not None:
                reason = (f"{column} holds {describe_character(match.group())}: fine in the "
                          "body, but a subject that uses the column cannot be sent to this member")
                self._report(Problem(path, line, reason, Severity.WARNING))
        return False

    def _row(self, record: Record, header: Header) -> _Row:
        """The record's normalised address, name and other columns; ConfigError if invalid."""
        fields = record.fields or []
        if len(fields) != len(header.columns):
            raise ConfigError(column_count_problem(record, header))
        email, name, others = header.split(fields)
        return self._normalise(email, record.line), name, others

    def _normalise(self, raw: str, line: int) -> str:
        if self._file.vouched:
            return raw.strip()
        if self._file.notes is not None:  # these bytes were read before: their verdicts
            return self._file.as_noted(raw)
        if self.cache is None or not raw:  # an empty cell is refused without asking
            return normalise_address(raw, check_deliverability=self.check_deliverability)
        told = self._file.told.get(raw)  # stored in the cache too: a look-up would find it
        if told is not None and told[1] is not None:
            raise ConfigError(told[1])
        known = told[0] if told is not None else self.cache.get(raw)
        if known is None:
            known = self._validated(raw, self.cache)
        if known != raw.strip():
            self._file.spotless = False
            self._file.noted[self._file.record] = RowNote(line, known, None)
        return known

    @staticmethod
    def _validated(raw: str, cache: AddressCache) -> str:
        """email-validator's verdict on an address not accepted before, remembered either way."""
        if (reason := cache.refusal(raw)) is not None:
            raise ConfigError(reason)
        try:
            known = normalise_address(raw)
        except ConfigError as exc:
            if raw.strip():  # an empty cell is refused at no cost
                cache.put_refused(raw, str(exc))
            raise
        cache.put(raw, known)
        return known

    def _report(self, problem: Problem) -> None:
        if self._held is not None:
            self._held.append(problem)
        else:
            self._on_problem(problem)

    def _duplicate(self, path: Path, line: int, first: tuple[Path, int]) -> None:
        self.counts.duplicates += 1
        other = f"line {first[1]}" if first[0] == path else f"{first[0].name}:{first[1]}"
        reason = f"duplicate of {other} (kept the first)"
        self._report(Problem(path, line, reason, Severity.WARNING, first))

    def _refuse(self, path: Path, line: int, reason: str) -> None:
        """An invalid row that a later read of the same bytes can refuse from its note."""
        self._file.spotless = False
        self._file.noted[self._file.record] = RowNote(line, None, reason)
        self._report(Problem(path, line, reason))

    def _problem(self, path: Path, line: int | None, reason: str) -> None:
        self._file.spotless = self._file.replayable = False
        self._report(Problem(path, line, reason))
