"""One-off messages to one reader (``mail_outbox``): queued rendered, claimed with a lease,
and recorded with the provider's answer.

A row is ``pending`` until a sender claims it: the claim sets it ``sending`` and moves
``due_at`` to the end of a lease. A sender that dies leaves the row ``sending`` with a lease
that runs out, and the next claim takes it again. The claim is one ``UPDATE`` that checks
the state it found, so two processes never take the same row (PostgreSQL re-checks the
conditions on a row another transaction changed meanwhile; SQLite runs one writer at a time).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, func, insert, select, update

from ..models import BatchState
from .db import delete_some
from .tables import mail_outbox


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    id: int
    kind: str
    list_id: str
    to_email: str
    subject: str
    html: str
    text: str
    status: str
    attempts: int
    queued_at: datetime
    due_at: datetime
    sent_at: datetime | None
    provider_message_id: str
    error: str


_QUEUE = insert(mail_outbox).returning(mail_outbox.c.id)


def queue(
    conn: Connection, *, kind: str, list_id: str, to_email: str, subject: str, html: str,
    text: str, at: datetime,
) -> int:
    """Queue a message to be sent as soon as a sender claims it; its id."""
    values = {
        "kind": kind, "list_id": list_id, "to_email": to_email, "subject": subject,
        "html": html, "text": text, "status": str(BatchState.PENDING), "attempts": 0,
        "queued_at": at, "due_at": at, "sent_at": None, "provider_message_id": "", "error": "",
    }
    return int(conn.execute(_QUEUE, values).scalar_one())


def _claimable(now: datetime) -> Any:
    """Pending and due, or claimed by a sender whose lease has run out."""
    return and_(
        mail_outbox.c.status.in_([str(BatchState.PENDING), str(BatchState.SENDING)]),
        mail_outbox.c.due_at <= now,
    )


def claim(
    conn: Connection, *, now: datetime, lease_until: datetime, limit: int
) -> list[OutboxMessage]:
    """Take up to ``limit`` due messages, oldest due first, until ``lease_until``."""
    due = (
        select(mail_outbox.c.id)
        .where(_claimable(now))
        .order_by(mail_outbox.c.due_at, mail_outbox.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    stmt = (
        update(mail_outbox)
        .where(mail_outbox.c.id.in_(due.scalar_subquery()), _claimable(now))
        .values(status=str(BatchState.SENDING), due_at=lease_until,
                attempts=mail_outbox.c.attempts + 1)
        .returning(*mail_outbox.c)
    )
    return sorted((_message(row) for row in conn.execute(stmt)), key=lambda m: m.id)


def next_due(conn: Connection) -> datetime | None:
    """When the soonest message waiting (or leased) falls due; None when none waits."""
    waiting = [str(BatchState.PENDING), str(BatchState.SENDING)]
    stmt = select(mail_outbox.c.due_at).where(mail_outbox.c.status.in_(waiting))
    found = conn.execute(stmt.order_by(mail_outbox.c.due_at).limit(1)).scalar()
    return found if isinstance(found, datetime) else None


def record_sent(conn: Connection, message_id: int, provider_message_id: str, *,
                at: datetime) -> None:
    _finish(conn, message_id, status=str(BatchState.SENT), sent_at=at,
            provider_message_id=provider_message_id[:300], error="")


def record_outcome(conn: Connection, message_id: int, status: BatchState, error: str) -> None:
    """A final state other than sent: failed, or unknown (it may have gone out)."""
    _finish(conn, message_id, status=str(status), error=error[:2000])


def retry_at(conn: Connection, message_id: int, due: datetime, error: str) -> None:
    """Back to pending, not to be tried before ``due``."""
    _finish(conn, message_id, status=str(BatchState.PENDING), due_at=due, error=error[:2000])


def _finish(conn: Connection, message_id: int, **values: Any) -> None:
    """Update the row only while it is still claimed: a sender whose lease ran out and whose
    row another sender took over records nothing over the newer outcome."""
    conn.execute(
        update(mail_outbox)
        .where(mail_outbox.c.id == message_id, mail_outbox.c.status == str(BatchState.SENDING))
        .values(**values)
    )


def get(conn: Connection, message_id: int) -> OutboxMessage | None:
    row = conn.execute(select(mail_outbox).where(mail_outbox.c.id == message_id)).first()
    return None if row is None else _message(row)


def counts(conn: Connection) -> dict[str, int]:
    """How many messages are in each state."""
    stmt = select(mail_outbox.c.status, func.count()).group_by(mail_outbox.c.status)
    return {str(status): int(n) for status, n in conn.execute(stmt)}


def _message(row: Row[Any]) -> OutboxMessage:
    return OutboxMessage(
        row.id, row.kind, row.list_id, row.to_email, row.subject, row.html, row.text,
        row.status, row.attempts, row.queued_at, row.due_at, row.sent_at,
        row.provider_message_id, row.error,
    )



#: The states a message stays in once a sender is done with it.
FINISHED = (str(BatchState.SENT), str(BatchState.FAILED), str(BatchState.UNKNOWN))


def prune(conn: Connection, *, before: datetime, limit: int) -> int:
    """Delete up to ``limit`` finished messages last tried before ``before`` (a claim moves
    ``due_at`` to its lease's end, which the ``status, due_at`` index finds); how many."""
    return delete_some(conn, mail_outbox, mail_outbox.c.status.in_(FINISHED),
                       mail_outbox.c.due_at < before, limit=limit)
