"""The journal of confirmed sign-ups and readers' own changes (``signup_journal``).

Lists stay files: a confirmed reader ends up as a row of the list's sign-up file. But
where several hosts serve and send, each has its own ``subscribers/`` folder, and a reader
confirmed on one must be in every host's next send. So a confirmation (or a reader's own
page) writes an entry here first, in the database every host shares, and each host copies
the entries it has not applied yet into its own files (``lists.signups``), remembering the
last ``id`` it applied. The file stays the readable record an admin edits; the journal is
how a change reaches every copy of it.

Kinds of entry:

- ``join``: add the reader to the list's sign-up file, unless a file of the list already
  holds the address;
- ``rename``: the reader changed their name; rows of the address in the list's files that
  have a ``name`` column take it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Connection, insert, select

from .tables import signup_journal


class JournalKind(StrEnum):
    JOIN = "join"
    RENAME = "rename"


class JournalSource(StrEnum):
    CONFIRM = "confirm"  # a sign-up's confirmation link
    PREFERENCES = "preferences"  # the reader's own page


@dataclass(frozen=True, slots=True)
class JournalEntry:
    id: int
    list_id: str
    kind: JournalKind
    email: str
    name: str
    source: JournalSource
    at: datetime


def record(
    conn: Connection,
    *,
    list_id: str,
    kind: JournalKind,
    email: str,
    name: str,
    source: JournalSource,
    at: datetime,
) -> int:
    """Append an entry; its id (the journal's position after it). ``email`` is the checked
    address as the reader wrote it (``lists.address.sendable_address``)."""
    row = {
        "list_id": list_id, "kind": str(kind), "email_key": email.strip().lower(),
        "email": email, "name": name, "source": str(source), "at": at,
    }
    inserted = conn.execute(insert(signup_journal).values(row)).inserted_primary_key
    assert inserted is not None
    return int(inserted[0])


def entries_after(
    conn: Connection, list_id: str, position: int, *, limit: int = 1000
) -> Iterator[JournalEntry]:
    """The list's entries with an id above ``position``, oldest first, at most ``limit``."""
    stmt = (
        select(signup_journal)
        .where(signup_journal.c.list_id == list_id, signup_journal.c.id > position)
        .order_by(signup_journal.c.id)
        .limit(limit)
    )
    for row in conn.execute(stmt):
        yield JournalEntry(
            row.id, row.list_id, JournalKind(row.kind), row.email, row.name,
            JournalSource(row.source), row.at,
        )


def forget(conn: Connection, email: str) -> int:
    """Erase every entry of ``email`` (``subscribers forget``); how many went."""
    stmt = signup_journal.delete().where(signup_journal.c.email_key == email.strip().lower())
    return int(conn.execute(stmt).rowcount)
