"""A freeze chunk on PostgreSQL: the members COPYed straight into the ledger.

The portable path (``audience_stage``) writes each member twice: into a temporary stage,
then into ``recipients`` by an ``INSERT … SELECT`` that only starts once the whole chunk
is staged, and checks the unique index speculatively for every row. Here the chunk's
batches are made first, so each row is written once, with its batch, by ``COPY``: the
server inserts rows while Python formats the next ones, and its CPU per member fell from
about 19 to 12 µs (``bench/workers.py`` prints the freeze's CPU); most of what is left is
the rows' foreign-key checks and index entries, which stay.

What the ``INSERT … SELECT`` decided in SQL is decided here before the rows are written:
repeats within the chunk (the first wins), and the suppressions that apply, looked up in
one query for the chunk's addresses (those rows are written ``suppressed``, in no batch),
so every batch is made at its real size. A repeat of an address an earlier chunk wrote
(a list repeating a member far apart, or a freeze taken over) still meets the unique
index: the COPY fails, its savepoint is rolled back, and the caller writes the chunk the
portable way, which skips such rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Connection, Text, any_, bindparam, func, insert, select

from ..models import ALL_LISTS, BatchState, DeliveryStatus, Recipient
from .bulk import bulk_write
from .ledger import idempotency_key
from .tables import batches, recipients, suppressions

#: ``sqlstate`` of a unique index's violation.
UNIQUE_VIOLATION = "23505"
#: The columns a chunk's rows fill; the others keep their defaults.
COLUMNS = ("issue_id", "batch_id", "email", "email_as_written", "name", "fields", "list_id",
           "status", "provider_message_id", "error", "updated_at")


#: A member as the ledger keeps it: (its position in the chunk, the address lower-cased, the
#: address as written when that differs or None, name, member fields as JSON text, list
#: id). A plain tuple: a named one cost a fifth of this module's time per member.
ChunkRow = tuple[int, str, str | None, str, str, str]


class Copied(NamedTuple):
    unique: int
    suppressed: int
    queued: int
    batches: int


def unique_rows(members: Iterable[Recipient]) -> list[ChunkRow]:
    """The chunk's members in order, each address once (its first row wins)."""
    dumps, found = orjson.dumps, {}
    for pos, m in enumerate(members):
        key = (written := m.email.strip()).lower()
        if key not in found:
            fields = dumps(m.fields).decode() if m.fields else "{}"
            found[key] = (pos, key, None if key == written else written, m.name, fields,
                          m.list_id)
    return list(found.values())


def is_repeat(exc: BaseException) -> bool:
    """True when ``exc`` is the unique index refusing an address the ledger holds."""
    return getattr(exc, "sqlstate", None) == UNIQUE_VIOLATION


def copy_chunk(conn: Connection, issue_id: int, rows: Sequence[ChunkRow], *, batch_size: int,
               first_seq: int, at: datetime) -> Copied:
    """Write ``rows`` and their batches in the caller's transaction, under
    ``ledger.lock_issue``; raises the driver's error on a repeat. As on the portable path, a
    row's batch is numbered ``first_seq`` + its position // ``batch_size``, and a batch is
    made only for the rows it holds (none for a slot left empty)."""
    held = _suppressed(conn, rows)
    queued = [r for r in rows if (r[1], r[5]) not in held] if held else rows
    batch_of = _new_batches(conn, issue_id, [r[0] // batch_size for r in queued],
                            first_seq, at)
    out: list[tuple[Any, ...]] = [
        (issue_id, batch_of[pos // batch_size], *row, "queued", "", "", None)
        for pos, *row in queued
    ]
    suppressed = str(DeliveryStatus.SUPPRESSED)
    out += [(issue_id, None, *row, suppressed, "", "", at)
            for pos, *row in rows if (row[0], row[4]) in held]
    bulk_write(conn, recipients, out, columns=COLUMNS)
    return Copied(len(rows), len(rows) - len(queued), len(queued), len(batch_of))


def _suppressed(conn: Connection, rows: Sequence[ChunkRow]) -> set[tuple[str, str]]:
    """(address, list) of the rows a suppression applies to: for every list, or theirs."""
    found = conn.execute(_SUPPRESSIONS, {"keys": "\n".join(r[1] for r in rows)}).all()
    if not found:
        return set()
    scopes: dict[str, set[str]] = {}
    for email, scope in found:
        scopes.setdefault(email, set()).add(scope)
    return {(key, list_id) for _, key, _, _, _, list_id in rows
            if key in scopes and (ALL_LISTS in scopes[key] or list_id in scopes[key])}


#: The suppressions of a chunk's addresses, handed over as one string, a line each (no
#: address holds a line break): as an array parameter, each of 20,000 elements cost the
#: driver a regular-expression match, more than the query.
_SUPPRESSIONS = select(suppressions.c.email, suppressions.c.scope).where(
    suppressions.c.email == any_(func.string_to_array(bindparam("keys", type_=Text), "\n"))
)


def _new_batches(conn: Connection, issue_id: int, slots: Sequence[int], first_seq: int,
                 at: datetime) -> dict[int, int]:
    """A batch for each slot used (``slots``: each row's), sized to hold its rows; by slot,
    its id."""
    sizes = Counter(slots)
    rows = [
        {"issue_id": issue_id, "seq": seq, "state": str(BatchState.PENDING), "size": size,
         "attempts": 0, "idempotency_key": idempotency_key(issue_id, seq),
         "next_attempt_at": 0.0, "updated_at": at}
        for seq, size in ((first_seq + slot, size) for slot, size in sorted(sizes.items()))
    ]
    if not rows:
        return {}
    made = conn.execute(insert(batches).returning(batches.c.id, sort_by_parameter_order=True),
                        rows)
    return dict(zip(sorted(sizes), made.scalars(), strict=True))
