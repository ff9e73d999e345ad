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
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from types import MappingProxyType
from typing import Any, NamedTuple

import orjson
from sqlalchemy import (
    Connection,
    Text,
    and_,
    bindparam,
    case,
    func,
    insert,
    literal,
    or_,
    select,
    type_coerce,
    update,
)

from ..models import ALL_LISTS, BatchState, DeliveryStatus
from ..processes import owner_is_dead
from .tables import batches, issues, recipients, suppressions


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


class LedgerRow(NamedTuple):  # one per recipient sent: a tuple is the cheapest to make
    id: int
    email: str
    name: str
    fields: Mapping[str, str]
    list_id: str


_NO_FIELDS: Mapping[str, str] = MappingProxyType({})


def lock_issue(conn: Connection, issue_id: int) -> None:
    """Lock the issue's row until the transaction ends (on PostgreSQL; SQLite has one writer
    at a time). A transaction that adds batches takes it before it writes any recipient row,
    as a freeze chunk does: in the other order, each could wait for the other (a repeated
    address in the chunk waits for whoever is writing that address's row)."""
    conn.execute(select(issues.c.id).where(issues.c.id == issue_id).with_for_update())


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
    return (
        update(batches)
        .where(
            batches.c.id == candidate.scalar_subquery(), batches.c.state == str(BatchState.PENDING)
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


_OPEN = (str(DeliveryStatus.QUEUED), str(DeliveryStatus.UNKNOWN))  # still owed a copy


#: An open row as ``open_rows`` reads it: (id, email, name, member fields, list id).
OpenRow = Sequence[Any]


def rows_of(conn: Connection, batch_id: int, *, with_fields: bool = True) -> list[LedgerRow]:
    """The batch's open rows, with named fields (see ``open_rows``)."""
    return [LedgerRow(*row) for row in open_rows(conn, batch_id, with_fields=with_fields)]


#: The address a copy goes to: as the list wrote it (``email`` is lower-cased).
_SENT_TO = func.coalesce(recipients.c.email_as_written, recipients.c.email)


def open_rows(conn: Connection, batch_id: int, *, with_fields: bool = True) -> list[OpenRow]:
    """The batch's open rows in id order, each a plain (id, email, name, fields, list_id),
    the address as the list wrote it: a send reads every row of its audience, and a named
    tuple per row cost 0.37 µs of the engine's 0.64 to turn a row into a recipient.
    ``with_fields=False`` when the issue's templates use no member field: then those are
    neither read nor decoded (left empty)."""
    if conn.dialect.name == "sqlite":
        return _in_one_step(conn, batch_id, with_fields)
    # As stored: the JSON type's processor costs more per row than the rest of the read.
    stored = type_coerce(recipients.c.fields, Text) if with_fields else literal(None, Text)
    found = conn.execute(
        select(recipients.c.id, _SENT_TO, recipients.c.name, stored, recipients.c.list_id)
        .where(recipients.c.batch_id == batch_id, recipients.c.status.in_(_OPEN))
        .order_by(recipients.c.id)
    )
    return [
        (row_id, email, name, _fields(fields), list_id)
        for row_id, email, name, fields, list_id in found
    ]


def _in_one_step(conn: Connection, batch_id: int, with_fields: bool) -> list[OpenRow]:
    """The batch's open rows as one SQLite value: a JSON array of arrays, sorted here by id.

    The sqlite3 module lets go of the GIL for every row it steps through; while another
    sender thread computes, each release waits for the GIL to come back, and a 1,000-row
    read took 1,000 times longer (``bench/ledger_read.py``). One aggregated row means one
    wait, and the JSON (member fields too) is decoded by orjson, in half the json module's
    time. The statement is SQL text:
    building and compiling it per batch cost more than the read (1.9 µs a row, now 1.2).
    """
    found: list[OpenRow] = orjson.loads(
        conn.exec_driver_sql(_SQLITE_OPEN_ROWS[with_fields], (batch_id, *_OPEN)).scalar_one()
    )
    found.sort(key=itemgetter(0))  # the aggregate's order is not promised; ids are
    return found


_SQLITE_OPEN_ROWS = {
    with_fields: (
        "SELECT json_group_array(json_array(id, coalesce(email_as_written, email), name, "
        f"{column}, list_id)) "
        "FROM recipients WHERE batch_id = ? AND status IN (?, ?)"
    )
    for with_fields, column in ((True, "json(fields)"), (False, "json_object()"))
}


def _fields(stored: str | dict[str, str] | None) -> Mapping[str, str]:
    """A row's member fields, whether the driver hands back JSON text or decoded JSON."""
    if isinstance(stored, dict):
        return stored
    if not stored or stored == "{}":
        return _NO_FIELDS
    decoded = orjson.loads(stored)
    return decoded if isinstance(decoded, dict) else {}


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


def suppress_open(
    conn: Connection, why: Mapping[int, str], list_id: str, *, at: datetime
) -> list[int]:
    """Of the open rows ``why`` names (row id → the reason to record), mark ``suppressed`` the
    ones a suppression applies to now (for every list, or the row's: ``list_id`` for a row
    without one), as the freeze would have; returns their ids. Nothing is sent to them."""
    applies = (
        select(suppressions.c.email)
        .where(
            suppressions.c.email == recipients.c.email,
            or_(
                suppressions.c.scope == ALL_LISTS,
                suppressions.c.scope == recipients.c.list_id,
                and_(recipients.c.list_id == "", suppressions.c.scope == list_id),
            ),
        )
        .exists()
    )
    confirmed = list(
        conn.execute(
            select(recipients.c.id).where(
                recipients.c.id.in_(list(why)), recipients.c.status.in_(_OPEN), applies
            )
        ).scalars()
    )
    suppressed = str(DeliveryStatus.SUPPRESSED)
    mark_each(conn, [{"rid": rid, "status": suppressed, "message_id": "", "error": why[rid]}
                     for rid in confirmed], at)
    return confirmed


def failures(reasons: Mapping[int, str]) -> list[dict[str, Any]]:
    """Each row ``reasons`` names failed, with its own reason, in the form ``mark_each`` takes."""
    failed = str(DeliveryStatus.FAILED)
    return [{"rid": rid, "status": failed, "message_id": "", "error": error}
            for rid, error in reasons.items()]


def outcomes(ids: Iterable[int], status: DeliveryStatus, error: str) -> list[dict[str, Any]]:
    """The same outcome for each of ``ids``, in the form ``mark_each`` takes."""
    return [{"rid": i, "status": str(status), "message_id": "", "error": error} for i in ids]


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
