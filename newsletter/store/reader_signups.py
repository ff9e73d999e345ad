"""The rows a reader's own sign-ups left in the store: their journal entries, their sign-up
requests and the one-off messages queued to them. Counted for a forgetting's plan, deleted
when the reader is forgotten (``lists.forget``).

Deleted, not made anonymous: unlike the ledger, no count depends on them. The journal
entries go first of all, so that no host copies the reader into its files again.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, Select, delete, func, select

from . import signup_journal
from .tables import mail_outbox, signup_requests
from .tables import signup_journal as journal_table


@dataclass(frozen=True, slots=True)
class SignupRows:
    journal_entries: int
    requests: int
    messages: int

    def __bool__(self) -> bool:
        return bool(self.journal_entries or self.requests or self.messages)


def count(conn: Connection, key: str) -> SignupRows:
    """How many rows of each kind hold the address ``key`` (lower-cased)."""
    return SignupRows(
        _count(conn, select(func.count()).where(journal_table.c.email_key == key)),
        _count(conn, select(func.count()).where(signup_requests.c.email_key == key)),
        # No index on the address: a scan, which a forgetting (rare) can afford.
        _count(conn, select(func.count()).where(func.lower(mail_outbox.c.to_email) == key)),
    )


def erase(conn: Connection, key: str) -> SignupRows:
    """Delete them, in the caller's transaction; how many went."""
    entries = signup_journal.forget(conn, key)
    requests = conn.execute(delete(signup_requests).where(signup_requests.c.email_key == key))
    messages = conn.execute(
        delete(mail_outbox).where(func.lower(mail_outbox.c.to_email) == key)
    )
    return SignupRows(entries, int(requests.rowcount), int(messages.rowcount))


def _count(conn: Connection, stmt: Select[int]) -> int:
    return int(conn.execute(stmt).scalar_one())
