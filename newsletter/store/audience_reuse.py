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

from sqlalchemy import ColumnElement, Connection, case, exists, func, literal, or_, select

from ..models import ALL_LISTS, DeliveryStatus
from .audience_sources import AudienceSource
from .audience_stage import FreezeCounts, full_batches, new_batches, settle_batches
from .db import dialect_insert
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
        taken, last = _page_bounds(conn, self)
        self.done = taken < self.size
        if not taken:
            return FreezeCounts()
        page = _Page(issue_id, self.source.issue_id, self.after, last, batch_size, at,
                     next_seq(conn, issue_id))
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


def _of_issue(issue_id: int) -> ColumnElement[bool]:
    # ``+ 0``: with the issue compared as a column, SQLite reads the whole issue from the
    # unique index on (issue, address), and sorts it, for every page; as an expression, it
    # reads only the range of ids the page asks for.
    return recipients.c.issue_id + 0 == issue_id


def _page_bounds(conn: Connection, pages: CopyPages) -> tuple[int, int]:
    """How many rows the next page holds, and the id of its last one."""
    ids = (
        select(recipients.c.id)
        .where(recipients.c.id > pages.after, recipients.c.id <= pages.source.last_row,
               _of_issue(pages.source.issue_id))
        .order_by(recipients.c.id)
        .limit(pages.size)
        .subquery()
    )
    taken, last = conn.execute(select(func.count(), func.max(ids.c.id))).one()
    return int(taken), int(last or 0)


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
    suppressed_today = exists().where(
        suppressions.c.email == source.email,
        or_(suppressions.c.scope == ALL_LISTS, suppressions.c.scope == source.list_id),
    )
    rows_of = (
        select((func.row_number().over(order_by=source.id) - 1).label("pos"), source.email,
               source.email_as_written, source.name, source.fields, source.list_id,
               suppressed_today.label("suppressed"))
        .where(source.id > page.after, source.id <= page.last, _of_issue(page.source_issue))
        .subquery()
    ).c
    suppressed = rows_of.suppressed == literal(True)
    rows = (
        select(literal(page.issue_id), case((suppressed, None), else_=batches.c.id),
               rows_of.email, rows_of.email_as_written, rows_of.name, rows_of.fields,
               rows_of.list_id,
               case((suppressed, str(DeliveryStatus.SUPPRESSED)),
                    else_=str(DeliveryStatus.QUEUED)),
               case((suppressed, literal(page.at, UtcDateTime())), else_=None))
        .where(batches.c.issue_id == page.issue_id,
               batches.c.seq == page.start_seq + rows_of.pos // page.batch_size)
        .order_by(rows_of.pos)  # ids in the page's order: the next copy cuts the same batches
    )
    columns = ["issue_id", "batch_id", "email", "email_as_written", "name", "fields", "list_id",
               "status", "updated_at"]
    stmt = dialect_insert(conn, recipients).from_select(columns, rows)
    added = conn.execute(stmt.on_conflict_do_nothing(index_elements=["issue_id", "email"]))
    if added.rowcount >= 0:  # SQLite says how many it inserted; psycopg here does not
        return int(added.rowcount)
    new = select(func.count()).where(recipients.c.id > newest, _of_issue(page.issue_id))
    return int(conn.execute(new).scalar() or 0)


def _batched(conn: Connection, issue_id: int, start_seq: int) -> int:
    """How many rows the page's batches hold (read from the index on a row's batch)."""
    page_batches = select(batches.c.id).where(batches.c.issue_id == issue_id,
                                              batches.c.seq >= start_seq)
    held = select(func.count()).where(recipients.c.batch_id.in_(page_batches))
    return int(conn.execute(held).scalar() or 0)
