"""A forgotten reader's row in the store: a suppression keyed by a hash, which every check
honours, and which late webhook events respect. On SQLite and on PostgreSQL."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from sqlalchemy import select

from newsletter.models import DeliveryStatus, IssueState, Recipient, SuppressionReason
from newsletter.store import Store, reader_rows, suppressions
from newsletter.store.events import apply_event, soft_bounce_count
from newsletter.store.tables import events, issues, soft_bounces
from newsletter.store.tables import suppressions as suppression_table
from newsletter.web.webhooks import WebhookEvent
from tests.servers.webapp import add_issue, add_recipient, event_rows, recipient

AT = datetime(2026, 11, 25, 10, 30, tzinfo=UTC)
ANN = "ann@example.org"


def forget(store: Store, email: str = ANN) -> None:
    with store.engine.begin() as conn:
        assert suppressions.add_forgotten(conn, email, at=AT)


def stored_keys(store: Store) -> list[str]:
    with store.engine.connect() as conn:
        return list(conn.execute(select(suppression_table.c.email)).scalars())


def test_the_row_holds_a_hash_and_every_check_honours_it(store: Store) -> None:
    forget(store, "Ann@Example.ORG")
    [key] = stored_keys(store)
    assert key.startswith("forgotten:") and len(key) == len("forgotten:") + 64
    assert "ann" not in key
    assert key != "forgotten:" + hashlib.sha256(ANN.encode()).hexdigest()
    with store.engine.begin() as conn:
        assert suppressions.is_forgotten(conn, "ANN@example.org")
        assert suppressions.is_suppressed(conn, ANN, "weekly")
        assert suppressions.suppressed_among(conn, [ANN, "bo@example.org"], "weekly") == {ANN}
        # Nothing more is stored about the address: it is suppressed everywhere already.
        assert not suppressions.add(conn, ANN, SuppressionReason.UNSUBSCRIBED, at=AT)
        assert not suppressions.add_forgotten(conn, ANN, at=AT)
    assert stored_keys(store) == [key]


def test_lifting_the_suppressions_of_the_address_lifts_the_forgotten_row(store: Store) -> None:
    forget(store)
    with store.engine.begin() as conn:
        assert suppressions.remove(conn, "ANN@example.org", scope="weekly") == 0
        assert suppressions.remove(conn, "ANN@example.org") == 1
        assert not suppressions.is_suppressed(conn, ANN, "weekly")
        assert suppressions.add(conn, ANN, SuppressionReason.MANUAL, at=AT)


def test_the_screen_drops_forgotten_members_in_any_case(store: Store) -> None:
    forget(store)
    with store.engine.connect() as conn:
        screen = suppressions.ForgottenScreen(suppressions.forgotten_digests(conn))
    members = [Recipient("Ann@Example.org"), Recipient("bo@example.org"), Recipient(ANN)]
    assert [m.email for m in screen.members(members)] == ["bo@example.org"]
    assert screen.left_out == 2


def ses_event(kind: DeliveryStatus, event_id: str, email: str = ANN) -> WebhookEvent:
    return WebhookEvent("ses", event_id, kind, email, "msg-1@ses", AT, f"550 {email} gone")


def test_a_late_event_is_kept_without_the_address_and_suppresses_nothing(store: Store) -> None:
    forget(store)
    late = ses_event(DeliveryStatus.BOUNCED_SOFT, f"sns-1:{ANN}")
    with store.engine.begin() as conn:
        assert apply_event(conn, late, soft_bounce_limit=1, now=AT)
        assert not apply_event(conn, late, soft_bounce_limit=1, now=AT)  # redelivered: once
        assert soft_bounce_count(conn, ANN) == 0
        assert conn.execute(select(soft_bounces)).all() == []
    [row] = event_rows(store)
    assert (row["type"], row["email"], row["provider_message_id"], row["detail"]) == (
        "bounced-soft", "", "", "")
    assert row["event_id"] == f"sns-1:{suppressions.forgotten_key(ANN)}"
    assert len(stored_keys(store)) == 1


def test_erase_makes_ledger_rows_and_events_anonymous_and_keeps_the_counts(store: Store) -> None:
    sent = add_issue(store, state=IssueState.SENT)
    failed = add_issue(store, state=IssueState.PARTIALLY_FAILED)
    kept = add_recipient(store, sent, ANN, message_id="<m1@x>")
    other = add_recipient(store, sent, "bo@example.org", message_id="<m2@x>")
    retried = add_recipient(store, failed, ANN, status=DeliveryStatus.FAILED)
    with store.engine.begin() as conn:
        suppressions.add(conn, ANN, SuppressionReason.UNSUBSCRIBED, scope="weekly", at=AT)
        apply_event(conn, ses_event(DeliveryStatus.OPENED, "e1"), soft_bounce_limit=3, now=AT)
        apply_event(conn, WebhookEvent("ses", "e2", DeliveryStatus.CLICKED, "", "m1@x", AT),
                    soft_bounce_limit=3, now=AT)
        apply_event(conn, ses_event(DeliveryStatus.BOUNCED_SOFT, f"e3:{ANN}"),
                    soft_bounce_limit=3, now=AT)
        found = reader_rows.event_rows(conn, ANN, ["<m1@x>"])
        assert [e.event_id for e in found] == ["e1", "e2", f"e3:{ANN}"]
        erased = reader_rows.erase(conn, ANN)
    assert erased == reader_rows.Erased(2, (sent, failed), 1, 3, 1, 1)
    row = recipient(store, kept)
    assert (row["email"], row["name"], row["provider_message_id"], row["status"]) == (
        f"forgotten-reader-{kept}", "", "", "clicked")
    assert recipient(store, retried)["status"] == "suppressed"
    assert recipient(store, other)["email"] == "bo@example.org"
    with store.engine.connect() as conn:
        rows = conn.execute(select(events.c.type, events.c.email, events.c.detail)).all()
        assert reader_rows.ledger_rows(conn, ANN) == []
        assert reader_rows.suppression_rows(conn, ANN) == []
    assert sorted(rows) == [("bounced-soft", "", ""), ("clicked", "", ""), ("opened", "", "")]


def test_the_sends_that_may_mail_the_address_are_found(store: Store) -> None:
    sending = add_issue(store, state=IssueState.SENDING, list_id="weekly")
    add_recipient(store, sending, ANN)
    paused_other_list = add_issue(store, state=IssueState.PAUSED, list_id="every-article")
    add_issue(store, state=IssueState.SENT)
    add_issue(store, state=IssueState.QUEUED)  # not frozen: it will read the files as changed
    with store.engine.begin() as conn:
        conn.execute(issues.update().where(issues.c.id == sending).values(audience_frozen=1))
        found = reader_rows.issues_in_flight(conn, ANN, [])
        assert [(i.issue_id, str(i)) for i in found] == [(sending, f"issue {sending} (weekly) "
                                                                  "is sending")]
        by_list = reader_rows.issues_in_flight(conn, ANN, ["every-article"])
        assert [i.issue_id for i in by_list] == [sending, paused_other_list]
    freezing = add_issue(store, state=IssueState.SENDING, list_id="other")
    with store.engine.connect() as conn:
        found = reader_rows.issues_in_flight(conn, "x@example.org", [])
    assert [(i.issue_id, str(i)) for i in found] == [
        (freezing, f"issue {freezing} (other) is reading its list to start sending")]
