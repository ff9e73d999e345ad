"""Applying normalised provider events to the store, on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from newsletter.models import DeliveryStatus, SuppressionReason
from newsletter.store import Store
from newsletter.store.events import apply_event, claim_token, soft_bounce_count
from newsletter.web.webhooks import WebhookEvent
from tests.servers.webapp import add_issue, add_recipient, event_rows, recipient, suppression_rows

AT = datetime(2026, 11, 25, 10, 30, tzinfo=UTC)


def ev(kind: DeliveryStatus, event_id: str, *, email: str = "alice@example.com",
       message_id: str = "batch-1@mg.example.org", detail: str = "") -> WebhookEvent:
    return WebhookEvent("mailgun", event_id, kind, email, message_id, AT, detail)


def apply(store: Store, *events: WebhookEvent, limit: int = 3) -> list[bool]:
    with store.engine.begin() as conn:
        return [apply_event(conn, e, soft_bounce_limit=limit, now=store.now()) for e in events]


def test_a_duplicate_event_is_recorded_and_counted_once(store: Store) -> None:
    bounce = ev(DeliveryStatus.BOUNCED_SOFT, "e1")

    assert apply(store, bounce, bounce) == [True, False]
    assert apply(store, bounce) == [False]
    with store.engine.connect() as conn:
        assert soft_bounce_count(conn, "Alice@Example.com") == 1
    assert len(event_rows(store)) == 1


def test_soft_bounces_in_a_row_suppress_and_a_delivery_resets_the_count(store: Store) -> None:
    apply(store, ev(DeliveryStatus.BOUNCED_SOFT, "s1"), ev(DeliveryStatus.BOUNCED_SOFT, "s2"),
          ev(DeliveryStatus.DELIVERED, "d1"), ev(DeliveryStatus.BOUNCED_SOFT, "s3"))
    assert suppression_rows(store) == []

    apply(store, ev(DeliveryStatus.BOUNCED_SOFT, "s4"),
          ev(DeliveryStatus.BOUNCED_SOFT, "s5", detail="452 mailbox full"))

    [row] = suppression_rows(store)
    assert (row.reason, row.scope) == (SuppressionReason.BOUNCED_SOFT, "*")
    assert row.detail == "3 soft bounces in a row; last: 452 mailbox full"


def test_a_weaker_event_never_overwrites_a_stronger_status(store: Store) -> None:
    rid = add_recipient(store, add_issue(store), "alice@example.com",
                        message_id="batch-1@mg.example.org")

    apply(store, ev(DeliveryStatus.OPENED, "o1"), ev(DeliveryStatus.DELIVERED, "d1"))
    assert recipient(store, rid)["status"] == DeliveryStatus.OPENED
    apply(store, ev(DeliveryStatus.COMPLAINED, "c1"), ev(DeliveryStatus.CLICKED, "k1"))
    assert recipient(store, rid)["status"] == DeliveryStatus.COMPLAINED


def test_message_ids_match_with_or_without_angle_brackets(store: Store) -> None:
    issue_id = add_issue(store)
    bracketed = add_recipient(store, issue_id, "alice@example.com", message_id="<m1@example.org>")
    bare = add_recipient(store, issue_id, "bob@example.com", message_id="m2@example.org")

    apply(store, ev(DeliveryStatus.DELIVERED, "a", message_id="m1@example.org"),
          ev(DeliveryStatus.DELIVERED, "b", email="bob@example.com", message_id="<m2@example.org>"))

    assert recipient(store, bracketed)["status"] == DeliveryStatus.DELIVERED
    assert recipient(store, bare)["status"] == DeliveryStatus.DELIVERED
    assert [e["issue_id"] for e in event_rows(store)] == [issue_id, issue_id]


def test_a_batch_id_without_an_address_matches_nobody(store: Store) -> None:
    issue_id = add_issue(store)
    alice = add_recipient(store, issue_id, "alice@example.com", message_id="batch-1@mg.example.org")
    add_recipient(store, issue_id, "bob@example.com", message_id="batch-1@mg.example.org")

    apply(store, ev(DeliveryStatus.BOUNCED_HARD, "x", email=""))

    assert recipient(store, alice)["status"] == DeliveryStatus.SENT
    assert event_rows(store)[0]["issue_id"] is None
    assert suppression_rows(store) == []  # no address to suppress


def test_an_unsubscribe_is_scoped_to_the_list_it_came_from(store: Store) -> None:
    add_recipient(store, add_issue(store, list_id="daily"), "alice@example.com",
                  message_id="batch-1@mg.example.org", list_id="daily")

    apply(store, ev(DeliveryStatus.UNSUBSCRIBED, "u1"),
          ev(DeliveryStatus.UNSUBSCRIBED, "u2", email="zed@example.com", message_id="unknown"))

    assert {(r.email, r.scope) for r in suppression_rows(store)} == {
        ("alice@example.com", "daily"), ("zed@example.com", "*"),
    }


def test_the_first_suppression_reason_stays(store: Store) -> None:
    apply(store, ev(DeliveryStatus.COMPLAINED, "c1"), ev(DeliveryStatus.BOUNCED_HARD, "b1"))

    assert [r.reason for r in suppression_rows(store)] == [SuppressionReason.COMPLAINED]


def test_tokens_are_claimed_once_and_forgotten_when_old(store: Store) -> None:
    keep = timedelta(minutes=7)
    with store.engine.begin() as conn:
        assert claim_token(conn, "mailgun", "t1", AT, keep) is True
        assert claim_token(conn, "mailgun", "t1", AT + timedelta(minutes=1), keep) is False
        assert claim_token(conn, "other", "t1", AT, keep) is True  # per provider
        # Much later the old token is pruned; its timestamp would be refused by then anyway.
        assert claim_token(conn, "mailgun", "t1", AT + timedelta(hours=1), keep) is True
