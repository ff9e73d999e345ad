"""Administering lists: counting, adding, removing, importing and exporting members.

These are what the ``lists`` commands do, minus the printing. The suppression store always
wins over the CSV files: a suppressed address is counted, never imported, never exported.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import IO

from sqlalchemy import Connection

from ..errors import ConfigError, ListError, NotFoundError
from ..models import Subscriber
from ..store import suppressions
from .address import address_key, row_key
from .addresscache import AddressCache
from .config import PublicationConfig
from .csvfile import EMAIL, NAME, read_header
from .edit import append_members, remove_member
from .members import Member, MemberReader
from .problems import Counts, Problem, Severity

_CHUNK = 500
ProblemSink = Callable[[Problem], None]


@dataclass(frozen=True, slots=True)
class ListStats:
    """One list's numbers: rows read, valid members, and how many of them are suppressed."""

    list_id: str
    files: tuple[Path, ...]
    counts: Counts
    suppressed: int

    @property
    def recipients(self) -> int:
        return self.counts.members - self.suppressed


def reader_for(
    config: PublicationConfig,
    list_id: str,
    *,
    check_deliverability: bool = False,
    on_problem: ProblemSink | None = None,
    cache: AddressCache | None = None,
) -> MemberReader:
    """``cache``: the publication's address cache, which spares a list read before most of
    its validation (a million addresses: seconds, not half a minute)."""
    return MemberReader(
        config.member_paths(list_id),
        check_deliverability=check_deliverability,
        on_problem=on_problem,
        cache=cache,
    )


def list_stats(
    config: PublicationConfig,
    list_id: str,
    conn: Connection,
    *,
    check_deliverability: bool,
    cache: AddressCache | None = None,
) -> ListStats:
    """Count a list in one streaming pass, asking the store about suppressions in chunks."""
    reader = reader_for(
        config, list_id, check_deliverability=check_deliverability, on_problem=_ignore,
        cache=cache,
    )
    suppressed = suppressions.suppressed_among(conn, reader.addresses(), list_id)
    return ListStats(list_id, reader.paths, reader.counts, len(suppressed))


def _ignore(problem: Problem) -> None:
    """For passes that only count: problems are tallied in ``Counts``, not kept."""


def find_member(reader: MemberReader, email: str) -> Member | None:
    key = address_key(email)
    return next((m for m in reader.members() if m.key == key), None)


@dataclass(frozen=True, slots=True)
class Added:
    """Where the subscriber now is: a new row in ``path``, or the row it already had."""

    path: Path
    existing: Member | None = None


def add_member(
    config: PublicationConfig,
    list_id: str,
    subscriber: Subscriber,
    conn: Connection,
    cache: AddressCache | None = None,
) -> Added:
    """Append ``subscriber`` to the list's first members file, unless it is already there."""
    target = config.member_paths(list_id)[0]
    missing = read_header(target).missing_for(subscriber)
    if missing:
        raise ListError(target, None, f"no column named {', '.join(missing)}; add it first")
    reader = reader_for(config, list_id, on_problem=_ignore, cache=cache)
    existing = find_member(reader, subscriber.email)
    if existing is not None:
        return Added(existing.path, existing)
    if suppressions.is_suppressed(conn, subscriber.email, list_id):
        raise ConfigError(
            f"{subscriber.email} is suppressed for list {list_id!r} (unsubscribed, bounced or "
            "blocked by hand); lift the suppression before adding the address again"
        )
    append_members(target, [subscriber])
    return Added(target)


def remove_address(config: PublicationConfig, list_id: str, email: str) -> dict[Path, list[int]]:
    """Drop ``email`` from every members file of the list; the lines removed, per file."""
    key = row_key(email)
    removed: dict[Path, list[int]] = {}
    for path in config.member_paths(list_id):
        lines = remove_member(path, key)
        if lines:
            removed[path] = lines
    if not removed:
        files = ", ".join(str(p) for p in config.member_paths(list_id))
        raise NotFoundError(f"{email} is not in list {list_id!r} ({files})")
    return removed


@dataclass(slots=True)
class ImportReport:
    source: Path
    target: Path
    new: int = 0
    duplicate: int = 0
    invalid: int = 0
    suppressed: int = 0
    problems: list[Problem] = field(default_factory=list)


def import_members(
    config: PublicationConfig,
    list_id: str,
    source: Path,
    conn: Connection,
    *,
    dry_run: bool = False,
    check_deliverability: bool = False,
) -> ImportReport:
    """Add the rows of ``source`` that are valid, new to the list and not suppressed."""
    paths = config.member_paths(list_id)
    report = ImportReport(source, paths[0])
    _check_importable(source, paths)
    reader = MemberReader(
        (*paths, source),
        check_deliverability=check_deliverability,
        on_problem=lambda problem: _note_import_problem(report, problem),
    )
    incoming = (m for m in reader.members() if m.path == source)
    wanted = (m.subscriber for m in _not_suppressed(incoming, conn, list_id, report))
    if dry_run:
        report.new = sum(1 for _ in wanted)
    else:
        report.new = append_members(report.target, wanted)
    return report


def _check_importable(source: Path, paths: tuple[Path, ...]) -> None:
    if source.resolve() in {p.resolve() for p in paths}:
        raise ConfigError(f"{source} is already one of this list's members files")
    if not source.is_file():
        raise ConfigError(f"{source}: no such file")
    incoming = read_header(source).columns
    missing = read_header(paths[0]).missing(c for c in incoming if c != EMAIL)
    if missing:
        raise ListError(
            source,
            None,
            f"{'column' if len(missing) == 1 else 'columns'} {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not in {paths[0].name}; "
            f"add them to its header row first, or remove them from {source.name}",
        )


def _note_import_problem(report: ImportReport, problem: Problem) -> None:
    if problem.path != report.source:
        return  # the list's own files are `lists check`'s business, not the import's
    if problem.severity == Severity.ERROR:
        report.invalid += 1
    else:
        report.duplicate += 1
    if problem.first is not None and problem.first[0] != report.source:
        kept = problem.first
        reason = f"already in the list ({kept[0].name}:{kept[1]})"
        problem = Problem(problem.path, problem.line, reason, problem.severity, kept)
    report.problems.append(problem)


def _not_suppressed(
    members: Iterable[Member], conn: Connection, list_id: str, report: ImportReport
) -> Iterator[Member]:
    forgotten = suppressions.forgotten_digests(conn)
    for chunk in _chunks(members):
        found = suppressions.suppressed_among(conn, (m.key for m in chunk), list_id, forgotten)
        for member in chunk:
            if member.key not in found:
                yield member
                continue
            report.suppressed += 1
            reason = f"{member.subscriber.email} is suppressed for {list_id}; not added"
            report.problems.append(Problem(member.path, member.line, reason, Severity.WARNING))


def _chunks(items: Iterable[Member]) -> Iterator[list[Member]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, _CHUNK)):
        yield chunk


@dataclass(frozen=True, slots=True)
class ExportReport:
    written: int
    suppressed: int
    invalid: int


def export_columns(paths: Iterable[Path]) -> list[str]:
    """email, name, then every other column of the files, in order of first appearance."""
    columns = [EMAIL, NAME]
    for path in paths:
        columns += [c for c in read_header(path).extra if c not in columns]
    return columns


def export_members(
    config: PublicationConfig,
    list_id: str,
    conn: Connection,
    out: IO[str],
    *,
    check_deliverability: bool = False,
) -> ExportReport:
    """Write the list's members, minus suppressed addresses, as CSV to ``out``."""
    reader = reader_for(
        config, list_id, check_deliverability=check_deliverability, on_problem=_ignore
    )
    columns = export_columns(reader.paths)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    written = suppressed = 0
    forgotten = suppressions.forgotten_digests(conn)
    for chunk in _chunks(reader.members()):
        found = suppressions.suppressed_among(conn, (m.key for m in chunk), list_id, forgotten)
        kept = [m.subscriber for m in chunk if m.key not in found]
        writer.writerows(_export_row(s, columns) for s in kept)
        written += len(kept)
        suppressed += len(chunk) - len(kept)
    return ExportReport(written, suppressed, reader.counts.invalid)


def _export_row(subscriber: Subscriber, columns: list[str]) -> list[str]:
    values = {**subscriber.fields, EMAIL: subscriber.email, NAME: subscriber.name}
    return [values.get(column, "") for column in columns]
