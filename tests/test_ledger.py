"""The delivery ledger on real databases: freezing, suppressions, batches, claims, leases."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from newsletter.models import (
    BatchState,
    DeliveryStatus,
    IssueKind,
    IssueState,
    Recipient,
    SuppressionReason,
)
from newsletter.store import Store, audience, ledger, suppressions, tally
from newsletter.store import issues as issue_store
from newsletter.store.tables import batches, recipients

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _issue(store: Store) -> int:
    """An issue being sent (only a sending issue's batches can be claimed)."""
    with store.engine.begin() as conn:
        issue_id = issue_store.create(
            conn,
            list_id="weekly",
            kind=IssueKind.DIGEST,
            subject="S",
            preheader="",
            intro_md="",
            article_ids=[],
            at=NOW,
        )
        issue_store.transition(conn, issue_id, IssueState.QUEUED, NOW)
        issue_store.transition(conn, issue_id, IssueState.SENDING, NOW)
        return issue_id


def _freeze(
    store: Store, issue_id: int, members: list[Recipient], **options: Any
) -> audience.FreezeCounts:
    counts = audience.freeze_audience(store.engine, issue_id, members, **options)
    assert counts is not None, "the freeze was not taken"
    return counts


def _members(n: int, list_id: str = "weekly", offset: int = 0) -> list[Recipient]:
    return [
        Recipient(f"user{i}@example.org", f"User {i}", {"city": "Port"}, list_id)
        for i in range(offset, offset + n)
    ]


def test_freeze_dedupes_case_insensitively_and_batches(store: Store) -> None:
    issue_id = _issue(store)
    members = [*_members(25), Recipient("USER3@Example.org", "dup", {}, "weekly")]
    counts = _freeze(store, issue_id, members, batch_size=10, at=NOW)
    assert (counts.members, counts.duplicates, counts.queued, counts.batches) == (26, 1, 25, 3)
    with store.engine.connect() as conn:
        sizes = [r.size for r in conn.execute(select(batches).order_by(batches.c.seq))]
        # In address order (user0, user1, user10 … user19, user2 …), the repeat beside
        # user3, in the second batch, which is one short.
        assert sizes == [10, 9, 6]
        assert tally.status_counts(conn, issue_id) == {"queued": 25}
        assert issue_store.get(conn, issue_id).audience_frozen


def test_suppression_wins_over_the_member_file(store: Store) -> None:
    issue_id = _issue(store)
    with store.engine.begin() as conn:
        suppressions.add(
            conn, "User1@example.org", SuppressionReason.UNSUBSCRIBED, scope="weekly", at=NOW
        )
        suppressions.add(conn, "user2@example.org", SuppressionReason.BOUNCED_HARD, at=NOW)
        suppressions.add(conn, "user3@example.org", SuppressionReason.MANUAL, scope="other", at=NOW)
    counts = _freeze(store, issue_id, _members(5), batch_size=100, at=NOW)
    assert counts.suppressed == 2
    with store.engine.connect() as conn:
        rows = {r.email: r.status for r in conn.execute(select(recipients))}
    assert rows["user1@example.org"] == rows["user2@example.org"] == "suppressed"
    assert rows["user3@example.org"] == "queued"  # suppressed on another list only


def test_claims_take_each_batch_once_in_order(store: Store) -> None:
    issue_id = _issue(store)
    _freeze(store, issue_id, _members(30), batch_size=10, at=NOW)
    claimed = []
    for _ in range(4):
        with store.engine.begin() as conn:
            claimed.append(
                ledger.claim(conn, issue_id, owner="w", now=1000.0, lease_seconds=60, at=NOW)
            )
    assert [c.seq for c in claimed[:3]] == [1, 2, 3]  # type: ignore[union-attr]
    assert claimed[3] is None
    with store.engine.connect() as conn:
        assert tally.batch_counts(conn, issue_id) == {"sending": 3}
        rows = ledger.rows_of(conn, claimed[0].id)  # type: ignore[union-attr]
    in_address_order = sorted(f"user{i}@example.org" for i in range(30))
    assert [r.email for r in rows] == in_address_order[:10]
    assert rows[0].fields == {"city": "Port"}


def test_a_batch_put_back_as_its_issue_is_paused_is_not_claimed(store: Store) -> None:
    """A sender met a refusal of the credentials: in one transaction its batch went back to
    pending and the issue was paused. Another sender that had read the issue as sending just
    before must not take that batch: the claim itself requires a sending issue (on SQLite
    the state read before it is not of the claim's snapshot)."""
    issue_id = _issue(store)
    _freeze(store, issue_id, _members(3), batch_size=10, at=NOW)
    with store.engine.begin() as conn:
        refused = ledger.claim(conn, issue_id, owner="a", now=1000.0, lease_seconds=60, at=NOW)
        assert refused is not None
    with store.engine.begin() as conn:
        ledger.retry_later(conn, refused.id, not_before=0.0, at=NOW, error="401")
        assert issue_store.pause_sending(conn, issue_id, NOW, "credentials refused")
    with store.engine.begin() as conn:
        assert ledger.claim(conn, issue_id, owner="b", now=1000.0, lease_seconds=60, at=NOW) is None
        assert tally.batch_counts(conn, issue_id) == {"pending": 1}


def test_retry_later_waits_and_expired_leases_are_stale(store: Store) -> None:
    issue_id = _issue(store)
    _freeze(store, issue_id, _members(4), batch_size=2, at=NOW)
    with store.engine.begin() as conn:
        first = ledger.claim(conn, issue_id, owner="host:1:x", now=1000.0, lease_seconds=60, at=NOW)
        second = ledger.claim(
            conn, issue_id, owner="host:1:x", now=1000.0, lease_seconds=60, at=NOW
        )
        assert first and second
        ledger.retry_later(conn, first.id, not_before=1500.0, at=NOW, error="429")
        assert ledger.claim(conn, issue_id, owner="w", now=1100.0, lease_seconds=60, at=NOW) is None
        again = ledger.claim(conn, issue_id, owner="w", now=1500.0, lease_seconds=60, at=NOW)
        assert again is not None and again.id == first.id and again.attempts == 2
        assert again.idempotency_key == first.idempotency_key
        assert ledger.stale_batches(conn, issue_id, now=1030.0) == []
        stale = ledger.stale_batches(conn, issue_id, now=1061.0)
    assert [b.id for b in stale] == [second.id]


def test_mark_rows_and_rebatch(store: Store) -> None:
    issue_id = _issue(store)
    _freeze(store, issue_id, _members(3), batch_size=3, at=NOW)
    with store.engine.begin() as conn:
        batch = ledger.claim(conn, issue_id, owner="w", now=1.0, lease_seconds=60, at=NOW)
        assert batch
        rows = ledger.rows_of(conn, batch.id)
        ledger.mark_each(
            conn,
            [{"rid": rows[0].id, "status": "failed", "message_id": "", "error": "inactive"}],
            NOW,
        )
        ledger.mark_rows(conn, batch.id, DeliveryStatus.SENT, at=NOW, message_id="<m1>")
        ledger.finish_batch(conn, batch.id, BatchState.SENT, at=NOW)
        assert tally.status_counts(conn, issue_id) == {"failed": 1, "sent": 2}
        failed = list(ledger.failed_recipient_ids(conn, issue_id, [DeliveryStatus.FAILED]))
        ledger.rebatch(conn, issue_id, failed, at=NOW)
        assert tally.status_counts(conn, issue_id) == {"queued": 1, "sent": 2}
        assert tally.open_work(conn, issue_id) == 1
        assert tally.problems(conn, issue_id) == []


def test_a_batch_of_only_suppressed_or_repeated_members_is_not_kept(store: Store) -> None:
    issue_id = _issue(store)
    members = [
        *_members(4),
        Recipient("USER0@example.org", "again", {}, "weekly"),
        Recipient("user1@EXAMPLE.org", "again", {}, "weekly"),
        *_members(2, offset=4),
    ]
    with store.engine.begin() as conn:
        suppressions.add(conn, "user2@example.org", SuppressionReason.MANUAL, at=NOW)
        suppressions.add(conn, "user3@example.org", SuppressionReason.MANUAL, at=NOW)
    # Runs of 2, 4 and 8 members, each in address order: the repeats make up one batch of
    # the second run and the suppressed members the other.
    counts = _freeze(store, issue_id, members, batch_size=2, chunk_size=2, at=NOW)
    assert (counts.members, counts.duplicates, counts.suppressed, counts.queued) == (8, 2, 2, 4)
    assert counts.batches == 2
    with store.engine.connect() as conn:
        kept = conn.execute(select(batches.c.id, batches.c.size).order_by(batches.c.seq)).all()
        assert [size for _, size in kept] == [2, 2]
        held = conn.execute(
            select(recipients.c.email, recipients.c.batch_id).order_by(recipients.c.id)
        ).all()
    by_batch = {batch: sorted(e for e, b in held if b == batch) for batch, _ in kept}
    assert list(by_batch.values()) == [
        ["user0@example.org", "user1@example.org"],
        ["user4@example.org", "user5@example.org"],
    ]
    assert {e for e, b in held if b is None} == {"user2@example.org", "user3@example.org"}


def test_names_and_fields_survive_the_bulk_copy_byte_for_byte(store: Store) -> None:
    """COPY's text format has its own escapes (tab, newline, backslash): none may leak."""
    issue_id = _issue(store)
    odd = Recipient(
        "ann@example.org",
        'Tab\there\nnew line \\ backslash "quoted" Ørsted',
        {"note": "x\ty\\n\nz", "town": "Ærøskøbing", "empty": ""},
        "weekly",
    )
    counts = _freeze(store, issue_id, [odd], batch_size=10, at=NOW)
    with store.engine.begin() as conn:
        batch_id = conn.execute(select(recipients.c.batch_id)).scalar_one()
        [row] = ledger.rows_of(conn, batch_id)
    assert (counts.queued, row.name, row.fields) == (1, odd.name, odd.fields)


def test_rows_without_fields_when_no_template_uses_them(store: Store) -> None:
    issue_id = _issue(store)
    _freeze(store, issue_id, _members(2), batch_size=10, at=NOW)
    with store.engine.begin() as conn:
        batch_id = conn.execute(select(recipients.c.batch_id).limit(1)).scalar_one()
        full = ledger.rows_of(conn, batch_id)
        bare = ledger.rows_of(conn, batch_id, with_fields=False)
    assert [r.fields for r in full] == [{"city": "Port"}] * 2
    assert [r.fields for r in bare] == [{}, {}]
    assert [r[:3] + r[4:] for r in bare] == [r[:3] + r[4:] for r in full]


def test_an_empty_audience_freezes_to_no_batches(store: Store) -> None:
    issue_id = _issue(store)
    counts = _freeze(store, issue_id, [], batch_size=10, at=NOW)
    with store.engine.begin() as conn:
        assert tally.batch_counts(conn, issue_id) == {}
    assert (counts.members, counts.queued, counts.batches) == (0, 0, 0)


def _counted_row_by_row(conn: Any, issue_id: int) -> dict[str, int]:
    state_of = {b.id: b.state for b in conn.execute(select(batches.c.id, batches.c.state))}
    rows = conn.execute(
        select(recipients.c.status, recipients.c.batch_id).where(recipients.c.issue_id == issue_id)
    )
    found: dict[str, int] = {}
    for status, batch_id in rows:
        sent_whole = status == "queued" and state_of.get(batch_id) == "sent"
        key = "sent" if sent_whole else status
        found[key] = found.get(key, 0) + 1
    return found


def test_counts_from_indexes_match_the_rows_in_every_state(store: Store) -> None:
    issue_id, other, empty = _issue(store), _issue(store), _issue(store)
    with store.engine.begin() as conn:
        suppressions.add(conn, "user2@example.org", SuppressionReason.BOUNCED_HARD, at=NOW)
    _freeze(store, issue_id, _members(12), batch_size=3, at=NOW)
    _freeze(store, other, _members(5), batch_size=3, at=NOW)  # never counted with the first
    with store.engine.begin() as conn:
        claim = ledger.claim
        sent_whole = claim(conn, issue_id, owner="w", now=1.0, lease_seconds=60, at=NOW)
        one_failed = claim(conn, issue_id, owner="w", now=1.0, lease_seconds=60, at=NOW)
        in_flight = claim(conn, issue_id, owner="w", now=1.0, lease_seconds=60, at=NOW)
        assert sent_whole and one_failed and in_flight
        ledger.finish_batch(conn, sent_whole.id, BatchState.SENT, at=NOW)
        failed_row = ledger.rows_of(conn, one_failed.id)[0]
        update = {"rid": failed_row.id, "status": "failed", "message_id": "", "error": "no"}
        ledger.mark_each(conn, [update], NOW)
        ledger.finish_batch(conn, one_failed.id, BatchState.SENT, at=NOW)
        counts = tally.status_counts(conn, issue_id)
        assert counts == _counted_row_by_row(conn, issue_id)
        # In address order user2 is in the second batch (user11, user2, user3), and is
        # suppressed: that batch holds two rows, one of them failed
        assert counts == {"sent": 4, "failed": 1, "queued": 6, "suppressed": 1}
        assert tally.status_counts(conn, other) == {"queued": 4, "suppressed": 1}
        # Counted together (the issues list's page): the same, and no entry for no ledger.
        assert tally.status_counts_of(conn, [other, empty, issue_id]) == {
            issue_id: counts, other: {"queued": 4, "suppressed": 1}}
