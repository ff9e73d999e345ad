"""Where a freeze puts a chunk of members read from the list before they become ledger
rows, and the statements that make rows and batches of a chunk (``store.audience``).

Each row's batch is its place in the chunk divided by the batch size, the unique index on
``(issue_id, email)`` drops repeats (the first one winning, across chunks too), and
suppressed addresses keep a row in no batch; batches left with gaps get their real sizes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    Integer,
    MetaData,
    Select,
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
from .bulk import bulk_write
from .db import dialect_insert
from .ledger import idempotency_key
from .tables import batches, recipients, suppressions


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


def full_batches(total: int, batch_size: int) -> list[int]:
    """The sizes of the batches ``total`` rows are cut into, in order."""
    return [min(batch_size, total - start) for start in range(0, total, batch_size)]


#: A temporary table: each connection has its own, and it goes with the connection.
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


def stage_members(conn: Connection, members: Iterable[Recipient]) -> int:
    """Stream ``members`` into the empty stage; returns how many there were. Each address
    is compared lower-cased, and kept as written too when that differs (then it is sent so)."""
    dumps = orjson.dumps
    rows = (
        (pos, key := (written := m.email.strip()).lower(), None if key == written else written,
         m.name, dumps(m.fields).decode() if m.fields else "{}", m.list_id)
        for pos, m in enumerate(members)
    )
    return bulk_write(conn, AUDIENCE_STAGE, rows)


def clear_stage(conn: Connection) -> None:
    conn.execute(delete(AUDIENCE_STAGE))


def insert_staged(
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
    return insert_rows(conn, issue_id, rows, after)


#: What a freeze writes of each ledger row, in this order (``updated_at`` may follow).
ROW_COLUMNS = ("issue_id", "batch_id", "email", "email_as_written", "name", "fields", "list_id",
               "status")


def insert_rows(conn: Connection, issue_id: int, rows: Select[Any], after: int,
                columns: Sequence[str] = ROW_COLUMNS) -> int:
    """``rows`` (a SELECT of ``columns``) added to the issue's ledger, an address already
    there skipped; returns how many were added (their ids are above ``after``)."""
    stmt = dialect_insert(conn, recipients).from_select(list(columns), rows)
    added = conn.execute(stmt.on_conflict_do_nothing(index_elements=["issue_id", "email"]))
    if added.rowcount >= 0:  # SQLite says how many it inserted; psycopg here does not
        return int(added.rowcount)
    # ``+ 0``: the ids above ``after`` are read, not the issue's whole unique index.
    new = select(func.count()).where(recipients.c.id > after, recipients.c.issue_id + 0 == issue_id)
    return int(conn.execute(new).scalar() or 0)


def mark_suppressed(conn: Connection, issue_id: int, at: datetime, after: int) -> int:
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


def settle_batches(conn: Connection, issue_id: int, start_seq: int) -> int:
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


def new_batches(
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
