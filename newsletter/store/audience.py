"""Freezing an issue's audience into the ledger, chunk by chunk, under a lease.

Members are read in runs, each sorted by address (``in_address_runs``), and written in
chunks of whole batches, so a batch holds neighbours in address order, not in the list's.
Each chunk is streamed into a temporary table (``audience_stage``) with the driver's bulk
path, then copied into ``recipients`` by one ``INSERT … SELECT``: each row's batch is its
position in the chunk divided by the batch size, and the unique index on
``(issue_id, email)`` drops repeats, the first one winning (across chunks too).
When an earlier issue to the list was frozen from the very same files (``audience_sources``),
its rows are copied instead, page by page in SQL (``audience_reuse``); when rows were appended
to the list's last file since, they are read after the copy (``Continued``).
On PostgreSQL a chunk goes straight into ``recipients`` by COPY instead, its batches made
first (``audience_copy``), unless one of its addresses is in the ledger already.
Suppressed addresses keep a row (``suppressed``, in no batch); batches left with gaps are
given their real sizes. Each chunk commits with its batches, so other processes send them
while the next chunk is read; per member, Python only builds a tuple.

One worker freezes at a time: it holds the issue's freeze lease, renewed by every chunk.
The others send what is committed and wait for more until ``audience_frozen`` is set. A
freeze that died (its process gone, or its lease run out) is taken over from the first
member: what it committed stays, and the conflicts on the address skip it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain, islice

from sqlalchemy import Connection, Engine, func, select, update

from ..models import Recipient
from ..processes import current_owner, owner_is_dead
from . import audience_copy, audience_origins, audience_sources
from . import issues as issue_store
from .audience_origins import AudienceOrigin, FrozenAudience
from .audience_reuse import CopyPages
from .audience_sources import AudienceSource, Continued, SourceKey
from .audience_stage import (
    AUDIENCE_STAGE,
    FreezeCounts,
    clear_stage,
    full_batches,
    insert_staged,
    mark_suppressed,
    new_batches,
    settle_batches,
    stage_members,
)
from .issues import IssueRecord
from .ledger import next_seq
from .suppressions import normalise
from .tables import issues, recipients


class FreezeLost(Exception):
    """Another worker took the freeze over (this one's lease ran out); it finishes it."""


@dataclass(frozen=True, slots=True)
class FreezeLease:
    """Who freezes, and how a chunk renews their claim."""

    owner: str
    seconds: float
    clock: Callable[[], float]

    def until(self) -> float:
        return self.clock() + self.seconds


def take_freeze(conn: Connection, record: IssueRecord, lease: FreezeLease) -> bool:
    """Claim the freeze of ``record``'s audience; False when it is frozen, or being frozen
    by a worker that is alive."""
    if record.audience_frozen or freeze_going_on(record, lease.clock(), lease.owner):
        return False
    taken = conn.execute(
        update(issues)
        .where(
            issues.c.id == record.id,
            issues.c.audience_frozen == 0,
            issues.c.freeze_owner == record.freeze_owner,  # nobody took it meanwhile
        )
        .values(freeze_owner=lease.owner, freeze_until=lease.until())
    )
    return taken.rowcount == 1


def freeze_going_on(record: IssueRecord, now: float, me: str = "") -> bool:
    """True while a live worker other than ``me`` holds the freeze of ``record``."""
    holder = record.freeze_owner
    if record.audience_frozen or not holder or holder == me:
        return False
    return record.freeze_until > now and not owner_is_dead(holder)


#: Members per transaction unless the caller says (``NEWSLETTER_FREEZE_CHUNK``). SQLite has
#: one writer: every other sender waits while a chunk is written, and short waits keep them
#: busy (a 1M send: 5,000 was about 5 % faster than 20,000, with 2,000 in between).
#: PostgreSQL's senders do not wait for a freeze, and each chunk costs round trips there
#: (a 300k freeze alone: 20,000 took 6.4 to 6.9 s, 5,000 took 7.9 to 8.8 s).
DEFAULT_CHUNKS = {"sqlite": 5_000, "postgresql": 20_000}
#: How long a freeze's claim holds unless renewed (``NEWSLETTER_LEASE_SECONDS``).
DEFAULT_LEASE_SECONDS = 120.0


@dataclass(frozen=True, slots=True)
class Provenance:
    """What a freeze read its audience from, recorded once it is whole (``audience_sources``)
    so that a later issue may copy it. ``key`` is asked after the last chunk: the list's
    files may have changed while they were read, and then it answers None (nothing recorded)."""

    list_id: str
    key: Callable[[], SourceKey | None]


def freeze_audience(
    engine: Engine,
    issue_id: int,
    audience: Iterable[Recipient] | AudienceSource | Continued,
    *,
    batch_size: int,
    at: datetime,
    chunk_size: int = 0,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    lease: FreezeLease | None = None,
    provenance: Provenance | None = None,
    on_taken: Callable[[], None] = lambda: None,
) -> FreezeCounts | None:
    """Write the issue's audience and batches, a chunk per transaction: members read from
    the list, or a copy of an earlier issue's rows (``AudienceSource``), in the order that
    issue froze them, so the same members fall in the same batches, followed by members read
    (``Continued``); today's suppressions apply either way. None (and nothing read of
    ``audience``) when it is frozen, or a live worker is freezing it. ``FreezeLost`` when
    another worker took the freeze over meanwhile (this one's lease ran out).

    ``chunk_size``: members per transaction (0: ``DEFAULT_CHUNKS`` for the database).
    ``lease``: who freezes (by default this process, for ``lease_seconds`` a chunk);
    ``on_taken`` is called once it holds the lease, before anything is written.
    ``provenance``: what to record the audience as read from, once it is whole."""
    lease = lease or FreezeLease(current_owner(), lease_seconds, time.time)
    per_chunk = _per_chunk(engine, batch_size, chunk_size)
    run = _FreezeRun(issue_id, batch_size, lease, at, provenance, on_taken)
    if isinstance(audience, AudienceSource):
        audience = Continued(audience, ())
    if isinstance(audience, Continued):
        source = audience.source
        run.origin = AudienceOrigin(source.issue_id, audience.appended_to, audience.from_line)
        run.carried = FreezeCounts(members=source.duplicates, duplicates=source.duplicates)
        pages = CopyPages(source, per_chunk, source.first_row - 1)
        return _freeze(engine, run, chain(pages, _read_chunks(audience.members, per_chunk)))
    return _freeze(engine, run, _read_chunks(audience, per_chunk))


def _read_chunks(members: Iterable[Recipient], size: int) -> Iterator[list[Recipient]]:
    return _chunks(in_address_runs(members, size), size)


def _per_chunk(engine: Engine, batch_size: int, chunk_size: int) -> int:
    chunk_size = chunk_size or DEFAULT_CHUNKS.get(engine.dialect.name, 20_000)
    return batch_size * max(1, chunk_size // batch_size)  # a batch never spans two


@dataclass(slots=True)
class _FreezeRun:
    """One freeze: whose issue, how its chunks are cut, and what it records at the end."""

    issue_id: int
    batch_size: int
    lease: FreezeLease
    at: datetime
    provenance: Provenance | None
    on_taken: Callable[[], None]
    carried: FreezeCounts = field(default_factory=FreezeCounts)  # a copy's, from its source
    origin: AudienceOrigin = field(default_factory=AudienceOrigin)  # read, unless a copy
    whole: bool = True  # no row of the issue was written before: its rows are all this run's
    floor: int = 0  # the newest ledger row's id before the first chunk


#: A chunk of a freeze: members read from the list, or the next page of a copy.
Chunk = list[Recipient] | CopyPages


def _freeze(engine: Engine, run: _FreezeRun, chunks: Iterable[Chunk]) -> FreezeCounts | None:
    with engine.connect() as conn:
        with conn.begin():
            if not take_freeze(conn, issue_store.get(conn, run.issue_id), run.lease):
                return None
            run.whole = not audience_sources.has_rows(conn, run.issue_id)
            run.floor = _last_row_id(conn)
            AUDIENCE_STAGE.drop(conn, checkfirst=True)
            AUDIENCE_STAGE.create(conn)
        try:
            run.on_taken()
            with _foreign_keys_unchecked(conn):
                return _freeze_chunks(conn, run, chunks)
        finally:
            with conn.begin():
                AUDIENCE_STAGE.drop(conn, checkfirst=True)


@contextmanager
def _foreign_keys_unchecked(conn: Connection) -> Iterator[None]:
    """SQLite checks both foreign keys of every row a chunk inserts: a fifth of the
    ``INSERT … SELECT`` (0.6 s in a million-member freeze). These rows cannot break them:
    their batch ids come from a join with the batches made in the same transaction, and
    their issue id from the issue whose freeze lease that transaction renewed first. The
    setting belongs to the connection and is fixed inside a transaction, so it is turned
    off before the first chunk and back on after the last, before the connection is reused.
    """
    if conn.dialect.name != "sqlite":
        yield
        return
    with conn.begin():
        conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        with conn.begin():
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")


def _freeze_chunks(conn: Connection, run: _FreezeRun, chunks: Iterable[Chunk]) -> FreezeCounts:
    counts = run.carried
    for number, chunk in enumerate(chunks):
        with conn.begin():
            counts += _freeze_chunk(conn, run, chunk)
        _refresh_statistics(conn, number)
    # Asked before the last transaction: the files are hashed again, which would hold up
    # the senders waiting for SQLite's lock.
    key = run.provenance.key() if run.provenance is not None and run.whole else None
    with conn.begin():
        _end_freeze(conn, run.issue_id, run.lease)
        _record_origin(conn, run, counts)
        if key is not None and run.provenance is not None:
            _record_provenance(conn, run, run.provenance.list_id, key, counts)
    return counts


def _record_origin(conn: Connection, run: _FreezeRun, counts: FreezeCounts) -> None:
    """Say how the audience was frozen; its counts only if this run wrote all of it."""
    rows, repeats = counts.members - counts.duplicates, counts.duplicates
    frozen = FrozenAudience(run.origin, rows, repeats) if run.whole else \
        FrozenAudience(run.origin, None, None)
    audience_origins.record(conn, run.issue_id, frozen)


def _record_provenance(conn: Connection, run: _FreezeRun, list_id: str, key: SourceKey,
                       counts: FreezeCounts) -> None:
    """Say what the audience was read from: this run wrote all of it, under ``key``."""
    rows = AudienceSource(run.issue_id, run.floor + 1, _last_row_id(conn),
                          counts.members - counts.duplicates, counts.duplicates)
    audience_sources.record(conn, run.issue_id, list_id, key, rows)


def _chunks(members: Iterable[Recipient], size: int) -> Iterator[list[Recipient]]:
    iterator = iter(members)
    while chunk := list(islice(iterator, size)):
        yield chunk


#: The most members a freeze sorts at once (rounded up to whole chunks): about 30 MB of
#: members held. Larger runs save less and less (see ``in_address_runs``).
RUN_MEMBERS = 100_000


def in_address_runs(members: Iterable[Recipient], first: int,
                    most: int = RUN_MEMBERS) -> Iterator[Recipient]:
    """``members`` in runs sorted by address (lower-cased), each run twice as long as the
    one before, from ``first`` members up to ``most`` (rounded up to a multiple of
    ``first``); a repeat stays behind its first spelling (the sort is stable).

    The ledger's unique index on (issue, address) is where a freeze's database time goes.
    A real list is in no particular address order, so each chunk's rows land all over the
    index and every commit rewrites pages across it: a million members in list order cost
    SQLite about 25 s of CPU, in runs of up to 100,000 under 4 s (``bench/send.py``'s ledger
    floor). Sorting the whole list would save somewhat more, but hold all of it. A run is
    sorted before any of it is written, so the first one is short: senders start on it
    while the rest is read."""
    iterator, size = iter(members), first
    most = -(-most // first) * first
    while run := list(islice(iterator, size)):
        run.sort(key=_address_order)
        yield from run
        size = min(most, size * 2)


def _address_order(member: Recipient) -> str:
    return normalise(member.email)  # the key the ledger's unique index holds


def _freeze_chunk(conn: Connection, run: _FreezeRun, chunk: Chunk) -> FreezeCounts:
    """One chunk, inside the caller's transaction: a copy's next page; members COPYed on
    PostgreSQL unless an address of them is in the ledger already, else through the stage."""
    if isinstance(chunk, CopyPages):
        # The page is read from the ledger: on SQLite a transaction that has read cannot
        # take the write lock once another has written meanwhile ("database is locked" at
        # once), so the lease is renewed first, taking it. The copy is quick SQL: senders
        # wait only for it.
        _renew(conn, run.issue_id, run.lease)
        return chunk.copy_next(conn, run.issue_id, run.batch_size, run.at)
    if conn.dialect.name == "postgresql":
        copied = _copy_chunk(conn, run, chunk)
        if copied is not None:
            return copied
    return _stage_chunk(conn, run, chunk)


def _copy_chunk(conn: Connection, run: _FreezeRun, members: list[Recipient]) -> FreezeCounts | None:
    """The chunk written by ``audience_copy``; None, with nothing of it written, when an
    address of it is in the ledger already (an earlier chunk's, or a dead freeze's)."""
    rows = audience_copy.unique_rows(members)
    _renew(conn, run.issue_id, run.lease)
    first_seq = next_seq(conn, run.issue_id)
    try:
        with conn.begin_nested():
            copied = audience_copy.copy_chunk(conn, run.issue_id, rows, batch_size=run.batch_size,
                                              first_seq=first_seq, at=run.at)
    except Exception as exc:  # the driver's own error: COPY goes around SQLAlchemy
        if audience_copy.is_repeat(exc):
            return None
        raise
    total = len(members)
    return FreezeCounts(total, total - copied.unique, copied.suppressed, copied.queued,
                        copied.batches)


def _stage_chunk(conn: Connection, run: _FreezeRun, members: list[Recipient]) -> FreezeCounts:
    """The chunk streamed into the stage, then copied into the ledger by one statement."""
    clear_stage(conn)
    total = stage_members(conn, members)
    issue_id, batch_size = run.issue_id, run.batch_size
    # The first write to the ledger's database: on SQLite it waits for the write lock (and
    # takes it) before anything of the ledger is read, so what is read next stays true.
    _renew(conn, issue_id, run.lease)
    start_seq = next_seq(conn, issue_id)
    last_row = _last_row_id(conn)
    sizes = full_batches(total, batch_size)
    new_batches(conn, issue_id, start_seq, sizes, run.at)
    inserted = insert_staged(conn, issue_id, start_seq, batch_size, last_row)
    suppressed = mark_suppressed(conn, issue_id, run.at, last_row)
    queued = inserted - suppressed
    # Repeats or suppressions left gaps: then the batches are what they hold.
    batch_count = len(sizes) if queued == total else settle_batches(conn, issue_id, start_seq)
    return FreezeCounts(total, total - inserted, suppressed, queued, batch_count)


def _renew(conn: Connection, issue_id: int, lease: FreezeLease) -> None:
    held = conn.execute(
        update(issues)
        .where(
            issues.c.id == issue_id,
            issues.c.audience_frozen == 0,
            issues.c.freeze_owner == lease.owner,
        )
        .values(freeze_until=lease.until())
    )
    if held.rowcount != 1:
        raise FreezeLost(issue_id)


def _end_freeze(conn: Connection, issue_id: int, lease: FreezeLease) -> None:
    _renew(conn, issue_id, lease)
    conn.execute(
        update(issues)
        .where(issues.c.id == issue_id)
        .values(audience_frozen=1, freeze_owner="", freeze_until=0.0)
    )


def _last_row_id(conn: Connection) -> int:
    """The newest ledger row's id: a chunk's rows are the ones above it."""
    return int(conn.execute(select(func.max(recipients.c.id))).scalar() or 0)


def _refresh_statistics(conn: Connection, chunk_number: int) -> None:
    """PostgreSQL's planner needs fresh statistics as the ledger grows, or it may think the
    table empty and scan all of it for each batch's query (minutes for a million rows):
    after chunks 1, 2, 4, 8… the cost stays a small share of the freeze."""
    done = chunk_number + 1
    if conn.dialect.name == "postgresql" and done & (done - 1) == 0:
        with conn.begin():
            conn.exec_driver_sql("ANALYZE recipients")
