"""The rows a reader's own sign-ups left in the store: their journal entries, their sign-up
requests and the one-off messages queued to them. Exported with the rest of what is held
about them (``lists.reader_data``), deleted when they are forgotten (``lists.forget``).

Deleted, not made anonymous: unlike the ledger, no count depends on them. The journal
entries go first of all, so that no host copies the reader into its files again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, select

from . import signup_journal
from .tables import mail_outbox, signup_requests
from .tables import signup_journal as journal_table

#: The kinds of row, in ``SignupRows``' order and as ``export`` names them.
SIGNUP_KINDS = ("journal", "requests", "messages")


@dataclass(frozen=True, slots=True)
class SignupRows:
    journal_entries: int
    requests: int
    messages: int

    def __bool__(self) -> bool:
        return bool(self.journal_entries or self.requests or self.messages)


def export(conn: Connection, key: str) -> dict[str, list[dict[str, Any]]]:
    """The rows themselves, for ``subscribers export``; never a request's nonce nor a
    message's body, which carry a confirmation link: whoever holds one can confirm."""
    journal = conn.execute(select(journal_table).where(journal_table.c.email_key == key)
                           .order_by(journal_table.c.id))
    requests = conn.execute(select(signup_requests).where(signup_requests.c.email_key == key)
                            .order_by(signup_requests.c.id))
    messages = conn.execute(select(mail_outbox).where(func.lower(mail_outbox.c.to_email) == key)
                            .order_by(mail_outbox.c.id))
    return {
        "journal": [{"list": r.list_id, "kind": r.kind, "address": r.email, "name": r.name,
                     "source": r.source, "at": _iso(r.at)} for r in journal],
        "requests": [{"list": r.list_id, "address": r.email, "name": r.name,
                      "requested_at": _iso(r.requested_at), "last_sent_at": _iso(r.last_sent_at),
                      "confirmed_at": _iso(r.confirmed_at)} for r in requests],
        "messages": [{"kind": r.kind, "list": r.list_id, "to": r.to_email, "subject": r.subject,
                      "status": r.status, "queued_at": _iso(r.queued_at),
                      "sent_at": _iso(r.sent_at)} for r in messages],
    }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def erase(conn: Connection, key: str) -> SignupRows:
    """Delete them, in the caller's transaction; how many went."""
    entries = signup_journal.forget(conn, key)
    requests = conn.execute(delete(signup_requests).where(signup_requests.c.email_key == key))
    messages = conn.execute(
        delete(mail_outbox).where(func.lower(mail_outbox.c.to_email) == key)
    )
    return SignupRows(entries, int(requests.rowcount), int(messages.rowcount))
