"""Applying provider events: the event log, the ledger row and the suppressions, together.

An event is applied once: its ``(provider, event_id)`` goes into ``events`` first, and a
duplicate stops there, so a redelivered soft bounce is not counted twice. The caller holds
the transaction, which also records the request's replay token when the provider has one.

An event about a reader forgotten at their request (``suppressions.is_forgotten``) is kept
without what would name them (``forgotten_event``): its type, time and issue still count, its
address, message id and detail are not stored again, and it suppresses nothing (the
forgotten row already does).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, delete, select, update

from ..models import ALL_LISTS, DeliveryStatus, SuppressionReason, WebhookEvent
from . import suppressions
from .db import dialect_insert
from .tables import batches, events, recipients, seen_tokens, soft_bounces

#: A later event never undoes a stronger one: an "opened" arriving after a complaint
#: (providers deliver out of order) leaves the ledger saying "complained".
STRENGTH: Mapping[str, int] = {
    DeliveryStatus.DELIVERED: 1,
    DeliveryStatus.BOUNCED_SOFT: 1,
    DeliveryStatus.OPENED: 2,
    DeliveryStatus.CLICKED: 3,
    DeliveryStatus.UNSUBSCRIBED: 4,
    DeliveryStatus.BOUNCED_HARD: 5,
    DeliveryStatus.COMPLAINED: 5,
}
SUPPRESSING = {
    DeliveryStatus.BOUNCED_HARD: SuppressionReason.BOUNCED_HARD,
    DeliveryStatus.COMPLAINED: SuppressionReason.COMPLAINED,
    DeliveryStatus.UNSUBSCRIBED: SuppressionReason.UNSUBSCRIBED,
}


def apply_events(
    conn: Connection, batch: Iterable[WebhookEvent], *, soft_bounce_limit: int, now: datetime
) -> int:
    """Apply each event not seen before; returns how many were new."""
    return sum(apply_event(conn, e, soft_bounce_limit=soft_bounce_limit, now=now) for e in batch)


def apply_event(
    conn: Connection, event: WebhookEvent, *, soft_bounce_limit: int, now: datetime
) -> bool:
    """Record ``event``, update its ledger row and suppress its address if it calls for it."""
    if event.email and suppressions.is_forgotten(conn, event.email):
        event = forgotten_event(event)
    row = find_recipient(conn, event.provider_message_id, event.email)
    if not _record(conn, event, row.issue_id if row else None):
        return False
    if row is not None:
        _update_recipient(conn, row, event, now)
    email = event.email or (row.email if row else "")
    if email:
        _suppress(conn, event, email, row.list_id if row else "", soft_bounce_limit, now)
    return True


def forgotten_event(event: WebhookEvent) -> WebhookEvent:
    """``event`` without what names a forgotten reader; its id stays what a redelivery of it
    would become, so that a redelivered event is still applied once."""
    return replace(
        event, email="", provider_message_id="", detail="",
        event_id=forgotten_event_id(event.event_id, event.email),
    )


def forgotten_event_id(event_id: str, email: str) -> str:
    """An event id with the address in it (Amazon SES and Resend make one per recipient so)
    written with the address's forgotten key instead."""
    address = email.strip()
    if not address:
        return event_id
    key = suppressions.forgotten_key(address)
    return re.sub(re.escape(address), lambda _: key, event_id, flags=re.IGNORECASE)[:300]


@dataclass(frozen=True, slots=True)
class MatchedRecipient:
    """The part of a ``recipients`` row an event needs."""

    id: int
    issue_id: int
    email: str
    list_id: str
    status: str


def find_recipient(conn: Connection, message_id: str, email: str) -> MatchedRecipient | None:
    """The ledger row of ``message_id`` (with or without angle brackets) sent to ``email``.

    Mailgun and SendGrid give one id to a whole batch, kept on the batch, so the address is
    part of the match; without an address, the id must name exactly one row.
    """
    bare = message_id.strip().strip("<>")
    if not bare:
        return None
    ids = [bare, f"<{bare}>"]
    # The explicit ``!= ''`` lets SQLite use the partial index of rows with an id.
    has_id = recipients.c.provider_message_id != ""
    found = _matching(conn, and_(recipients.c.provider_message_id.in_(ids), has_id), email)
    if found is None and email:
        batch = select(batches.c.id).where(batches.c.provider_batch_id.in_(ids))
        found = _matching(conn, recipients.c.batch_id.in_(batch.scalar_subquery()), email)
    return found


def _matching(conn: Connection, condition: Any, email: str) -> MatchedRecipient | None:
    stmt = select(
        recipients.c.id, recipients.c.issue_id, recipients.c.email, recipients.c.list_id,
        recipients.c.status,
    ).where(condition)
    if email:
        stmt = stmt.where(recipients.c.email == suppressions.normalise(email))  # ledger: lower-case
    rows = conn.execute(stmt.limit(2)).all()
    return MatchedRecipient(*rows[0]) if len(rows) == 1 else None


def claim_token(
    conn: Connection, provider: str, token: str, now: datetime, keep: timedelta
) -> bool:
    """Remember a webhook's one-time token; False when it was already used (a replay).

    Tokens older than ``keep`` are forgotten: by then their timestamp is refused anyway.
    """
    conn.execute(delete(seen_tokens).where(seen_tokens.c.at < now - keep))
    stmt = dialect_insert(conn, seen_tokens).values(provider=provider, token=token[:300], at=now)
    return _inserted(conn, stmt.on_conflict_do_nothing().returning(seen_tokens.c.token))


def soft_bounce_count(conn: Connection, email: str) -> int:
    stmt = select(soft_bounces.c.count).where(soft_bounces.c.email == suppressions.normalise(email))
    return int(conn.execute(stmt).scalar() or 0)


def reset_soft_bounces(conn: Connection, email: str) -> None:
    conn.execute(delete(soft_bounces).where(soft_bounces.c.email == suppressions.normalise(email)))


def _inserted(conn: Connection, stmt: Any) -> bool:
    """Whether an ``INSERT … ON CONFLICT DO NOTHING RETURNING …`` wrote its row.

    Asked through RETURNING because drivers differ: psycopg reports ``rowcount`` -1 here.
    """
    return conn.execute(stmt).first() is not None


def _record(conn: Connection, event: WebhookEvent, issue_id: int | None) -> bool:
    stmt = dialect_insert(conn, events).values(
        provider=event.provider,
        event_id=event.event_id[:300],
        type=str(event.type),
        email=suppressions.normalise(event.email),
        provider_message_id=event.provider_message_id[:300],
        issue_id=issue_id,
        at=event.at,
        detail=event.detail[:2000],
    )
    return _inserted(conn, stmt.on_conflict_do_nothing().returning(events.c.id))


def _update_recipient(
    conn: Connection, row: MatchedRecipient, event: WebhookEvent, now: datetime
) -> None:
    if STRENGTH.get(event.type, 0) < STRENGTH.get(row.status, 0):
        return
    values: dict[str, Any] = {"status": str(event.type), "updated_at": now}
    if event.type in (DeliveryStatus.BOUNCED_HARD, DeliveryStatus.BOUNCED_SOFT):
        values["error"] = event.detail[:2000]
    conn.execute(update(recipients).where(recipients.c.id == row.id).values(**values))


def _suppress(
    conn: Connection, event: WebhookEvent, email: str, list_id: str, limit: int, now: datetime
) -> None:
    source = f"webhook:{event.provider}"
    reason = SUPPRESSING.get(event.type)
    if reason is not None:
        # Bounces and complaints concern the address, not one list; an unsubscribe the
        # provider caught (its own link, a mailbox button) concerns the list it came from.
        scope = (list_id or ALL_LISTS) if reason is SuppressionReason.UNSUBSCRIBED else ALL_LISTS
        suppressions.add(
            conn, email, reason, scope=scope, source=source, detail=event.detail, at=now
        )
    elif event.type is DeliveryStatus.BOUNCED_SOFT:
        count = _count_soft_bounce(conn, email, now)
        if count >= limit:
            detail = f"{count} soft bounces in a row; last: {event.detail}"
            suppressions.add(conn, email, SuppressionReason.BOUNCED_SOFT, source=source,
                             detail=detail, at=now)
    elif event.type is DeliveryStatus.DELIVERED:
        # Only bounces in a row count: a mailbox that was full last week but takes mail now is fine.
        reset_soft_bounces(conn, email)


def _count_soft_bounce(conn: Connection, email: str, now: datetime) -> int:
    address = suppressions.normalise(email)
    stmt = dialect_insert(conn, soft_bounces).values(email=address, count=1, last_at=now)
    stmt = stmt.on_conflict_do_update(
        index_elements=[soft_bounces.c.email],
        set_={"count": soft_bounces.c.count + 1, "last_at": now},
    )
    conn.execute(stmt)
    return soft_bounce_count(conn, email)
