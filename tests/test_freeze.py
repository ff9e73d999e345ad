"""Freezing an audience in chunks, under a lease: what each chunk commits, who may freeze,
and a freeze that died taken over, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from newsletter.config import Settings
from newsletter.models import IssueKind, IssueState, Recipient, SuppressionReason
from newsletter.publisher import Publisher
from newsletter.store import Store, audience, suppressions, tally
from newsletter.store import issues as issue_store
from newsletter.store.tables import batches, recipients

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _issue(store: Store) -> int:
    with store.engine.begin() as conn:
        issue_id = issue_store.create(conn, list_id="weekly", kind=IssueKind.DIGEST,
                                      subject="S", preheader="", intro_md="", article_ids=[],
                                      at=NOW)
        issue_store.transition(conn, issue_id, IssueState.QUEUED, NOW)
        issue_store.transition(conn, issue_id, IssueState.SENDING, NOW)
    return issue_id


def _members(n: int, offset: int = 0) -> list[Recipient]:
    return [Recipient(f"user{i}@example.org", f"User {i}", {}, "weekly")
            for i in range(offset, offset + n)]


def _lease(owner: str, clock: float = 1000.0, seconds: float = 60.0) -> audience.FreezeLease:
    return audience.FreezeLease(owner, seconds, lambda: clock)


def _dead_owner() -> str:
    """An owner on this host whose process has ended."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return f"{socket.gethostname()}:{pid}:dead"


def _ledger(store: Store, issue_id: int) -> tuple[dict[str, str], list[int]]:
    """Each address's status, and the batch sizes in order."""
    with store.engine.connect() as conn:
        rows = conn.execute(select(recipients.c.email, recipients.c.status)
                            .where(recipients.c.issue_id == issue_id)).all()
        sizes = conn.execute(select(batches.c.size).where(batches.c.issue_id == issue_id)
                             .order_by(batches.c.seq)).scalars().all()
    return dict(rows), list(sizes)


def _record(store: Store, issue_id: int) -> issue_store.IssueRecord:
    with store.engine.connect() as conn:
        return issue_store.get(conn, issue_id)


def test_chunks_freeze_what_one_transaction_would(store: Store) -> None:
    """Repeats are dropped across chunks (the first wins) and suppressions apply to each."""
    issue_id = _issue(store)
    with store.engine.begin() as conn:
        suppressions.add(conn, "user13@example.org", SuppressionReason.MANUAL, at=NOW)
    members = [*_members(25), Recipient("USER2@example.org", "again", {}, "weekly")]
    counts = audience.freeze_audience(store.engine, issue_id, members, batch_size=4,
                                      chunk_size=10, at=NOW)
    assert counts == audience.FreezeCounts(26, 1, 1, 24, 7)
    statuses, sizes = _ledger(store, issue_id)
    assert len(statuses) == 25 and statuses["user13@example.org"] == "suppressed"
    # Chunks of 8 (whole batches) from runs of 8, 16 and 16 members, each run in address
    # order (user10 … user19, user20 … user23, user8, user9): 13 fell from the 3rd batch.
    assert sizes == [4, 4, 3, 4, 4, 4, 1]
    with store.engine.connect() as conn:  # what a progress bar counts down from
        assert tally.open_recipients(conn, issue_id) == 24
    record = _record(store, issue_id)
    assert record.audience_frozen and not record.freeze_owner


def test_a_live_freeze_is_left_to_its_worker(store: Store) -> None:
    issue_id = _issue(store)
    with store.engine.begin() as conn:
        assert audience.take_freeze(conn, _record(store, issue_id), _lease("host:1:other"))
    record = _record(store, issue_id)
    # A worker on another host is presumed alive until its lease runs out.
    assert audience.freeze_going_on(record, now=1030.0)
    assert not audience.freeze_going_on(record, now=1061.0)
    touched = []

    def members() -> Iterator[Recipient]:
        touched.append(True)
        yield from _members(3)

    late = audience.freeze_audience(store.engine, issue_id, members(), batch_size=2, at=NOW,
                                    lease=_lease("me", clock=1030.0))
    assert late is None and not touched  # not a member read
    taken = audience.freeze_audience(store.engine, issue_id, members(), batch_size=2, at=NOW,
                                     lease=_lease("me", clock=1061.0))
    assert taken is not None and taken.queued == 3


def test_a_dead_workers_freeze_is_taken_over_keeping_what_it_committed(store: Store) -> None:
    issue_id = _issue(store)
    dead = _lease(_dead_owner())

    def dies_in_the_third_run() -> Iterator[Recipient]:
        yield from _members(28)  # runs of 8 and 16, then 4 of the next
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        audience.freeze_audience(store.engine, issue_id, dies_in_the_third_run(),
                                 batch_size=4, chunk_size=8, at=NOW, lease=dead)
    statuses, sizes = _ledger(store, issue_id)
    assert (len(statuses), sizes) == (24, [4] * 6)  # three whole chunks: two whole runs
    record = _record(store, issue_id)
    assert not record.audience_frozen and not audience.freeze_going_on(record, now=1000.0)
    counts = audience.freeze_audience(store.engine, issue_id, _members(30), batch_size=4,
                                      chunk_size=8, at=NOW, lease=_lease("me"))
    assert counts is not None and (counts.duplicates, counts.queued) == (24, 6)
    statuses, sizes = _ledger(store, issue_id)
    assert len(statuses) == 30 and sum(sizes) == 30 and max(sizes) == 4
    with store.engine.connect() as conn:
        assert tally.open_work(conn, issue_id) == len(sizes)
        assert issue_store.get(conn, issue_id).audience_frozen


def test_a_freeze_whose_lease_was_taken_stops(store: Store) -> None:
    """A worker stalled past its lease finds the freeze taken over; it writes nothing more."""
    issue_id = _issue(store)
    mine = _lease("host:1:slow", clock=1000.0)

    def members() -> Iterator[Recipient]:
        yield from _members(8)
        with store.engine.begin() as conn:  # meanwhile, another worker takes over
            assert audience.take_freeze(conn, _record(store, issue_id),
                                        _lease("host:2:fast", clock=2000.0))
        yield from _members(8, offset=8)

    with pytest.raises(audience.FreezeLost):
        audience.freeze_audience(store.engine, issue_id, members(), batch_size=4,
                                 chunk_size=8, at=NOW, lease=mine)
    with store.engine.connect() as conn:
        kept = conn.execute(select(func.count()).select_from(recipients)).scalar()
    assert kept == 8  # the first chunk only
    assert _record(store, issue_id).freeze_owner == "host:2:fast"


def test_an_issue_is_not_finished_while_its_audience_is_being_frozen(
    db_settings: Settings, store: Store
) -> None:
    """Between two chunks every committed batch may be sent: that is not the end."""
    issue_id = _issue(store)
    with store.engine.begin() as conn:
        assert audience.take_freeze(conn, _record(store, issue_id), _lease("host:1:freezer"))
    publisher = Publisher(db_settings, store)
    assert publisher.finish(issue_id) == ("sending", {})
    audience.freeze_audience(store.engine, issue_id, [], batch_size=2, at=NOW,
                             lease=_lease("host:1:freezer"))
    assert publisher.finish(issue_id) == ("sent", {})


def test_the_default_chunk_suits_the_database(store: Store) -> None:
    """SQLite's single writer makes senders wait for each chunk: its chunks are smaller."""
    issue_id = _issue(store)
    expected = audience.DEFAULT_CHUNKS[store.engine.dialect.name]
    committed_when_read: list[int] = []

    def members() -> Iterator[Recipient]:
        for index, member in enumerate(_members(expected + 1)):
            if index in (expected - 1, expected):  # the first chunk's last member, and after
                with store.engine.connect() as conn:
                    count = select(func.count()).where(recipients.c.issue_id == issue_id)
                    committed_when_read.append(int(conn.execute(count).scalar_one()))
            yield member

    audience.freeze_audience(store.engine, issue_id, members(), batch_size=1000, at=NOW)
    assert committed_when_read == [0, expected]  # a chunk is committed once it is whole
    assert len(_ledger(store, issue_id)[0]) == expected + 1


def test_foreign_keys_are_enforced_again_after_a_freeze_that_failed(store: Store) -> None:
    """SQLite's freeze inserts without foreign-key checks; the connection it used goes
    back to the pool with them on, even when the member file fails halfway."""
    issue_id = _issue(store)

    def members() -> Iterator[Recipient]:
        yield from _members(12)  # runs of 4 and 8
        raise OSError("the member file went away")

    with pytest.raises(OSError):
        audience.freeze_audience(store.engine, issue_id, members(), batch_size=4,
                                 chunk_size=4, at=NOW)
    orphan = insert(recipients).values(issue_id=issue_id, batch_id=999_999, email="x@example.org",
                                       name="", fields={}, list_id="weekly", status="queued")
    connections = [store.engine.connect() for _ in range(3)]  # the freeze's is among them
    try:
        for conn in connections:
            with pytest.raises(IntegrityError), conn.begin():
                conn.execute(orphan)
    finally:
        for conn in connections:
            conn.close()
    assert _ledger(store, issue_id)[1] == [4, 4, 4]


def test_members_are_frozen_in_runs_sorted_by_address() -> None:
    """Each run is twice the one before, up to the most (in whole first runs), and sorted
    by the address as the ledger keys it; a repeat in another case stays behind its first
    spelling, so the freeze keeps the first, as it does in list order."""
    names = ["d", "B", "c", "a", "b", "e", "H", "g", "f", "C", "i", "k", "j", "h", "l", "m"]
    members = [Recipient(f" {n}@example.org", n, {}, "weekly") for n in names]
    ordered = list(audience.in_address_runs(members, first=2, most=5))
    runs = [n.split("@")[0].strip() for n in (m.email for m in ordered)]
    # Runs of 2, 4, then 6 (5 rounded up to whole runs of 2), then what is left.
    assert runs == ["B", "d", "a", "b", "c", "e", "C", "f", "g", "H", "i", "k", "h", "j",
                    "l", "m"]
    assert [m.name for m in ordered][2:6] == ["a", "b", "c", "e"]  # sorted ignoring case


def test_a_repeat_sorted_beside_its_first_spelling_is_dropped(store: Store) -> None:
    issue_id = _issue(store)
    members = [Recipient("Zed@example.org", "first", {}, "weekly"), *_members(3),
               Recipient("zed@EXAMPLE.org", "second", {}, "weekly")]
    counts = audience.freeze_audience(store.engine, issue_id, members, batch_size=2, at=NOW)
    assert counts == audience.FreezeCounts(5, 1, 0, 4, 2)
    with store.engine.connect() as conn:
        rows = conn.execute(select(recipients.c.email, recipients.c.email_as_written,
                                   recipients.c.name).order_by(recipients.c.id)).all()
    assert [tuple(r) for r in rows] == [
        ("user0@example.org", None, "User 0"), ("user1@example.org", None, "User 1"),
        ("user2@example.org", None, "User 2"), ("zed@example.org", "Zed@example.org", "first"),
    ]
