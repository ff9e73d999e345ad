"""On PostgreSQL, recording a batch that re-batches some recipients and freezing the next
chunk of the same audience take their row locks in one order, so they never deadlock.

Both lock the issue's row: the freeze to renew its lease and number its batches, the
re-batch to number the new batch. The freeze then inserts its chunk; an address already in
the ledger (a repeat across lists) waits for any transaction that is writing that row. If
the recording transaction wrote the row first and only then asked for the issue's row,
each would wait for the other, and PostgreSQL would abort one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from sqlalchemy import Connection, text, update
from sqlalchemy.exc import OperationalError

from newsletter.config import Settings
from newsletter.delivery.base import BatchResult, OutgoingBatch, RecipientResult
from newsletter.models import BatchState, DeliveryStatus, Recipient
from newsletter.store import Store, audience, ledger
from newsletter.store.tables import issues
from tests.test_engine import NOW, ScriptedProvider, counts, engine, prepared, start_sending


def throttle_second(batch: OutgoingBatch) -> BatchResult:
    first, second = batch.recipients
    return BatchResult([
        RecipientResult(first.email, DeliveryStatus.SENT, "<1>"),
        RecipientResult(second.email, DeliveryStatus.FAILED, error="throttled", retryable=True),
    ])


def waiting_on_locks(conn: Connection) -> int:
    found = conn.execute(text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE wait_event_type = 'Lock' AND datname = current_database()"
    )).scalar_one()
    conn.rollback()  # the view is read once per transaction
    return int(found)


def wait_for_lock_waits(conn: Connection, count: int) -> None:
    deadline = time.monotonic() + 20
    while waiting_on_locks(conn) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert waiting_on_locks(conn) == count


def in_thread(work: Callable[[], object], errors: list[BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            work()
        except BaseException as exc:  # reported by the test's assertion
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


# SQLite has one writer at a time: its transactions cannot deadlock.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_rebatch_and_a_freeze_chunk_do_not_deadlock(settings: Settings, store: Store) -> None:
    sending = start_sending(store)
    with store.engine.begin() as conn:  # the audience is being frozen: one chunk to go
        conn.execute(update(issues).where(issues.c.id == sending)
                     .values(audience_frozen=0, freeze_owner=""))
    repeat_and_new = [Recipient(f"u{i}@example.org", f"U{i}", {}, "weekly") for i in (0, 5)]
    errors: list[BaseException] = []
    with store.engine.connect() as watcher, store.engine.connect() as gate:
        # A share lock on the issue's row that holds the freeze right after it renewed its
        # lease, until the recording transaction has reached its own wait.
        gate.execute(text("SELECT id FROM issues WHERE id = :id FOR SHARE"), {"id": sending})
        freeze = in_thread(lambda: audience.freeze_audience(
            store.engine, sending, repeat_and_new, batch_size=2, at=NOW), errors)
        wait_for_lock_waits(watcher, 1)  # the freeze first: it holds the issue's row
        provider = ScriptedProvider(settings, [throttle_second])
        send = in_thread(lambda: engine(settings, store, provider).run(prepared(sending)), errors)
        wait_for_lock_waits(watcher, 2)
        gate.rollback()
    freeze.join(30)
    send.join(30)
    assert not freeze.is_alive() and not send.is_alive()
    assert errors == []
    assert counts(store, sending) == {"sent": 6}
    retried = [b for b in provider.calls if [r.email for r in b.recipients] == ["u1@example.org"]]
    assert len(retried) == 1


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_batch_outcome_does_not_wait_for_a_freeze_chunk_holding_the_issue(store: Store) -> None:
    """A freeze chunk holds the issue's row for its whole transaction, seconds at a million
    members. A sender writing a batch's outcome meanwhile updates the batch's row a second
    time in its transaction, so PostgreSQL checks the row's foreign key to the issue with a
    key-share lock, which waited for a ``FOR UPDATE``: one worker's senders stood still for
    most of each chunk. The lock timeout only turns such a wait into an error."""
    sending = start_sending(store)
    with store.engine.begin() as conn:
        claimed = ledger.claim(conn, sending, owner="w", now=0.0, lease_seconds=60, at=NOW)
    assert claimed is not None
    with store.engine.connect() as freezing:
        ledger.lock_issue(freezing, sending)  # as a chunk does before it writes its rows
        with store.engine.begin() as conn:
            conn.execute(text("SET LOCAL lock_timeout = '10s'"))
            assert ledger.hold(conn, claimed.id, "w", at=NOW)
            ledger.finish_batch(conn, claimed.id, BatchState.SENT, at=NOW)
        freezing.rollback()
    assert counts(store, sending) == {"queued": 3, "sent": 2}


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_transactions_adding_batches_still_take_the_issue_in_turn(store: Store) -> None:
    sending = start_sending(store)
    with store.engine.connect() as first, store.engine.connect() as second:
        ledger.lock_issue(first, sending)
        second.execute(text("SET lock_timeout = '50ms'"))
        with pytest.raises(OperationalError, match="lock timeout"):
            ledger.next_seq(second, sending)
        first.rollback()
        second.rollback()
        assert ledger.next_seq(second, sending) == 4
