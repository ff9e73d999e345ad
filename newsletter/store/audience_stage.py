"""Where a freeze puts a chunk of its audience before it becomes ledger rows.

A chunk reaches the stage one of two ways: members read from the list's files
(``stage_members``), or a page of an earlier issue's rows copied in SQL (``stage_copy``).
From there the same statements make it the issue's rows and batches (``store.audience``):
each row's batch is its place in the chunk divided by the batch size, the unique index on
``(issue_id, email)`` drops repeats (the first one winning, across chunks too), and
suppressed addresses keep a row in no batch.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
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
from .bulk import bulk_write
from .db import dialect_insert
from .ledger import idempotency_key
from .tables import batches, recipients, suppressions

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
    # The ledger row a copied member comes from (NULL for members read from the files).
    Column("source_row", BigInteger, nullable=True),
    prefixes=["TEMPORARY"],
)


#: What a member read from the files gives the stage.
MEMBER_COLUMNS = ("pos", "email", "email_as_written", "name", "fields", "list_id")


def stage_members(conn: Connection, members: Iterable[Recipient]) -> int:
    """Stream ``members`` into the empty stage; returns how many there were. Each address
    is compared lower-cased, and kept as written too when that differs (then it is sent so)."""
    dumps = orjson.dumps
    rows = (
        (pos, key := (written := m.email.strip()).lower(), None if key == written else written,
         m.name, dumps(m.fields).decode() if m.fields else "{}", m.list_id)
        for pos, m in enumerate(members)
    )
    return bulk_write(conn, AUDIENCE_STAGE, rows, columns=MEMBER_COLUMNS)


def stage_copy(conn: Connection, source_issue: int, after: int, last: int, limit: int) -> None:
    """Copy into the empty stage the next ``limit`` rows of ``source_issue``'s audience,
    those with ids above ``after`` and up to ``last``, in id order: the order that issue
    froze them in, so its batches are cut again as they were (``staged_copy`` says how
    many it copied)."""
    rows = recipients.c
    page = (
        select(rows.id, rows.email, rows.email_as_written, rows.name, rows.fields, rows.list_id)
        .where(rows.id > after, rows.id <= last, rows.issue_id == source_issue)
        .order_by(rows.id)
        .limit(limit)
        .subquery()
    )
    position = func.row_number().over(order_by=page.c.id) - 1
    copied = select(position, page.c.email, page.c.email_as_written, page.c.name,
                    page.c.fields, page.c.list_id, page.c.id)
    conn.execute(insert(AUDIENCE_STAGE).from_select([*MEMBER_COLUMNS, "source_row"], copied))


def staged_copy(conn: Connection) -> tuple[int, int]:
    """How many rows ``stage_copy`` staged (psycopg does not say), and the id of the last."""
    stage = AUDIENCE_STAGE.c
    staged, last = conn.execute(select(func.count(), func.max(stage.source_row))).one()
    return int(staged), int(last or 0)


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
    columns = ["issue_id", "batch_id", "email", "email_as_written", "name", "fields", "list_id",
               "status"]
    stmt = dialect_insert(conn, recipients).from_select(columns, rows)
    added = conn.execute(stmt.on_conflict_do_nothing(index_elements=["issue_id", "email"]))
    if added.rowcount >= 0:  # SQLite says how many it inserted; psycopg here does not
        return int(added.rowcount)
    new = select(func.count()).where(recipients.c.issue_id == issue_id, recipients.c.id > after)
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
