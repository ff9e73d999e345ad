"""Freezing an issue's audience into the ledger, once, in the transaction that starts it.

The members are streamed into a temporary table with the driver's bulk path (COPY on
PostgreSQL), then copied into ``recipients`` by one ``INSERT … SELECT``: each row's batch is
its position in the stream divided by the batch size, and the unique index on
``(issue_id, email)`` drops repeats, the first one winning. Per member, Python only builds a
tuple; the database does the rest without a round trip per row. Suppressed addresses keep
a row (``suppressed``, in no batch); batches left with gaps are given their real sizes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..models import ALL_LISTS, BatchState, DeliveryStatus, Recipient
from .bulk import bulk_write
from .ledger import idempotency_key, next_seq
from .tables import UtcDateTime, batches, issues, recipients, suppressions


@dataclass(frozen=True, slots=True)
class FreezeCounts:
    members: int
    duplicates: int
    suppressed: int
    queued: int
    batches: int


def _insert_ignore(conn: Connection) -> Any:
    return pg_insert if conn.dialect.name == "postgresql" else sqlite_insert


def freeze_audience(
    conn: Connection,
    issue_id: int,
    members: Iterable[Recipient],
    *,
    batch_size: int,
    at: datetime,
) -> FreezeCounts:
    """Write the issue's audience and batches; run inside one transaction."""
    start_seq = next_seq(conn, issue_id)
    AUDIENCE_STAGE.drop(conn, checkfirst=True)
    AUDIENCE_STAGE.create(conn)
    total = _stage_members(conn, members)
    batch_count = -(-total // batch_size)
    _new_batches(conn, issue_id, range(start_seq, start_seq + batch_count), batch_size, at)
    inserted = _insert_staged(conn, issue_id, start_seq, batch_size, at)
    AUDIENCE_STAGE.drop(conn)
    if conn.dialect.name == "postgresql":
        # Fresh statistics, or the planner may still think the table is empty and scan
        # all of it for each batch's query (minutes for a million rows).
        conn.exec_driver_sql("ANALYZE recipients")
    suppressed = _mark_suppressed(conn, issue_id, at)
    queued = inserted - suppressed
    if queued != total:  # repeats or suppressions left gaps: batches are what they hold
        batch_count = _settle_batches(conn, issue_id, start_seq)
    conn.execute(update(issues).where(issues.c.id == issue_id).values(audience_frozen=1))
    return FreezeCounts(total, total - inserted, suppressed, queued, batch_count)


#: Where a freeze streams the members before they become ledger rows (one transaction's).
AUDIENCE_STAGE = Table(
    "audience_stage",
    MetaData(),
    Column("pos", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("email", String(320), nullable=False),
    Column("name", Text, nullable=False),
    Column("fields", JSON, nullable=False),
    Column("list_id", String(100), nullable=False),
    prefixes=["TEMPORARY"],
)


def _stage_members(conn: Connection, members: Iterable[Recipient]) -> int:
    """Stream ``members`` into the stage; returns how many there were."""
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    rows = (
        (pos, m.email.strip().lower(), m.name, encode(m.fields) if m.fields else "{}", m.list_id)
        for pos, m in enumerate(members)
    )
    return bulk_write(conn, AUDIENCE_STAGE, rows)


def _insert_staged(
    conn: Connection, issue_id: int, start_seq: int, batch_size: int, at: datetime
) -> int:
    stage = AUDIENCE_STAGE.c
    rows = (
        select(
            literal(issue_id),
            batches.c.id,
            stage.email,
            stage.name,
            stage.fields,
            stage.list_id,
            literal(str(DeliveryStatus.QUEUED)),
            literal(at, UtcDateTime()),
        )
        .where(
            batches.c.issue_id == issue_id,
            batches.c.seq == start_seq + stage.pos // batch_size,
        )
        .order_by(stage.pos)
    )
    columns = ["issue_id", "batch_id", "email", "name", "fields", "list_id", "status", "updated_at"]
    stmt = _insert_ignore(conn)(recipients).from_select(columns, rows)
    conn.execute(stmt.on_conflict_do_nothing(index_elements=["issue_id", "email"]))
    # Counted afterwards: drivers differ in what rowcount says here.
    inserted = conn.execute(select(func.count()).where(recipients.c.issue_id == issue_id)).scalar()
    return int(inserted or 0)


def _mark_suppressed(conn: Connection, issue_id: int, at: datetime) -> int:
    """Suppressions always win over the list files: such rows are recorded, never batched."""
    blocked = select(suppressions.c.email).where(
        or_(suppressions.c.scope == ALL_LISTS, suppressions.c.scope == recipients.c.list_id)
    )
    result = conn.execute(
        update(recipients)
        .where(recipients.c.issue_id == issue_id, recipients.c.email.in_(blocked))
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
    conn: Connection, issue_id: int, seqs: Iterable[int], size: int, at: datetime
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
        for seq in seqs
    ]
    if rows:
        conn.execute(insert(batches), rows)
