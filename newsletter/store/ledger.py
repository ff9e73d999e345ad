"""The delivery ledger: every recipient an issue owes a copy to, grouped into batches.

The audience is frozen once, in one transaction, when sending starts. After that, each
batch moves ``pending → sending → sent | failed | unknown`` and each move is committed:
``sending`` before the provider is called, the outcome after. A batch found ``sending``
by nobody alive has an unknown outcome; what happens next is the engine's decision.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Iterable, Iterator, Sequence
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
    type_coerce,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..models import ALL_LISTS, BatchState, DeliveryStatus, Recipient
from ..processes import pid_alive
from .bulk import bulk_write
from .tables import UtcDateTime, batches, issues, recipients, suppressions


@dataclass(frozen=True, slots=True)
class FreezeCounts:
    members: int
    duplicates: int
    suppressed: int
    queued: int
    batches: int


@dataclass(frozen=True, slots=True)
class ClaimedBatch:
    id: int
    issue_id: int
    seq: int
    attempts: int
    idempotency_key: str


@dataclass(frozen=True, slots=True)
class LedgerRow:
    id: int
    email: str
    name: str
    fields: dict[str, str]
    list_id: str


def worker_identity() -> str:
    """``host:pid:nonce`` — lets a restarted sender on the same host see its predecessor died."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_is_dead(owner: str) -> bool:
    """True when ``owner`` names a process on this host that no longer runs."""
    host, _, rest = owner.partition(":")
    pid_text = rest.split(":", 1)[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    if not pid_alive(int(pid_text)):
        return True
    return int(pid_text) == os.getpid() and owner != _CURRENT_OWNER


_CURRENT_OWNER = worker_identity()


def current_owner() -> str:
    return _CURRENT_OWNER


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
    """Write the issue's audience and batches; run inside one transaction.

    The members are streamed into a temporary table with the driver's bulk path (COPY on
    PostgreSQL), then copied into the ledger by one ``INSERT … SELECT``: each row's batch is
    its position in the stream divided by the batch size, and the unique index on
    ``(issue_id, email)`` drops repeats, the first one winning. Per member, Python only
    builds a tuple; the database does the rest without a round trip per row.
    """
    start_seq = _next_seq(conn, issue_id)
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


def _next_seq(conn: Connection, issue_id: int) -> int:
    current = conn.execute(select(func.max(batches.c.seq)).where(batches.c.issue_id == issue_id))
    return int(current.scalar() or 0) + 1


def _new_batch(
    conn: Connection,
    issue_id: int,
    seq: int,
    size: int,
    at: datetime,
    *,
    not_before: float = 0.0,
) -> int:
    return int(
        conn.execute(
            insert(batches)
            .values(
                issue_id=issue_id,
                seq=seq,
                state=str(BatchState.PENDING),
                size=size,
                attempts=0,
                idempotency_key=_idempotency_key(issue_id, seq),
                next_attempt_at=not_before,
                updated_at=at,
            )
            .returning(batches.c.id)
        ).scalar_one()
    )


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
            "idempotency_key": _idempotency_key(issue_id, seq),
            "next_attempt_at": 0.0,
            "updated_at": at,
        }
        for seq in seqs
    ]
    if rows:
        conn.execute(insert(batches), rows)


def _idempotency_key(issue_id: int, seq: int) -> str:
    return f"nl-{issue_id}-{seq}-{uuid.uuid4().hex[:16]}"


def claim(
    conn: Connection,
    issue_id: int,
    *,
    owner: str,
    now: float,
    lease_seconds: float,
    at: datetime,
) -> ClaimedBatch | None:
    """Take the next due pending batch: marks it ``sending`` with a lease, atomically."""
    candidate = (
        select(batches.c.id)
        .where(
            batches.c.issue_id == issue_id,
            batches.c.state == str(BatchState.PENDING),
            batches.c.next_attempt_at <= now,
        )
        .order_by(batches.c.seq)
        .limit(1)
    )
    if conn.dialect.name == "postgresql":
        candidate = candidate.with_for_update(skip_locked=True)
    row = conn.execute(
        update(batches)
        .where(
            batches.c.id == candidate.scalar_subquery(), batches.c.state == str(BatchState.PENDING)
        )
        .values(
            state=str(BatchState.SENDING),
            lease_owner=owner,
            lease_until=now + lease_seconds,
            attempts=batches.c.attempts + 1,
            updated_at=at,
        )
        .returning(
            batches.c.id,
            batches.c.issue_id,
            batches.c.seq,
            batches.c.attempts,
            batches.c.idempotency_key,
        )
    ).first()
    return ClaimedBatch(*row) if row is not None else None


def rows_of(conn: Connection, batch_id: int) -> list[LedgerRow]:
    stmt = (
        select(
            recipients.c.id,
            recipients.c.email,
            recipients.c.name,
            # As stored: most rows share a few shapes, and the JSON type's processor costs
            # more per row than the rest of the read.
            type_coerce(recipients.c.fields, Text),
            recipients.c.list_id,
        )
        .where(
            recipients.c.batch_id == batch_id,
            recipients.c.status.in_([str(DeliveryStatus.QUEUED), str(DeliveryStatus.UNKNOWN)]),
        )
        .order_by(recipients.c.id)
    )
    return [
        LedgerRow(row_id, email, name, _fields(fields), list_id)
        for row_id, email, name, fields, list_id in conn.execute(stmt)
    ]


def _fields(stored: str | dict[str, str] | None) -> dict[str, str]:
    """A row's member fields, whether the driver hands back JSON text or decoded JSON."""
    if isinstance(stored, dict):
        return stored
    if not stored or stored == "{}":
        return {}
    decoded = json.loads(stored)
    return decoded if isinstance(decoded, dict) else {}


def hold(conn: Connection, batch_id: int, owner: str, *, at: datetime) -> bool:
    """Confirm (and lock, until the transaction ends) that ``owner`` still leases the batch."""
    result = conn.execute(
        update(batches)
        .where(
            batches.c.id == batch_id,
            batches.c.state == str(BatchState.SENDING),
            batches.c.lease_owner == owner,
        )
        .values(updated_at=at)
    )
    return result.rowcount == 1


def finish_batch(
    conn: Connection,
    batch_id: int,
    state: BatchState,
    *,
    at: datetime,
    error: str = "",
    provider_batch_id: str = "",
) -> None:
    conn.execute(
        update(batches)
        .where(batches.c.id == batch_id)
        .values(
            state=str(state),
            error=error[:2000],
            provider_batch_id=provider_batch_id,
            lease_owner="",
            lease_until=0.0,
            updated_at=at,
        )
    )


def retry_later(
    conn: Connection, batch_id: int, *, not_before: float, at: datetime, error: str
) -> None:
    """Back to ``pending`` after a failure that sent nothing; its key stays the same."""
    conn.execute(
        update(batches)
        .where(batches.c.id == batch_id)
        .values(
            state=str(BatchState.PENDING),
            next_attempt_at=not_before,
            error=error[:2000],
            lease_owner="",
            lease_until=0.0,
            updated_at=at,
        )
    )


def mark_rows(
    conn: Connection,
    batch_id: int,
    status: DeliveryStatus,
    *,
    at: datetime,
    message_id: str = "",
    error: str = "",
) -> None:
    """Give every still-open row of the batch the same outcome (one statement)."""
    conn.execute(
        update(recipients)
        .where(
            recipients.c.batch_id == batch_id,
            recipients.c.status.in_([str(DeliveryStatus.QUEUED), str(DeliveryStatus.UNKNOWN)]),
        )
        .values(
            status=str(status), provider_message_id=message_id, error=error[:1000], updated_at=at
        )
    )


def mark_each(conn: Connection, updates: Sequence[dict[str, Any]], at: datetime) -> None:
    """Per-recipient outcomes: dicts with ``rid``, ``status``, ``message_id``, ``error``."""
    if not updates:
        return
    from sqlalchemy import bindparam

    stmt = (
        update(recipients)
        .where(recipients.c.id == bindparam("rid"))
        .values(
            status=bindparam("status"),
            provider_message_id=bindparam("message_id"),
            error=bindparam("error"),
            updated_at=at,
        )
    )
    conn.execute(stmt, list(updates))


def rebatch(
    conn: Connection,
    issue_id: int,
    recipient_ids: Sequence[int],
    *,
    at: datetime,
    not_before: float = 0.0,
) -> int:
    """Move these recipients into a new pending batch (a partial retry); returns its id."""
    batch_id = _new_batch(
        conn, issue_id, _next_seq(conn, issue_id), len(recipient_ids), at, not_before=not_before
    )
    conn.execute(
        update(recipients)
        .where(recipients.c.id.in_(list(recipient_ids)))
        .values(batch_id=batch_id, status=str(DeliveryStatus.QUEUED), error="", updated_at=at)
    )
    return batch_id


def stale_batches(conn: Connection, issue_id: int, now: float) -> list[ClaimedBatch]:
    """``sending`` batches whose worker is gone: lease expired, or a dead process on this host."""
    rows = conn.execute(
        select(
            batches.c.id,
            batches.c.issue_id,
            batches.c.seq,
            batches.c.attempts,
            batches.c.idempotency_key,
            batches.c.lease_owner,
            batches.c.lease_until,
        ).where(batches.c.issue_id == issue_id, batches.c.state == str(BatchState.SENDING))
    ).all()
    return [
        ClaimedBatch(r.id, r.issue_id, r.seq, r.attempts, r.idempotency_key)
        for r in rows
        if r.lease_until < now or owner_is_dead(r.lease_owner)
    ]


def batch_counts(conn: Connection, issue_id: int) -> dict[str, int]:
    stmt = (
        select(batches.c.state, func.count())
        .where(batches.c.issue_id == issue_id)
        .group_by(batches.c.state)
    )
    return {state: int(n) for state, n in conn.execute(stmt)}


def status_counts(conn: Connection, issue_id: int) -> dict[str, int]:
    stmt = (
        select(recipients.c.status, func.count())
        .where(recipients.c.issue_id == issue_id)
        .group_by(recipients.c.status)
    )
    return {status: int(n) for status, n in conn.execute(stmt)}


def problems(conn: Connection, issue_id: int, limit: int = 50) -> list[dict[str, Any]]:
    """Recipients that failed or whose outcome is unknown, with the reason."""
    stmt = (
        select(recipients.c.email, recipients.c.status, recipients.c.error, batches.c.seq)
        .join(batches, batches.c.id == recipients.c.batch_id, isouter=True)
        .where(
            recipients.c.issue_id == issue_id,
            recipients.c.status.in_([str(DeliveryStatus.FAILED), str(DeliveryStatus.UNKNOWN)]),
        )
        .order_by(recipients.c.id)
        .limit(limit)
    )
    return [
        {"email": r.email, "status": r.status, "error": r.error, "batch": r.seq}
        for r in conn.execute(stmt)
    ]


def batches_in(conn: Connection, issue_id: int, state: BatchState) -> list[int]:
    stmt = (
        select(batches.c.id)
        .where(batches.c.issue_id == issue_id, batches.c.state == str(state))
        .order_by(batches.c.seq)
    )
    return list(conn.execute(stmt).scalars())


def open_work(conn: Connection, issue_id: int) -> int:
    """Batches still pending or in flight."""
    stmt = select(func.count()).where(
        batches.c.issue_id == issue_id,
        batches.c.state.in_([str(BatchState.PENDING), str(BatchState.SENDING)]),
    )
    return int(conn.execute(stmt).scalar() or 0)


def earliest_retry(conn: Connection, issue_id: int) -> float | None:
    stmt = select(func.min(batches.c.next_attempt_at)).where(
        batches.c.issue_id == issue_id, batches.c.state == str(BatchState.PENDING)
    )
    value = conn.execute(stmt).scalar()
    return float(value) if value is not None else None


def failed_recipient_ids(
    conn: Connection, issue_id: int, statuses: Sequence[DeliveryStatus]
) -> Iterator[int]:
    stmt = (
        select(recipients.c.id)
        .where(
            and_(
                recipients.c.issue_id == issue_id,
                recipients.c.status.in_([str(s) for s in statuses]),
            )
        )
        .order_by(recipients.c.id)
    )
    yield from conn.execute(stmt).scalars()
