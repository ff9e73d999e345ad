"""The delivery ledger: every recipient an issue owes a copy to, grouped into batches.

The audience is frozen once when sending starts, a chunk of batches per transaction
(``audience``), and senders take each batch as soon as it is committed. Each
batch moves ``pending → sending → sent | failed | unknown`` and each move is committed:
``sending`` when a sender claims it, ``request_started_at`` just before the provider is
called (after the rate limiter's wait), the outcome after. A batch found ``sending`` by
nobody alive whose request never started was not sent: it goes back to ``pending``. One
whose request started has an unknown outcome; what happens next is the engine's decision.

A batch the provider took whole, under one id, is recorded on the batch alone: its rows
stay ``queued`` and read as ``sent`` (``tally.recipient_status``). Rows are written one by one
only for what differs — a failure, a suppression, an unknown, a message id of their own —
so the common outcome costs one row update, not a thousand.

This module moves batches; the rows inside them are read and written by ``ledger_rows``,
whose functions are named here too, so that callers keep one name for the ledger.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, case, func, insert, select, update

from ..models import BatchState, DeliveryStatus, IssueState
from ..processes import owner_is_dead
from .ledger_rows import (
    LedgerRow,
    OpenRow,
    failed_recipient_ids,
    failures,
    mark_each,
    mark_rows,
    open_rows,
    outcomes,
    rows_of,
    suppress_open,
)
from .tables import batches, issues, recipients


@dataclass(frozen=True, slots=True)
class ClaimedBatch:
    id: int
    issue_id: int
    seq: int
    attempts: int
    idempotency_key: str
    #: When the lease ends (epoch seconds); minus the lease length, when it was claimed.
    lease_until: float = 0.0
    #: When its request to the provider started (epoch seconds); 0.0 while it has not.
    request_started_at: float = 0.0


def lock_issue(conn: Connection, issue_id: int) -> None:
    """Lock the issue's row until the transaction ends (on PostgreSQL; SQLite has one writer
    at a time). A transaction that adds batches takes it before it writes any recipient row,
    as a freeze chunk does: in the other order, each could wait for the other (a repeated
    address in the chunk waits for whoever is writing that address's row).

    ``FOR NO KEY UPDATE``, not ``FOR UPDATE``: a sender writing a batch's outcome has its
    batch's foreign key to the issue checked (``FOR KEY SHARE``), which ``FOR UPDATE`` would
    make wait for the whole freeze chunk; the two batch-adding transactions still exclude
    each other."""
    conn.execute(
        select(issues.c.id).where(issues.c.id == issue_id).with_for_update(key_share=True)
    )


def next_seq(conn: Connection, issue_id: int) -> int:
    """The number for a new batch of the issue, under ``lock_issue``: a freeze and a
    re-batched failure may add batches at once."""
    lock_issue(conn, issue_id)
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
                idempotency_key=idempotency_key(issue_id, seq),
                next_attempt_at=not_before,
                updated_at=at,
            )
            .returning(batches.c.id)
        ).scalar_one()
    )


def idempotency_key(issue_id: int, seq: int) -> str:
    return f"nl-{issue_id}-{seq}-{uuid.uuid4().hex[:16]}"


def claim(
    conn: Connection,
    issue_id: int,
    *,
    owner: str,
    now: float,
    lease_seconds: float,
    at: datetime,
    untried_first: bool = False,
) -> ClaimedBatch | None:
    """Take the next due pending batch: marks it ``sending`` with a lease, atomically.
    ``untried_first``: a batch never attempted before one being retried, if there is one."""
    stmt = _CLAIMS[conn.dialect.name == "postgresql", untried_first]
    params = {"for_issue": issue_id, "now": now, "owner": owner, "until": now + lease_seconds}
    row = conn.execute(stmt, {**params, "at": at}).first()
    return ClaimedBatch(*row) if row is not None else None


# The statements a sender runs for every batch are built once: building them per call
# (clauses coerced, cache keys traversed) cost about 0.7 ms a batch for these three and
# ``issues.state_of``, three quarters of recording an outcome and claiming the next batch.
def _claim_statement(*, skip_locked: bool, untried_first: bool) -> Any:
    order = [batches.c.attempts > 0, batches.c.seq] if untried_first else [batches.c.seq]
    candidate = (
        select(batches.c.id)
        .where(
            batches.c.issue_id == bindparam("for_issue"),
            batches.c.state == str(BatchState.PENDING),
            batches.c.next_attempt_at <= bindparam("now"),
        )
        .order_by(*order)
        .limit(1)
    )
    if skip_locked:
        candidate = candidate.with_for_update(skip_locked=True)
    # The issue must still be sending, in this very statement: a sender that read its state
    # just before another paused it (and put its batch back) would otherwise take the batch
    # and send it after the pause. On SQLite the driver opens the transaction only at the
    # UPDATE, so a state read first is not of the same snapshot.
    sending = select(issues.c.id).where(
        issues.c.id == bindparam("for_issue"), issues.c.state == str(IssueState.SENDING)
    )
    return (
        update(batches)
        .where(
            batches.c.id == candidate.scalar_subquery(), batches.c.state == str(BatchState.PENDING),
            sending.exists(),
        )
        .values(
            state=str(BatchState.SENDING),
            lease_owner=bindparam("owner"),
            lease_until=bindparam("until"),
            attempts=batches.c.attempts + 1,
            request_started_at=0.0,
            updated_at=bindparam("at"),
        )
        .returning(
            batches.c.id,
            batches.c.issue_id,
            batches.c.seq,
            batches.c.attempts,
            batches.c.idempotency_key,
            batches.c.lease_until,
        )
    )


#: By (PostgreSQL, untried first): PostgreSQL's senders skip the batches others are taking.
_CLAIMS = {
    (skip_locked, untried_first): _claim_statement(
        skip_locked=skip_locked, untried_first=untried_first
    )
    for skip_locked in (False, True)
    for untried_first in (False, True)
}
_START_REQUEST = (
    update(batches)
    .where(
        batches.c.id == bindparam("starting"),
        batches.c.state == str(BatchState.SENDING),
        batches.c.lease_owner == bindparam("owner"),
    )
    .values(
        request_started_at=bindparam("now"),
        lease_until=bindparam("until"),
        updated_at=bindparam("at"),
    )
)
_HOLD = (
    update(batches)
    .where(
        batches.c.id == bindparam("held"),
        batches.c.state == str(BatchState.SENDING),
        batches.c.lease_owner == bindparam("owner"),
    )
    .values(updated_at=bindparam("at"))
)
_FINISH = (
    update(batches)
    .where(batches.c.id == bindparam("finished"))
    .values(
        state=bindparam("new_state"),
        error=bindparam("new_error"),
        provider_batch_id=bindparam("batch_wide_id"),
        lease_owner="",
        lease_until=0.0,
        updated_at=bindparam("at"),
    )
)



def hold(conn: Connection, batch_id: int, owner: str, *, at: datetime) -> bool:
    """Confirm (and lock, until the transaction ends) that ``owner`` still leases the batch."""
    result = conn.execute(_HOLD, {"held": batch_id, "owner": owner, "at": at})
    return result.rowcount == 1


def start_request(
    conn: Connection, batch_id: int, owner: str, *, now: float, lease_seconds: float,
    at: datetime,
) -> bool:
    """Record that the batch's request starts now, renewing its lease (the rate limiter may
    have held it for a while); False when ``owner`` no longer leases it (taken over)."""
    params = {"starting": batch_id, "owner": owner, "now": now, "until": now + lease_seconds}
    return conn.execute(_START_REQUEST, {**params, "at": at}).rowcount == 1


def release(conn: Connection, batch_id: int, *, at: datetime) -> None:
    """A claimed batch whose request never started back to ``pending``, due at once, with
    the attempt its claim counted given back: nothing of it reached the provider."""
    conn.execute(
        update(batches)
        .where(batches.c.id == batch_id, batches.c.request_started_at == 0.0)
        .values(
            state=str(BatchState.PENDING),
            next_attempt_at=0.0,
            attempts=case((batches.c.attempts > 0, batches.c.attempts - 1), else_=0),
            lease_owner="",
            lease_until=0.0,
            updated_at=at,
        )
    )


def finish_batch(
    conn: Connection,
    batch_id: int,
    state: BatchState,
    *,
    at: datetime,
    error: str = "",
    provider_batch_id: str = "",
) -> None:
    conn.execute(_FINISH, {"finished": batch_id, "new_state": str(state),
                           "new_error": error[:2000], "batch_wide_id": provider_batch_id, "at": at})


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
            request_started_at=0.0,
            updated_at=at,
        )
    )


def restart_attempts(conn: Connection, issue_id: int) -> None:
    """Every pending batch of the issue gets its full number of attempts again (after an
    outage of the provider, which spent them)."""
    conn.execute(
        update(batches)
        .where(batches.c.issue_id == issue_id, batches.c.state == str(BatchState.PENDING))
        .values(attempts=0)
    )


def rebatch(
    conn: Connection,
    issue_id: int,
    recipient_ids: Sequence[int],
    *,
    at: datetime,
    not_before: float = 0.0,
) -> int:
    """Move these recipients into a new pending batch (a partial retry); returns its id.

    The batches they leave are given their new sizes: a batch's ``size`` stays the number
    of rows it holds, which the progress of a send is counted from (``store.watch``)."""
    batch_id = _new_batch(
        conn, issue_id, next_seq(conn, issue_id), len(recipient_ids), at, not_before=not_before
    )
    moved = list(recipient_ids)
    left = conn.execute(
        select(recipients.c.batch_id).where(recipients.c.id.in_(moved)).distinct()
    ).scalars()
    emptied = [b for b in left if b is not None]
    conn.execute(
        update(recipients)
        .where(recipients.c.id.in_(moved))
        .values(batch_id=batch_id, status=str(DeliveryStatus.QUEUED), error="", updated_at=at)
    )
    _resize(conn, emptied)
    return batch_id


def _resize(conn: Connection, batch_ids: Sequence[int]) -> None:
    """Each of these batches' ``size`` counted again from its rows."""
    if not batch_ids:
        return
    held = select(func.count()).where(recipients.c.batch_id == batches.c.id).scalar_subquery()
    conn.execute(update(batches).where(batches.c.id.in_(batch_ids)).values(size=held))


def stale_batches(conn: Connection, issue_id: int, now: float) -> list[ClaimedBatch]:
    """``sending`` batches whose worker is gone: lease expired, or a dead process on this host."""
    rows = conn.execute(
        select(*_CLAIMED_COLUMNS, batches.c.lease_owner).where(
            batches.c.issue_id == issue_id, batches.c.state == str(BatchState.SENDING)
        )
    ).all()
    return [
        ClaimedBatch(*r[:-1])
        for r in rows
        if r.lease_until < now or owner_is_dead(r.lease_owner)
    ]


_CLAIMED_COLUMNS = (
    batches.c.id,
    batches.c.issue_id,
    batches.c.seq,
    batches.c.attempts,
    batches.c.idempotency_key,
    batches.c.lease_until,
    batches.c.request_started_at,
)


def take_over(
    conn: Connection, batch_id: int, owner: str, *, now: float, lease_seconds: float
) -> ClaimedBatch | None:
    """Lease a dead worker's batch to ``owner``, unless another worker got there first;
    the batch as it was taken over (whether its request had started), or None.

    Several workers see the same stale batch; the lease they saw is compared and swapped in
    one statement, so exactly one of them resends, releases or reconciles it. A sender whose
    lease ran out while it waited may still mark its request started: that moves the lease
    too, so the swap fails rather than release a batch that is being sent.
    """
    seen = conn.execute(
        select(*_CLAIMED_COLUMNS, batches.c.state, batches.c.lease_owner).where(
            batches.c.id == batch_id
        )
    ).first()
    if seen is None or seen.state != BatchState.SENDING:
        return None
    if seen.lease_until >= now and not owner_is_dead(seen.lease_owner):
        return None
    swapped = conn.execute(
        update(batches)
        .where(
            batches.c.id == batch_id,
            batches.c.state == str(BatchState.SENDING),
            batches.c.lease_owner == seen.lease_owner,
            batches.c.lease_until == seen.lease_until,
            batches.c.request_started_at == seen.request_started_at,
        )
        .values(lease_owner=owner, lease_until=now + lease_seconds)
    )
    return ClaimedBatch(*seen[:-2]) if swapped.rowcount == 1 else None


def batches_in(conn: Connection, issue_id: int, state: BatchState) -> list[int]:
    stmt = (
        select(batches.c.id)
        .where(batches.c.issue_id == issue_id, batches.c.state == str(state))
        .order_by(batches.c.seq)
    )
    return list(conn.execute(stmt).scalars())


__all__ = [
    "ClaimedBatch",
    "LedgerRow",
    "OpenRow",
    "batches_in",
    "claim",
    "failed_recipient_ids",
    "failures",
    "finish_batch",
    "hold",
    "idempotency_key",
    "lock_issue",
    "mark_each",
    "mark_rows",
    "next_seq",
    "open_rows",
    "outcomes",
    "rebatch",
    "release",
    "restart_attempts",
    "retry_later",
    "rows_of",
    "stale_batches",
    "start_request",
    "suppress_open",
    "take_over",
]
