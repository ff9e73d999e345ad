"""A page of an earlier issue's audience copied into a new issue's ledger, in SQL alone.

``store.audience`` copies the audience of an issue frozen from the same files
(``audience_sources``) a page per transaction, in the order that issue froze its rows, so
that the batches are cut as they were (the token cache finds each batch's tokens where it
kept them). Per page: one statement reads the page's bounds, one inserts its rows with
their batches, or as suppressed when they are today. Nothing goes through Python per row,
nor through the stage a list's members take: that was half of a copy's time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Connection, and_, case, func, literal, select

from ..models import ALL_LISTS, DeliveryStatus
from .audience_sources import AudienceSource
from .audience_stage import (
    ROW_COLUMNS,
    FreezeCounts,
    full_batches,
    insert_rows,
    new_batches,
    settle_batches,
)
from .ledger import next_seq
from .tables import UtcDateTime, batches, recipients, suppressions


@dataclass(slots=True)
class CopyPages:
    """Where a copy of ``source`` has got to: the id of the last row it copied."""

    source: AudienceSource
    size: int  # rows a page, whole batches
    after: int
    done: bool = False

    def __iter__(self) -> Iterator[CopyPages]:
        """Itself, once per page, until a page comes up short."""
        while not self.done:
            yield self

    def copy_next(self, conn: Connection, issue_id: int, batch_size: int,
                  at: datetime) -> FreezeCounts:
        """The next page copied into ``issue_id``'s ledger, in the caller's transaction,
        which holds the write lock already (SQLite)."""
        taken, first, last = _page_bounds(conn, self)
        self.done = taken < self.size
        if not taken:
            return FreezeCounts()
        page = _Page(issue_id, self.source.issue_id, self.after, last, batch_size, at,
                     next_seq(conn, issue_id), first if last - first + 1 == taken else 0)
        self.after = last
        return _copy_rows(conn, page, taken)


@dataclass(frozen=True, slots=True)
class _Page:
    """One page of a copy: the source's rows with ids in (``after``, ``last``]."""

    issue_id: int
    source_issue: int
    after: int
    last: int
    batch_size: int
    at: datetime
    start_seq: int  # of the page's first batch
    #: The id of the page's first row when its rows' ids follow one another, as when the
    #: source was frozen alone: a row's place is then its id less this one's. Else 0.
    first_of_run: int

    def place(self) -> ColumnElement[int]:
        """Each row's place in the page, from 0."""
        if self.first_of_run:
            return recipients.c.id - self.first_of_run
        # Another issue's freeze wrote rows between this one's: numbered, which costs
        # SQLite about half as much again as the copy itself.
        return func.row_number().over(order_by=recipients.c.id) - 1


def _of_issue(issue_id: int) -> ColumnElement[bool]:
    # ``+ 0``: with the issue compared as a column, SQLite reads the whole issue from the
    # unique index on (issue, address), and sorts it, for every page; as an expression, it
    # reads only the range of ids the page asks for.
    return recipients.c.issue_id + 0 == issue_id


def _page_bounds(conn: Connection, pages: CopyPages) -> tuple[int, int, int]:
    """How many rows the next page holds, and the ids of its first and last ones."""
    ids = (
        select(recipients.c.id)
        .where(recipients.c.id > pages.after, recipients.c.id <= pages.source.last_row,
               _of_issue(pages.source.issue_id))
        .order_by(recipients.c.id)
        .limit(pages.size)
        .subquery()
    )
    taken, first, last = conn.execute(
        select(func.count(), func.min(ids.c.id), func.max(ids.c.id))).one()
    return int(taken), int(first or 0), int(last or 0)


def _copy_rows(conn: Connection, page: _Page, taken: int) -> FreezeCounts:
    newest = int(conn.execute(select(func.max(recipients.c.id))).scalar() or 0)
    sizes = full_batches(taken, page.batch_size)
    new_batches(conn, page.issue_id, page.start_seq, sizes, page.at)
    inserted = _insert_page(conn, page, newest)
    queued = _batched(conn, page.issue_id, page.start_seq)
    # Repeats (a freeze taken over) or suppressions left gaps: the batches are what they hold.
    batch_count = (len(sizes) if queued == taken
                   else settle_batches(conn, page.issue_id, page.start_seq))
    return FreezeCounts(taken, taken - inserted, inserted - queued, queued, batch_count)


def _insert_page(conn: Connection, page: _Page, newest: int) -> int:
    """The page's rows as the issue's, each in the batch its place in the page gives, or,
    if its address is suppressed today (for every list or this one), recorded so, in none:
    a look-up of the suppressions per row."""
    source = recipients.c
    page_rows = (
        select(page.place().label("pos"), source.id, source.email, source.email_as_written,
               source.name, source.fields, source.list_id)
        .where(source.id > page.after, source.id <= page.last, _of_issue(page.source_issue))
        .subquery()
    )
    rows_of = page_rows.c
    # An address suppressed both for every list and for this one joins twice: the second
    # row is a repeat, which the unique index drops.
    held = suppressions.c.email.is_not(None)
    rows = (
        select(literal(page.issue_id), case((held, None), else_=batches.c.id), rows_of.email,
               rows_of.email_as_written, rows_of.name, rows_of.fields, rows_of.list_id,
               case((held, str(DeliveryStatus.SUPPRESSED)), else_=str(DeliveryStatus.QUEUED)),
               case((held, literal(page.at, UtcDateTime())), else_=None))
        .select_from(page_rows)
        .join(batches, and_(batches.c.issue_id == page.issue_id,
                            batches.c.seq == page.start_seq + rows_of.pos // page.batch_size))
        .outerjoin(suppressions, and_(suppressions.c.email == rows_of.email,
                                      suppressions.c.scope.in_([ALL_LISTS, rows_of.list_id])))
        .order_by(rows_of.id)  # the page's order: the next copy cuts the same batches
    )
    return insert_rows(conn, page.issue_id, rows, newest, (*ROW_COLUMNS, "updated_at"))


def _batched(conn: Connection, issue_id: int, start_seq: int) -> int:
    """How many rows the page's batches hold (read from the index on a row's batch)."""
    page_batches = select(batches.c.id).where(batches.c.issue_id == issue_id,
                                              batches.c.seq >= start_seq)
    held = select(func.count()).where(recipients.c.batch_id.in_(page_batches))
    return int(conn.execute(held).scalar() or 0)
