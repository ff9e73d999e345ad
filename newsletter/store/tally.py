"""What an issue's ledger says: its recipients counted by status, its batches by state,
the recipients that failed, and the work still open. Read-only; ``ledger`` writes.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import Connection, String, and_, case, func, literal, select

from ..models import BatchState, DeliveryStatus
from .tables import batches, recipients

#: A recipient's status as the ledger means it: a row left ``queued`` in a batch that was
#: sent whole was sent. Select it from ``recipients`` joined (outer) to ``batches``.
recipient_status = case(
    (
        and_(
            recipients.c.status == str(DeliveryStatus.QUEUED),
            batches.c.state == str(BatchState.SENT),
        ),
        str(DeliveryStatus.SENT),
    ),
    else_=recipients.c.status,
)

#: ``recipients`` with each row's batch, for ``recipient_status``; suppressed rows have none.
recipients_with_batch = recipients.outerjoin(batches, batches.c.id == recipients.c.batch_id)


def _status_as_read(row_status: str, batch_state: str | None) -> str:
    """``recipient_status`` of a row, computed here from its status and its batch's state."""
    if row_status == DeliveryStatus.QUEUED and batch_state == BatchState.SENT:
        return str(DeliveryStatus.SENT)
    return row_status


def batch_counts(conn: Connection, issue_id: int) -> dict[str, int]:
    stmt = (
        select(batches.c.state, func.count())
        .where(batches.c.issue_id == issue_id)
        .group_by(batches.c.state)
    )
    return {state: int(n) for state, n in conn.execute(stmt)}


def status_counts(conn: Connection, issue_id: int) -> dict[str, int]:
    """Recipients per status (``recipient_status``: rows of batches sent whole count as sent).

    Read from indexes, not from the rows: the batched rows per batch and status through
    (batch_id, status), the others (suppressed) through their partial index.
    """
    # Grouped before the join, in the index's order: grouped after it, SQLite (without
    # statistics) sorted a million rows for the GROUP BY, four times slower.
    of_issue = select(batches.c.id).where(batches.c.issue_id == issue_id)
    grouped = (
        select(recipients.c.batch_id, recipients.c.status, func.count().label("n"))
        .where(recipients.c.batch_id.in_(of_issue))
        .group_by(recipients.c.batch_id, recipients.c.status)
        .subquery()
    )
    per_batch = select(batches.c.state, grouped.c.status, grouped.c.n).join_from(
        grouped, batches, batches.c.id == grouped.c.batch_id
    )
    unbatched = (
        select(literal(None, String), recipients.c.status, func.count())
        .where(recipients.c.issue_id == issue_id, recipients.c.batch_id.is_(None))
        .group_by(recipients.c.status)
    )
    counts: Counter[str] = Counter()
    for stmt in (per_batch, unbatched):
        for state, status, n in conn.execute(stmt):
            counts[_status_as_read(status, state)] += int(n)
    return dict(counts)


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


def open_work(conn: Connection, issue_id: int) -> int:
    """Batches still pending or in flight."""
    stmt = select(func.count()).where(
        batches.c.issue_id == issue_id,
        batches.c.state.in_([str(BatchState.PENDING), str(BatchState.SENDING)]),
    )
    return int(conn.execute(stmt).scalar() or 0)


def open_recipients(conn: Connection, issue_id: int) -> int:
    """Recipients in batches still pending or in flight: from the batches alone, not the rows."""
    stmt = select(func.coalesce(func.sum(batches.c.size), 0)).where(
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
