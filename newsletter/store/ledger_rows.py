"""A batch's recipient rows: reading the open ones for a send, writing their outcomes.

The other half of the ledger (``ledger``) moves batches through their states; this one
reads and writes the rows inside them. Reading a batch's rows is the hottest query of a
send (once per batch, a thousand rows), and a row is written only when its outcome
differs from its batch's (``ledger`` explains why), so what is here is mostly the read.
``ledger`` re-exports these names: callers keep one name for the ledger.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
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
    func,
    literal,
    or_,
    select,
    type_coerce,
    update,
)

from ..models import ALL_LISTS, DeliveryStatus
from .tables import recipients, suppressions


class LedgerRow(NamedTuple):  # one per recipient sent: a tuple is the cheapest to make
    id: int
    email: str
    name: str
    fields: Mapping[str, str]
    list_id: str


_NO_FIELDS: Mapping[str, str] = MappingProxyType({})


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
