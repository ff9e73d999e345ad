"""One page of an issue's recipients, in address order, found by the start of the address
and by status: what the desk's recipients page and the API read.

Pages follow each other by keyset, the last address of a page (unique within an issue),
never by OFFSET, so a deep page costs what the first one does. Two ways to find a page:

- **by address**: walk the ``(issue_id, email)`` index from where the page starts (from
  the prefix searched for, on SQLite a range of that index), reading rows until the page
  is full. With a status asked for, each row walked is read for its status, and the walk
  stops after ``WALK_AT_MOST`` addresses, full page or not (``FoundPage.walked_to``):
  where the rows of a status gather at one end of the alphabet (a member file sorted by
  address, half of it sent), a page still costs a bounded time, and the next one
  continues the walk.
- **by status**: when few rows have the status asked for (fewer than ``SORT_AT_MOST``),
  find them all through the ``(batch_id, status)`` index, and sort them by address.

Which way is chosen by counting, at most ``SORT_AT_MOST`` index entries, the rows of the
status asked for. An index on ``(issue_id, status, email)`` would serve every status in
address order, but would move an index entry for every row a send marks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    case,
    func,
    select,
    type_coerce,
    union_all,
)

from ..models import BatchState, DeliveryStatus
from .tables import UtcDateTime, batches, recipients
from .tally import recipient_status, recipients_with_batch

#: Rows of one status found and sorted at most; more, and the page walks the addresses.
SORT_AT_MOST = 10_000
#: Addresses a page looks at at most when a common status is asked for (about 30 ms).
WALK_AT_MOST = 50_000
#: Above every character an address can hold: ``prefix + TOP`` bounds the prefix's range.
TOP = "\U0010ffff"
_SENT, _QUEUED = str(DeliveryStatus.SENT), str(DeliveryStatus.QUEUED)


@dataclass(frozen=True, slots=True)
class Search:
    """``prefix``: the start of the address, lower-cased as the ledger keeps it; ``status``:
    as ``tally.recipient_status`` reads it; ``after``: the last address of the page before."""

    prefix: str = ""
    status: str = ""
    after: str = ""
    limit: int = 50


@dataclass(frozen=True, slots=True)
class FoundRecipient:
    key: str
    address: str
    status: str
    error: str
    message_id: str
    at: datetime | None


@dataclass(frozen=True, slots=True)
class FoundPage:
    """Up to ``limit + 1`` recipients (the one more says a next page exists). ``walked_to``:
    the last address looked at, when the walk stopped there (see above); the next page
    starts after it."""

    rows: list[FoundRecipient]
    walked_to: str | None


def page(conn: Connection, issue_id: int, search: Search) -> FoundPage:
    """The recipients ``search`` asks for, after ``search.after``, in address order."""
    bounds = _address_bounds(conn, search)
    end = None
    if not search.status:
        stmt = _by_address(issue_id, search)
    elif _few(conn, issue_id, search.status):
        stmt = _by_status(issue_id, search)
    else:
        stmt = _by_address(issue_id, search)
        end = _walk_end(conn, issue_id, bounds)
        if end is not None:
            stmt = stmt.where(recipients.c.email <= end)
    stmt = stmt.where(*bounds).order_by(recipients.c.email).limit(search.limit + 1)
    rows = [FoundRecipient(key, address, status, error, message_id, at)
            for key, address, status, error, message_id, at in conn.execute(stmt)]
    return FoundPage(rows, end if len(rows) <= search.limit else None)


def _walk_end(
    conn: Connection, issue_id: int, bounds: list[ColumnElement[bool]]
) -> str | None:
    """The ``WALK_AT_MOST``-th address from where the page starts (None: fewer are left),
    read from the index alone."""
    stmt = (
        select(recipients.c.email)
        .where(recipients.c.issue_id == issue_id, *bounds)
        .order_by(recipients.c.email)
        .offset(WALK_AT_MOST - 1)
        .limit(1)
    )
    found = conn.execute(stmt).scalar()
    return str(found) if found is not None else None


_DONE = [str(BatchState.SENT), str(BatchState.FAILED), str(BatchState.UNKNOWN)]
#: When a row's outcome was recorded: its own change, else its batch's once the batch is
#: done (a batch sent whole leaves its rows untouched).
_WHEN = type_coerce(
    func.coalesce(
        recipients.c.updated_at, case((batches.c.state.in_(_DONE), batches.c.updated_at))
    ),
    UtcDateTime(),
)
_COLUMNS = (
    recipients.c.email,
    func.coalesce(recipients.c.email_as_written, recipients.c.email),
    recipient_status,
    recipients.c.error,
    func.coalesce(func.nullif(recipients.c.provider_message_id, ""), batches.c.provider_batch_id,
                  ""),
    _WHEN,
)


def _by_address(issue_id: int, search: Search) -> Select[Any]:
    stmt = select(*_COLUMNS).select_from(recipients_with_batch).where(
        recipients.c.issue_id == issue_id
    )
    if search.status:
        stmt = stmt.where(recipient_status == search.status)
    return stmt


def _by_status(issue_id: int, search: Search) -> Select[Any]:
    found = union_all(*_status_parts(issue_id, search.status)).subquery()
    return select(*_COLUMNS).select_from(recipients_with_batch).where(
        recipients.c.id.in_(select(found.c.id))
    )


def _few(conn: Connection, issue_id: int, status: str) -> bool:
    """Whether fewer than ``SORT_AT_MOST`` rows have ``status``: counted from the indexes,
    stopping there."""
    ids = union_all(*_status_parts(issue_id, status)).limit(SORT_AT_MOST).subquery()
    return int(conn.execute(select(func.count()).select_from(ids)).scalar_one()) < SORT_AT_MOST


def _status_parts(issue_id: int, status: str) -> list[Select[Any]]:
    """The ids of the rows ``recipient_status`` reads as ``status``, each part by an index:
    the batched rows by (batch, status), the unbatched ones by their partial index."""

    def batched(states: Sequence[str] | None, statuses: Sequence[str]) -> Select[Any]:
        of_issue = select(batches.c.id).where(batches.c.issue_id == issue_id)
        if states is not None:
            of_issue = of_issue.where(batches.c.state.in_(states))
        return select(recipients.c.id).where(
            recipients.c.batch_id.in_(of_issue), recipients.c.status.in_(statuses)
        )

    # Outside every batch: suppressed when frozen (rows made by hand may be anything).
    unbatched = select(recipients.c.id).where(
        recipients.c.issue_id == issue_id,
        recipients.c.batch_id.is_(None),
        recipients.c.status == status,
    )
    others = [str(s) for s in BatchState if s != BatchState.SENT]
    if status == _SENT:  # rows left queued in a batch sent whole read as sent
        return [batched([str(BatchState.SENT)], [_QUEUED, _SENT]), batched(others, [_SENT]),
                unbatched]
    if status == _QUEUED:
        return [batched(others, [_QUEUED]), unbatched]
    return [batched(None, [status]), unbatched]


def _address_bounds(conn: Connection, search: Search) -> list[ColumnElement[bool]]:
    """Where the page starts, and the prefix. SQLite compares text by code point, so the
    prefix is a range of the index; PostgreSQL compares by the database's collation, which
    may order a prefix's addresses apart, so it is matched with LIKE (escaped) there."""
    bounds: list[ColumnElement[bool]] = []
    prefix, after = search.prefix, search.after
    if conn.dialect.name != "sqlite":
        if prefix:
            bounds.append(recipients.c.email.startswith(prefix, autoescape=True))
        if after:
            bounds.append(recipients.c.email > after)
        return bounds
    # One lower bound only: given two, SQLite's planner may seek by the weaker one.
    if after and after >= prefix:
        bounds.append(recipients.c.email > after)
    elif prefix:
        bounds.append(recipients.c.email >= prefix)
    if prefix:
        bounds.append(recipients.c.email < prefix + TOP)
    return bounds

