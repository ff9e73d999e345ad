"""Confirmed sign-ups: from the shared journal into this host's files.

A reader who confirms a sign-up (or changes their name on their own page) is written to
the journal in the database first (``store.signup_journal``): every host sees it there.
Each host then copies the entries it has not applied yet into its own ``subscribers/``
files — a ``join`` becomes a row of the list's sign-up file, a ``rename`` a new name on the
address's rows — and remembers the last entry it applied in a sidecar file,
``.<list>.journal-position``, beside the list's files. The files stay what every send
reads and what an admin edits; the journal is how a change reaches every host's copy.

Applying is safe to repeat and to interrupt. A join is skipped when a file of the list
already holds the address, so a crash between the append and the position's write (the
entry is applied again next time) adds no second row. And because the position only moves
forward, a row an admin removes stays removed: its entry is never applied again.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path

from sqlalchemy import Connection

from ..errors import ListError, NewsletterError
from ..models import Subscriber
from ..render.message import UNFIT_FOR_HEADERS, describe_character
from ..store import Store
from ..store import signup_journal as journal
from ..store.signup_journal import JournalEntry, JournalKind
from .address import AddressKeys, address_key
from .appending import append_text, held, locked, repair_interrupted_append
from .config import PublicationConfig
from .csvfile import EMAIL, NAME, Header, first_header, format_row, iter_records, line_ending
from .edit import rename_members, sync_folder
from .member_keys import MemberKeys

log = logging.getLogger(__name__)

#: The header a sign-up file is created with.
SIGNUP_COLUMNS = (EMAIL, NAME)
#: Journal entries read and applied at a time (each batch ends with the position's write).
BATCH = 500


# -- appending rows ------------------------------------------------------------------------
def append_rows(path: Path, rows: Iterable[Subscriber]) -> int:
    """Append a row per subscriber to the member file ``path``, under its lock, in one write;
    how many. A missing file is created with the header ``email,name``. Only the columns the
    file has are written: a file without a ``name`` column keeps addresses alone."""
    wanted = list(rows)
    if not wanted:
        return 0
    with locked(path):
        try:
            _create_if_missing(path)
            append_text(path, _text_for(path, wanted))
        except OSError as exc:  # a full disk, a folder that refuses files…
            raise ListError(path, None, f"cannot append to it: {exc.strerror}") from exc
    return len(wanted)


def repair(path: Path) -> bool:
    """Cut off an append a crash interrupted, if ``path`` ends with part of one (appends
    do this themselves first; a send does it before reading the list); whether it did."""
    with held(path):
        return repair_interrupted_append(path)


@dataclass(frozen=True, slots=True)
class _Shape:
    """What an append must know of a file: its columns, line ending and last byte."""

    header: Header | None  # None: the file is empty
    newline: str
    ends_with_newline: bool


def _text_for(path: Path, rows: Sequence[Subscriber]) -> str:
    shape = _shape(path)
    text = "" if shape.ends_with_newline else shape.newline  # never glued to the last row
    header = shape.header
    if header is None:  # emptied by hand: it gets its header again
        header = Header(SIGNUP_COLUMNS)
        text += format_row(header.columns, shape.newline)
    for subscriber in rows:
        _refuse_unfit_name(path, subscriber)
        text += format_row(header.row(subscriber), shape.newline)
    return text


def _shape(path: Path) -> _Shape:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        records = iter_records(handle, path)
        first = next((r for r in records if r.is_data or r.error), None)
        if first is None and os.fstat(handle.fileno()).st_size == 0:
            return _Shape(None, "\n", True)
        header = first_header([first] if first is not None else [], path)
    assert first is not None
    with path.open("rb") as raw:
        raw.seek(-1, os.SEEK_END)
        last = raw.read(1)
    return _Shape(header, line_ending(first), last == b"\n")


def _refuse_unfit_name(path: Path, subscriber: Subscriber) -> None:
    """A row whose name could not go in a To header would be refused by every read."""
    found = UNFIT_FOR_HEADERS.search(subscriber.name)
    if found is not None:
        raise ListError(path, None, f"a {NAME} holding {describe_character(found.group())} "
                                    "cannot be added: an email header cannot carry it")


def _create_if_missing(path: Path) -> None:
    """Create the file with its header, atomically: it appears whole or not at all."""
    if path.exists():
        return
    with tempfile.NamedTemporaryFile(
        "wb", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
    ) as temp:
        temp.write(format_row(SIGNUP_COLUMNS).encode("utf-8"))
        temp.flush()
        os.fsync(temp.fileno())
    try:
        os.chmod(temp.name, 0o644)
        os.link(temp.name, path)  # never over a file someone made meanwhile
    except FileExistsError:
        pass
    finally:
        os.unlink(temp.name)
    sync_folder(path.parent)


# -- applying the journal --------------------------------------------------------------------
@dataclass(slots=True)
class ApplyReport:
    """What one list's apply did; ``position`` is the last entry now applied on this host."""

    list_id: str
    position: int = 0
    entries: int = 0
    #: Addresses appended to the sign-up file.
    joined: list[str] = field(default_factory=list)
    #: Joins of addresses a file of the list already held (a repeat, or applied before a crash).
    already_members: int = 0
    #: Joins to a list that takes no sign-ups (its ``signups`` key removed since): skipped.
    no_signup_file: int = 0
    #: Rows given a new name, as file:line.
    renamed: list[str] = field(default_factory=list)

    @property
    def changed_files(self) -> bool:
        return bool(self.joined or self.renamed)


def position_path(config: PublicationConfig, list_id: str) -> Path:
    """Where this host keeps the last journal entry it applied to the list's files."""
    return config.subscribers_dir / f".{list_id}.journal-position"


def apply_before_send(config: PublicationConfig, store: Store, list_id: str) -> None:
    """Bring this host's files up to the journal before a send reads them, so that a reader
    confirmed on any host is in the audience. A file that cannot take them now (edited by
    hand for over two minutes, a broken header) does not hold the send up: the journal
    keeps them for the next send, and the problem is logged."""
    try:
        report = apply_journal(config, store, list_id)
    except (NewsletterError, OSError) as exc:
        log.error("list %s: sign-ups not applied before this send: %s", list_id, exc)
        return
    if report.changed_files:
        log.info("list %s: %s sign-up%s added, %s name%s changed (journal position %s)",
                 list_id, len(report.joined), "" if len(report.joined) == 1 else "s",
                 len(report.renamed), "" if len(report.renamed) == 1 else "s",
                 report.position)


def apply_journal(
    config: PublicationConfig, source: Store | Connection, list_id: str, *, batch: int = BATCH,
    members: MemberKeys | None = None,
) -> ApplyReport:
    """Copy the list's journal entries this host has not applied yet into its files.

    One process at a time applies a list (the position file's lock); a batch's changes are
    made before the position moves past it. ``source``: the store, or a connection (whose
    transaction sees entries it has just written). ``members``: the process's index of the
    member files, which a long-lived process (the web app) keeps: whether a file of the list
    holds a joining reader is then a look-up, not a reading of every file of the list."""
    config.list(list_id)  # an unknown list is a NotFoundError, not an empty journal
    where = position_path(config, list_id)
    report = ApplyReport(list_id)
    signups = config.signup_path(list_id)
    if signups is not None and signups.exists():
        repair(signups)  # a torn row left by a crash goes before anyone reads the list
    with held(where):
        report.position = read_position(where)
        while entries := _entries(source, list_id, report.position, batch):
            _apply(config, list_id, entries, report, members)
            report.position = entries[-1].id
            report.entries += len(entries)
            write_position(where, report.position)
            if len(entries) < batch:
                break
    return report


def apply_all(config: PublicationConfig, store: Store) -> list[ApplyReport]:
    """Apply the journal to every list: joins reach lists that take sign-ups, and a reader's
    new name reaches any list they are in, sign-ups or not."""
    return [apply_journal(config, store, list_id) for list_id in config.lists]


def _entries(
    source: Store | Connection, list_id: str, position: int, batch: int
) -> list[JournalEntry]:
    if isinstance(source, Connection):
        return list(journal.entries_after(source, list_id, position, limit=batch))
    with source.engine.connect() as conn:
        return list(journal.entries_after(conn, list_id, position, limit=batch))


def _apply(
    config: PublicationConfig, list_id: str, entries: list[JournalEntry], report: ApplyReport,
    members: MemberKeys | None,
) -> None:
    """Entries in order, a run of one kind at a time (a join, then a rename of that reader,
    leaves the new name; a rename, then a join, the join's)."""
    for kind, run in groupby(entries, key=lambda entry: entry.kind):
        if kind == JournalKind.JOIN:
            _join(config, list_id, list(run), report, members)
        else:
            _rename(config, list_id, list(run), report)


def _join(
    config: PublicationConfig, list_id: str, joins: list[JournalEntry], report: ApplyReport,
    members: MemberKeys | None,
) -> None:
    target = config.signup_path(list_id)
    if target is None:
        report.no_signup_file += len(joins)
        return
    wanted: dict[str, JournalEntry] = {}
    for entry in joins:
        wanted.setdefault(address_key(entry.email), entry)
    held_already = _held(config.member_paths(list_id), AddressKeys(wanted), members)
    new = [_subscriber(e) for key, e in wanted.items() if key not in held_already]
    append_rows(target, new)
    report.joined += [s.email for s in new]
    report.already_members += len(joins) - len(new)


def _subscriber(entry: JournalEntry) -> Subscriber:
    """A name no header could carry is left out (the address still joins)."""
    return Subscriber(entry.email, "" if UNFIT_FOR_HEADERS.search(entry.name) else entry.name)


def _rename(
    config: PublicationConfig, list_id: str, renames: list[JournalEntry], report: ApplyReport
) -> None:
    names = {address_key(entry.email): entry.name for entry in renames}  # the latest wins
    for path in config.member_paths(list_id):
        report.renamed += [f"{path}:{line}" for line in rename_members(path, names)]


def _held(paths: Sequence[Path], keys: AddressKeys, members: MemberKeys | None) -> set[str]:
    """Those of ``keys`` some row of ``paths`` holds: looked up in ``members``, or else
    found by reading the files (a one-off apply, as a send's or the CLI's, reads them once
    either way)."""
    if members is not None:
        return {key for key in keys.keys if members.holds(paths, key, strict=True)}
    return {key for path in paths for key in _keys_in(path, keys)}


def _keys_in(path: Path, keys: AddressKeys) -> Iterator[str]:
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ListError(path, None, f"cannot read: {exc.strerror}") from exc
    with handle:
        records = iter_records(handle, path)
        at = first_header(records, path).email_index
        for record in records:
            fields = record.fields
            if fields is not None and at < len(fields) and (key := keys.find(fields[at])):
                yield key


# -- the position file -----------------------------------------------------------------------
def read_position(path: Path) -> int:
    """The last entry applied; 0 before the first."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return 0
    except (OSError, UnicodeDecodeError) as exc:
        raise ListError(path, None, f"cannot read this host's journal position: {exc}") from exc
    if not text.isdigit():
        raise ListError(path, 1, f"{text[:40]!r} is not a journal position (a whole number); "
                                 "see docs/readers.md before deleting it")
    return int(text)


def write_position(path: Path, position: int) -> None:
    """Replace the position atomically (a temporary file, fsync'd, renamed over it)."""
    try:
        _replace_position(path, position)
    except OSError as exc:
        raise ListError(path, None, f"cannot write this host's journal position: "
                                    f"{exc.strerror}") from exc


def _replace_position(path: Path, position: int) -> None:
    with tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=path.parent, prefix=f"{path.name}.", suffix=".tmp",
        delete=False,
    ) as temp:
        temp.write(f"{position}\n")
        temp.flush()
        os.fsync(temp.fileno())
    os.replace(temp.name, path)
    sync_folder(path.parent)
