"""An issue's recipients as CSV: what ``newsletter issue recipients --csv`` prints, and the
download the desk's recipients page and the API offer, in the same six columns.

A download reads the ledger a page at a time, each in a short transaction of its own (by
ledger id, the order the audience was frozen in), so a million rows hold no connection, nor
a snapshot, while the client takes its time; rows that change meanwhile are read as they
are when their page is.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime

from ..store import Store, tally
from ..store import issues as issue_store
from .csvtext import drained, inert
from .report import check_status

COLUMNS = ("email", "status", "batch", "error", "message_id", "updated_at")
PAGE = 2_000
#: Rows written before the text so far is handed on.
PIECE = 500

Values = tally.RecipientValues


def export_rows(store: Store, issue_id: int, status: str = "") -> Iterator[Values]:
    """Every recipient of the issue (in ``status``, if given), in the order they were frozen.
    ``NotFoundError`` or ``ConfigError`` (naming ``status``) before the first row."""
    check_status(status)
    with store.engine.connect() as conn:
        issue_store.get(conn, issue_id)
    return _pages(store, issue_id, [status] if status else [])


def _pages(store: Store, issue_id: int, statuses: Sequence[str]) -> Iterator[Values]:
    after, page = 0, PAGE
    while True:
        with store.engine.connect() as conn:
            rows = tally.recipient_rows_after(conn, issue_id, statuses, after, page)
        yield from (values for _, values in rows)
        if len(rows) < page:
            return
        after = rows[-1][0]


def csv_values(row: Sequence[object], *, for_spreadsheets: bool = False) -> list[object]:
    """A row's cells: no batch and no time are empty. ``for_spreadsheets`` puts a ``'``
    before an error or a message id that a spreadsheet would run as a formula (a
    provider's words). Addresses are left as they are: a valid one cannot hold a formula's
    brackets or quotes, and a changed address would no longer match anything."""
    email, status, batch, error, message_id, updated = row
    if for_spreadsheets:
        error, message_id = inert(str(error)), inert(str(message_id))
    when = updated.isoformat() if isinstance(updated, datetime) else ""
    return [email, status, "" if batch is None else batch, error, message_id, when]


def csv_chunks(rows: Iterable[Sequence[object]], *, for_spreadsheets: bool = False
               ) -> Iterator[str]:
    """The CSV text of ``rows`` under a header of ``COLUMNS``, a piece at a time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for n, row in enumerate(rows, 1):
        writer.writerow(csv_values(row, for_spreadsheets=for_spreadsheets))
        if n % PIECE == 0:
            yield drained(buffer)
    yield drained(buffer)

