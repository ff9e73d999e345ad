"""Freezing an issue's audience into the ledger, chunk by chunk, under a lease.

Members are read in runs, each sorted by address (``in_address_runs``), and written in
chunks of whole batches, so a batch holds neighbours in address order, not in the list's.
Each chunk is streamed into a temporary table
with the driver's bulk path, then copied into ``recipients`` by one ``INSERT … SELECT``:
each row's batch is its position in the chunk divided by the batch size, and the unique
index on ``(issue_id, email)`` drops repeats, the first one winning (across chunks too).
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
from dataclasses import dataclass
from datetime import datetime
from itertools import islice

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)

from ..models import ALL_LISTS, BatchState, DeliveryStatus, Recipient
from ..processes import current_owner, owner_is_dead
from . import audience_copy
from . import issues as issue_store
from .bulk import bulk_write
from .db import dialect_insert
from .issues import IssueRecord
from .ledger import idempotency_key, next_seq
from .suppressions import normalise
from .tables import batches, issues, recipients, suppressions


@dataclass(frozen=True, slots=True)
class FreezeCounts:
    members: int = 0
    duplicates: int = 0
    suppressed: int = 0
    queued: int = 0
    batches: int = 0

    def __add__(self, other: FreezeCounts) -> FreezeCounts:
        return FreezeCounts(
            self.members + other.members,
            self.duplicates + other.duplicates,
            self.suppressed + other.suppressed,
            self.queued + other.queued,
            self.batches + other.batches,
        )


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


def freeze_audience(
    engine: Engine,
    issue_id: int,
    members: Iterable[Recipient],
    *,
    batch_size: int,
    at: datetime,
    chunk_size: int = 0,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    lease: FreezeLease | None = None,
) -> FreezeCounts | None:
    """Write the issue's audience and batches, a chunk per transaction; None (and nothing
    read of ``members``) when it is frozen, or a live worker is freezing it. ``FreezeLost``
    when another worker took the freeze over meanwhile (this one's lease ran out).
    ``chunk_size``: members per transaction (0: ``DEFAULT_CHUNKS`` for the database).
    ``lease``: who freezes (by default this process, for ``lease_seconds`` a chunk)."""
    lease = lease or FreezeLease(current_owner(), lease_seconds, time.time)
    chunk_size = chunk_size or DEFAULT_CHUNKS.get(engine.dialect.name, 20_000)
    per_chunk = batch_size * max(1, chunk_size // batch_size)  # a batch never spans two
    with engine.connect() as conn:
        with conn.begin():
            if not take_freeze(conn, issue_store.get(conn, issue_id), lease):
                return None
            AUDIENCE_STAGE.drop(conn, checkfirst=True)
            AUDIENCE_STAGE.create(conn)
        try:
            with _foreign_keys_unchecked(conn):
                chunks = _chunks(in_address_runs(members, per_chunk), per_chunk)
                return _freeze_chunks(conn, issue_id, chunks, batch_size, lease, at)
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


def _freeze_chunks(
    conn: Connection,
    issue_id: int,
    chunks: Iterable[list[Recipient]],
    batch_size: int,
    lease: FreezeLease,
    at: datetime,
) -> FreezeCounts:
    counts = FreezeCounts()
    for number, chunk in enumerate(chunks):
        with conn.begin():
            counts += _freeze_chunk(conn, issue_id, chunk, batch_size, lease, at)
        _refresh_statistics(conn, number)
    with conn.begin():
        _end_freeze(conn, issue_id, lease)
    return counts


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


def _freeze_chunk(
    conn: Connection,
    issue_id: int,
    members: list[Recipient],
    batch_size: int,
    lease: FreezeLease,
    at: datetime,
) -> FreezeCounts:
    """One chunk, inside the caller's transaction: COPYed on PostgreSQL unless an address
    of it is in the ledger already, else through the stage."""
    if conn.dialect.name == "postgresql":
        copied = _copy_chunk(conn, issue_id, members, batch_size, lease, at)
        if copied is not None:
            return copied
    return _stage_chunk(conn, issue_id, members, batch_size, lease, at)


def _copy_chunk(
    conn: Connection,
    issue_id: int,
    members: list[Recipient],
    batch_size: int,
    lease: FreezeLease,
    at: datetime,
) -> FreezeCounts | None:
    """The chunk written by ``audience_copy``; None, with nothing of it written, when an
    address of it is in the ledger already (an earlier chunk's, or a dead freeze's)."""
    rows = audience_copy.unique_rows(members)
    _renew(conn, issue_id, lease)
    first_seq = next_seq(conn, issue_id)
    try:
        with conn.begin_nested():
            copied = audience_copy.copy_chunk(conn, issue_id, rows, batch_size=batch_size,
                                              first_seq=first_seq, at=at)
    except Exception as exc:  # the driver's own error: COPY goes around SQLAlchemy
        if audience_copy.is_repeat(exc):
            return None
        raise
    total = len(members)
    return FreezeCounts(total, total - copied.unique, copied.suppressed, copied.queued,
                        copied.batches)


def _stage_chunk(
    conn: Connection,
    issue_id: int,
    members: list[Recipient],
    batch_size: int,
    lease: FreezeLease,
    at: datetime,
) -> FreezeCounts:
    """The chunk streamed into the stage, then copied into the ledger by one statement."""
    conn.execute(delete(AUDIENCE_STAGE))
    total = _stage_members(conn, members)
    # The first write to the ledger's database: on SQLite it waits for the write lock (and
    # takes it) before anything of the ledger is read, so what is read next stays true.
    _renew(conn, issue_id, lease)
    start_seq = next_seq(conn, issue_id)
    last_row = _last_row_id(conn)
    sizes = [min(batch_size, total - start) for start in range(0, total, batch_size)]
    _new_batches(conn, issue_id, start_seq, sizes, at)
    inserted = _insert_staged(conn, issue_id, start_seq, batch_size, last_row)
    suppressed = _mark_suppressed(conn, issue_id, at, last_row)
    queued = inserted - suppressed
    # Repeats or suppressions left gaps: then the batches are what they hold.
    batch_count = len(sizes) if queued == total else _settle_batches(conn, issue_id, start_seq)
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


#: Where a freeze streams a chunk of members before they become ledger rows.
AUDIENCE_STAGE = Table(
    "audience_stage",
    MetaData(),
    Column("pos", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("email", String(320), nullable=False),
    Column("email_as_written", String(320), nullable=True),
    Column("name", Text, nullable=False),
    Column("fields", JSON, nullable=False),
    Column("list_id", String(100), nullable=False),
    prefixes=["TEMPORARY"],
)


def _stage_members(conn: Connection, members: Iterable[Recipient]) -> int:
    """Stream ``members`` into the stage; returns how many there were. Each address is
    compared lower-cased, and kept as written too when that differs (then it is sent so)."""
    dumps = orjson.dumps
    rows = (
        (pos, key := (written := m.email.strip()).lower(), None if key == written else written,
         m.name, dumps(m.fields).decode() if m.fields else "{}", m.list_id)
        for pos, m in enumerate(members)
    )
    return bulk_write(conn, AUDIENCE_STAGE, rows)


def _insert_staged(
    conn: Connection, issue_id: int, start_seq: int, batch_size: int, after: int
) -> int:
    """Copy the stage into the ledger; returns how many rows it added (above ``after``)."""
    stage = AUDIENCE_STAGE.c
    rows = (
        select(
            literal(issue_id),
            batches.c.id,
            stage.email,
            stage.email_as_written,
            stage.name,
            stage.fields,
            stage.list_id,
            literal(str(DeliveryStatus.QUEUED)),
        )
        .where(
            batches.c.issue_id == issue_id,
            batches.c.seq == start_seq + stage.pos // batch_size,
        )
        .order_by(stage.pos)
    )
    # No ``updated_at``: a row's is set when its status changes; until then the issue's start
    # says when it was frozen, and leaving it out is 8 % of the database's work per row.
    columns = ["issue_id", "batch_id", "email", "email_as_written", "name", "fields", "list_id",
               "status"]
    stmt = dialect_insert(conn, recipients).from_select(columns, rows)
    added = conn.execute(stmt.on_conflict_do_nothing(index_elements=["issue_id", "email"]))
    if added.rowcount >= 0:  # SQLite says how many it inserted; psycopg here does not
        return int(added.rowcount)
    new = select(func.count()).where(recipients.c.issue_id == issue_id, recipients.c.id > after)
    return int(conn.execute(new).scalar() or 0)


def _mark_suppressed(conn: Connection, issue_id: int, at: datetime, after: int) -> int:
    """Suppressions always win over the list files: such rows are recorded, never batched.
    Only this chunk's rows (ids above ``after``) are looked at, found through the stage: a
    look-up per staged member rather than a scan of the issue's ledger per chunk."""
    stage = AUDIENCE_STAGE.c
    candidates = select(stage.email).join(suppressions, suppressions.c.email == stage.email)
    applies = (
        select(suppressions.c.email)
        .where(
            suppressions.c.email == recipients.c.email,
            or_(suppressions.c.scope == ALL_LISTS, suppressions.c.scope == recipients.c.list_id),
        )
        .exists()
    )
    result = conn.execute(
        update(recipients)
        .where(
            recipients.c.issue_id == issue_id,
            recipients.c.email.in_(candidates),
            recipients.c.id > after,
            applies,
        )
        .values(status=str(DeliveryStatus.SUPPRESSED), batch_id=None, updated_at=at)
    )
    return int(result.rowcount)


def _settle_batches(conn: Connection, issue_id: int, start_seq: int) -> int:
    """Give the new batches their real sizes and drop empty ones; returns how many remain."""
    new = and_(batches.c.issue_id == issue_id, batches.c.seq >= start_seq)
    held = (
        select(func.count())
        .where(recipients.c.batch_id == batches.c.id)
        .scalar_subquery()
    )
    conn.execute(update(batches).where(new).values(size=held))
    conn.execute(delete(batches).where(new, batches.c.size == 0))
    return int(conn.execute(select(func.count()).where(new)).scalar() or 0)


def _new_batches(
    conn: Connection, issue_id: int, first_seq: int, sizes: list[int], at: datetime
) -> None:
    rows = [
        {
            "issue_id": issue_id,
            "seq": seq,
            "state": str(BatchState.PENDING),
            "size": size,
            "attempts": 0,
            "idempotency_key": idempotency_key(issue_id, seq),
            "next_attempt_at": 0.0,
            "updated_at": at,
        }
        for seq, size in enumerate(sizes, start=first_seq)
    ]
    if rows:
        conn.execute(insert(batches), rows)
