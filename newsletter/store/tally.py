"""What an issue's ledger says: its recipients counted by status, its batches by state,
the recipients that failed, and the work still open. Read-only; ``ledger`` writes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BindParameter,
    Connection,
    Row,
    Select,
    Subquery,
    and_,
    bindparam,
    case,
    distinct,
    func,
    select,
    union_all,
)

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
    """Recipients per status (``recipient_status``: rows of batches sent whole count as sent)."""
    return status_counts_of(conn, [issue_id]).get(issue_id, {})


#: The issues ``status_counts_of`` counts. Its statements are built once, not per call:
#: building them cost more than running them for an issue of a few hundred recipients.
_COUNTED: BindParameter[list[int]] = bindparam("issue_ids", expanding=True)
# Grouped before the join, in the index's order: grouped after it, SQLite (without
# statistics) sorted a million rows for the GROUP BY, four times slower.
_GROUPED = (
    select(recipients.c.batch_id, recipients.c.status, func.count().label("n"))
    .where(recipients.c.batch_id.in_(select(batches.c.id).where(batches.c.issue_id.in_(_COUNTED))))
    .group_by(recipients.c.batch_id, recipients.c.status)
    .subquery()
)
_PER_BATCH = select(batches.c.issue_id, batches.c.state, _GROUPED.c.status, _GROUPED.c.n).join_from(
    _GROUPED, batches, batches.c.id == _GROUPED.c.batch_id
)
# Asked issue by issue: for more than a few issues in one IN list, SQLite (without statistics)
# reads every unbatched row of every issue through (batch_id, status) rather than each
# issue's own through the partial index.
_UNBATCHED = (
    select(recipients.c.status, func.count())
    .where(recipients.c.issue_id == bindparam("issue_id"), recipients.c.batch_id.is_(None))
    .group_by(recipients.c.status)
)


def status_counts_of(conn: Connection, issue_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """``status_counts`` of each issue named (the issues list counts a page of issues at
    once); an issue without recipients is left out.

    Read from indexes, not from the rows: the batched rows per batch and status through
    (batch_id, status), the others (suppressed) through their partial index.
    """
    counts: dict[int, Counter[str]] = {}
    for issue_id, state, status, n in conn.execute(_PER_BATCH, {"issue_ids": list(issue_ids)}):
        counts.setdefault(issue_id, Counter())[_status_as_read(status, state)] += int(n)
    for issue_id in issue_ids:
        for status, n in conn.execute(_UNBATCHED, {"issue_id": issue_id}):
            counts.setdefault(issue_id, Counter())[status] += int(n)
    return {issue_id: dict(found) for issue_id, found in counts.items()}


#: The statuses ``problems`` lists: nobody knows the message arrived.
PROBLEM_STATUSES = (str(DeliveryStatus.FAILED), str(DeliveryStatus.UNKNOWN))


def _problem_rows(issue_id: int) -> Subquery:
    """The issue's failed and unknown rows (id, email, status, error, batch_id), found through
    the indexes: the batched ones per batch and status, the unbatched ones by their own."""
    columns = (recipients.c.id, recipients.c.email, recipients.c.status, recipients.c.error,
               recipients.c.batch_id)
    of_issue = select(batches.c.id).where(batches.c.issue_id == issue_id)
    batched = select(*columns).where(
        recipients.c.batch_id.in_(of_issue), recipients.c.status.in_(PROBLEM_STATUSES)
    )
    unbatched = select(*columns).where(
        recipients.c.issue_id == issue_id,
        recipients.c.batch_id.is_(None),
        recipients.c.status.in_(PROBLEM_STATUSES),
    )
    return union_all(batched, unbatched).subquery()


def problems(conn: Connection, issue_id: int, limit: int = 50) -> list[dict[str, Any]]:
    """Up to ``limit`` recipients that failed or whose outcome is unknown, with the reason.

    Taken in turns from every batch (the first problem of each batch, then the second, …),
    so that a batch with a thousand problems does not hide the others.
    """
    found = _problem_rows(issue_id)
    turn = func.row_number().over(partition_by=found.c.batch_id, order_by=found.c.id)
    ranked = select(found, turn.label("turn")).subquery()
    stmt = (
        select(ranked.c.email, ranked.c.status, ranked.c.error, batches.c.seq)
        .join_from(ranked, batches, batches.c.id == ranked.c.batch_id, isouter=True)
        .order_by(ranked.c.turn, func.coalesce(batches.c.seq, -1), ranked.c.id)
        .limit(limit)
    )
    return [
        {"email": r.email, "status": r.status, "error": r.error, "batch": r.seq}
        for r in conn.execute(stmt)
    ]


def problem_counts(conn: Connection, issue_id: int) -> dict[str, dict[str, int]]:
    """Per problem status: how many recipients, and in how many batches."""
    found = _problem_rows(issue_id)
    stmt = select(
        found.c.status, func.count(), func.count(distinct(found.c.batch_id))
    ).group_by(found.c.status)
    return {
        status: {"recipients": int(n), "batches": int(in_batches)}
        for status, n, in_batches in conn.execute(stmt)
    }


#: email, status, batch, error, message_id, updated_at
RecipientRow = Row[str, str, int | None, str, str, datetime | None]
RecipientValues = tuple[str, str, int | None, str, str, datetime | None]


def recipient_rows(
    conn: Connection, issue_id: int, statuses: Sequence[str] = (), *, chunk: int = 2_000
) -> Generator[RecipientRow, None, None]:
    """Every recipient of the issue (or those in ``statuses``, as ``recipient_status`` reads
    them), in the order they were frozen, streamed: ``chunk`` rows at a time from a
    server-side cursor on PostgreSQL, stepped through on SQLite, never all in memory.

    Columns: email, status, batch (its seq; None for rows kept out of every batch),
    error, message_id, updated_at.
    """
    result = conn.execution_options(yield_per=chunk).execute(
        _recipient_rows(issue_id, statuses))
    try:
        yield from result
    finally:
        result.close()


def recipient_rows_after(
    conn: Connection, issue_id: int, statuses: Sequence[str], after: int, limit: int
) -> list[tuple[int, RecipientValues]]:
    """Up to ``limit`` rows as ``recipient_rows`` gives them, each with its ledger id,
    after the row whose id is ``after``: a page a download reads in a short transaction of
    its own, so that it holds no connection while the client takes its time."""
    stmt = _recipient_rows(issue_id, statuses).add_columns(recipients.c.id) \
        .where(recipients.c.id > after).limit(limit)
    return [(row.id, (row.email, row.status, row.batch, row.error, row.message_id,
                      row.updated_at)) for row in conn.execute(stmt)]


def _recipient_rows(issue_id: int, statuses: Sequence[str]) -> Select[Any]:
    status = recipient_status.label("status")
    stmt = (
        select(
            recipients.c.email, status, batches.c.seq.label("batch"), recipients.c.error,
            func.coalesce(
                func.nullif(recipients.c.provider_message_id, ""), batches.c.provider_batch_id
            ).label("message_id"),
            recipients.c.updated_at,
        )
        .select_from(recipients_with_batch)
        .where(recipients.c.issue_id == issue_id)
        .order_by(recipients.c.id)
    )
    return stmt.where(recipient_status.in_(list(statuses))) if statuses else stmt


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
