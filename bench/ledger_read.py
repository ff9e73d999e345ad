"""Reading a batch's rows back from SQLite, alone and beside a busy thread; print figures.

    python bench/ledger_read.py [--recipients 200000]

The sender reads each batch while its other thread builds or sends the previous one. The
``sqlite3`` module releases the interpreter lock for every row it steps, and each release
then waits for a busy thread to give the lock back; ``ledger.open_rows`` therefore reads a
batch as one aggregated JSON value. This prints both ways, per row, in both conditions.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from newsletter.models import IssueKind, IssueState, Recipient
from newsletter.store import Store, audience, ledger
from newsletter.store import issues as issue_store
from newsletter.store.tables import batches

NOW = datetime(2026, 11, 26, tzinfo=UTC)
ROW_BY_ROW = "SELECT id, email, name, list_id FROM recipients WHERE batch_id = ? ORDER BY id"


def frozen_ledger(url: str, count: int) -> list[int]:
    """An issue with ``count`` recipients in batches of 1,000; returns the batch ids."""
    store = Store.open(url)
    members = (Recipient(f"reader{i}@example.org", f"Reader {i}", {}, "w") for i in range(count))
    with store.engine.begin() as conn:
        issue_id = issue_store.create(conn, list_id="w", kind=IssueKind.DIGEST, subject="S",
                                      preheader="", intro_md="", article_ids=[], at=NOW)
        issue_store.transition(conn, issue_id, IssueState.QUEUED, NOW)
        issue_store.transition(conn, issue_id, IssueState.SENDING, NOW)
    audience.freeze_audience(store.engine, issue_id, members, batch_size=1000, at=NOW)
    with store.engine.connect() as conn:
        found = conn.execute(select(batches.c.id).order_by(batches.c.seq)).scalars().all()
    store.close()
    return list(found)


@contextmanager
def busy_thread() -> Iterator[None]:
    """Another thread running pure Python, as a sender thread building a request does."""
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            sum(range(1000))

    thread = threading.Thread(target=spin)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def per_row(read: Callable[[int], object], batch_ids: list[int]) -> float:
    started = time.perf_counter()
    for batch_id in batch_ids:
        read(batch_id)
    return (time.perf_counter() - started) / (len(batch_ids) * 1000) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=200_000)
    parser.add_argument("--batches", type=int, default=20, help="batches read per figure")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/ledger.db"
        batch_ids = frozen_ledger(url, args.recipients)[: args.batches]
        store = Store.open(url)
        raw = store.engine.raw_connection()
        cursor = raw.cursor()

        def one_step(batch_id: int) -> object:
            with store.engine.connect() as conn:
                return ledger.open_rows(conn, batch_id, with_fields=False)

        def row_by_row(batch_id: int) -> object:
            return cursor.execute(ROW_BY_ROW, (batch_id,)).fetchall()

        print(f"{len(batch_ids)} batches of 1,000 rows from a {args.recipients:,}-row ledger")
        print("                       alone      beside a busy thread   (µs per row)")
        for label, read in (("one step (open_rows)", one_step), ("row by row (raw)", row_by_row)):
            alone = per_row(read, batch_ids)
            with busy_thread():
                contended = per_row(read, batch_ids)
            print(f"{label:<20} {alone:>8.2f}   {contended:>12.2f}")
        raw.close()
        store.close()


if __name__ == "__main__":
    main()
