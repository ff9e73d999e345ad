"""The sender of readers' one-off messages (``readers.outbox``) on a real store and real
providers: the outbox folder, and the fake HTTP provider with injected failures."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from newsletter.config import Settings
from newsletter.devtools.fakeprovider import FakeProviderServer, Fault, FaultKind
from newsletter.lists.config import load_config
from newsletter.models import ALL_LISTS, SuppressionReason
from newsletter.readers.outbox import OutboxSender
from newsletter.readers.signup import Signups
from newsletter.store import Store, suppressions
from newsletter.store import outbox as outbox_store
from tests.signup_support import (
    Clock,
    form,
    link_in,
    outbox_rows,
    sent_messages,
    take_signups,
    text_of,
)


@pytest.fixture
def clock(store: Store) -> Clock:
    moved = Clock()
    store.clock = moved
    return moved


def queue_confirmations(settings: Settings, store: Store, clock: Clock, count: int) -> Signups:
    configured = take_signups(settings)
    signups = Signups(configured, store, load_config(configured))
    for n in range(count):
        signups.request(form(signups, f"reader{n}@example.org", name=f"Reader {n}",
                             clock=clock), f"192.0.2.{n}")
    return signups


def test_a_confirmation_goes_out_through_the_outbox_provider_as_an_rfc_5322_message(
    settings: Settings, store: Store, clock: Clock
) -> None:
    queue_confirmations(settings, store, clock, 1)
    sender = OutboxSender(take_signups(settings), store)
    assert sender.send_due() == 1
    [row] = outbox_rows(store)
    assert row["status"] == "sent" and row["provider_message_id"].startswith("<")
    assert row["sent_at"] == clock.at and row["attempts"] == 1
    [message] = sent_messages(settings)
    assert message["Message-ID"] == row["provider_message_id"]
    assert message["To"] == "reader0@example.org"
    assert message["From"] == "The Kellmouth Tide <editor@news.example.org>"
    assert message["Subject"].startswith("Please confirm your subscription to")
    assert message["List-Unsubscribe"].startswith("<https://news.example.org/unsubscribe/")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message.get_body(("html",)) is not None
    assert link_in(text_of(message)).startswith("https://news.example.org/subscribe/weekly/")
    assert sender.send_due() == 0  # sent once


def test_a_transient_failure_is_retried_after_a_backoff_and_then_sent(
    settings: Settings, store: Store, clock: Clock, server: FakeProviderServer
) -> None:
    configured = take_signups(settings).with_changes(provider="postmark",
                                                     **server.settings_values())
    queue_confirmations(configured, store, clock, 1)
    server.faults.push("postmark", Fault(FaultKind.SERVER_ERROR, nth=1))
    sender = OutboxSender(configured, store)
    assert sender.send_due() == 1
    [row] = outbox_rows(store)
    assert row["status"] == "pending" and row["due_at"] > clock.at and "500" in row["error"]
    assert sender.send_due() == 0  # not before its time
    clock.advance(minutes=1)
    assert sender.send_due() == 1
    [row] = outbox_rows(store)
    assert (row["status"], row["attempts"]) == ("sent", 2)
    assert server.recorder.count("postmark", "reader0@example.org") == 1
    sender.stop()


def test_with_postmark_a_confirmation_goes_through_the_transactional_stream(
    settings: Settings, store: Store, clock: Clock, server: FakeProviderServer
) -> None:
    # Postmark keeps the broadcast stream's unsubscribers from that stream: a reader who left
    # and signs up again must still get the confirmation, so it is not sent as bulk mail.
    configured = take_signups(settings).with_changes(provider="postmark",
                                                     **server.settings_values())
    assert configured.postmark_message_stream == "broadcast"
    queue_confirmations(configured, store, clock, 1)
    sender = OutboxSender(configured, store)
    assert sender.send_due() == 1
    [copy] = server.recorder.copies("postmark")
    assert (copy.recipient, copy.channel) == ("reader0@example.org", "outbound")
    sender.stop()


def test_a_refused_message_is_recorded_failed_and_not_retried(
    settings: Settings, store: Store, clock: Clock, server: FakeProviderServer
) -> None:
    configured = take_signups(settings).with_changes(provider="postmark",
                                                     **server.settings_values())
    queue_confirmations(configured, store, clock, 1)
    server.faults.push("postmark", Fault(FaultKind.RECIPIENT, recipient="reader0@example.org"))
    sender = OutboxSender(configured, store)
    sender.send_due()
    clock.advance(hours=1)
    assert sender.send_due() == 0
    [row] = outbox_rows(store)
    assert row["status"] == "failed" and row["error"]
    sender.stop()


def test_a_message_claimed_by_a_sender_that_died_is_sent_once_its_lease_ends(
    settings: Settings, store: Store, clock: Clock
) -> None:
    queue_confirmations(settings, store, clock, 1)
    with store.engine.begin() as conn:  # what a killed sender leaves: claimed, never recorded
        [_claimed] = outbox_store.claim(conn, now=clock.at, lease_until=clock.at
                                       + timedelta(seconds=settings.lease_seconds), limit=5)
    sender = OutboxSender(take_signups(settings), store)
    assert sender.send_due() == 0
    clock.advance(seconds=settings.lease_seconds)
    assert sender.send_due() == 1
    assert outbox_rows(store)[0]["status"] == "sent"
    assert outbox_rows(store)[0]["attempts"] == 2


def test_senders_in_several_threads_send_each_message_once(
    settings: Settings, store: Store, clock: Clock
) -> None:
    queue_confirmations(settings, store, clock, 60)
    senders = [OutboxSender(take_signups(settings), store) for _ in range(4)]
    counts: list[int] = []
    threads = [threading.Thread(target=lambda s=s: counts.append(s.send_due())) for s in senders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sum(counts) == 60
    assert {row["status"] for row in outbox_rows(store)} == {"sent"}
    assert {row["attempts"] for row in outbox_rows(store)} == {1}
    assert len(sent_messages(settings)) == 60


def test_the_thread_sends_what_it_is_woken_for(
    settings: Settings, store: Store, clock: Clock
) -> None:
    sender = OutboxSender(take_signups(settings), store)
    sender.start()
    try:
        configured = take_signups(settings)
        signups = Signups(configured, store, load_config(configured), wake=sender.wake)
        signups.request(form(signups, "woken@example.org", clock=clock), "192.0.2.1")
        done = threading.Event()
        for _ in range(600):  # up to a minute; the poll alone would take five seconds
            if outbox_rows(store)[0]["status"] == "sent":
                done.set()
                break
            done.wait(0.1)
        assert done.is_set()
    finally:
        sender.stop()


def suppress(store: Store, email: str, reason: SuppressionReason, scope: str) -> None:
    with store.engine.begin() as conn:
        suppressions.add(conn, email, reason, scope=scope, source="test", at=store.now())


def queue(store: Store, kind: str, email: str) -> None:
    with store.engine.begin() as conn:
        outbox_store.queue(conn, kind=kind, list_id="weekly", to_email=email,
                           subject="Welcome", html="<p>Welcome</p>", text="Welcome",
                           at=store.now())


@pytest.mark.parametrize(
    ("reason", "scope", "says"),
    [
        (SuppressionReason.BOUNCED_HARD, "weekly", "bounced-hard (list weekly)"),
        (SuppressionReason.COMPLAINED, ALL_LISTS, "complained (every list)"),
        (SuppressionReason.MANUAL, "weekly", "manual (list weekly)"),
        (None, ALL_LISTS, "forgotten"),
    ],
)
def test_a_confirmation_is_not_sent_to_an_address_suppressed_after_it_was_queued(
    settings: Settings, store: Store, clock: Clock,
    reason: SuppressionReason | None, scope: str, says: str,
) -> None:
    queue_confirmations(settings, store, clock, 1)
    if reason is None:
        with store.engine.begin() as conn:
            suppressions.add_forgotten(conn, "reader0@example.org", at=clock.at)
    else:
        suppress(store, "reader0@example.org", reason, scope)

    assert OutboxSender(take_signups(settings), store).send_due() == 1

    [row] = outbox_rows(store)
    assert row["status"] == "failed" and row["sent_at"] is None
    assert row["error"] == f"not sent: the address is suppressed: {says}"
    assert "reader0" not in row["error"]
    assert sent_messages(settings) == []


@pytest.mark.parametrize("scope", ["weekly", ALL_LISTS])
def test_a_confirmation_still_goes_to_a_reader_who_only_chose_to_leave(
    settings: Settings, store: Store, clock: Clock, scope: str
) -> None:
    queue_confirmations(settings, store, clock, 1)
    suppress(store, "reader0@example.org", SuppressionReason.UNSUBSCRIBED, scope)

    OutboxSender(take_signups(settings), store).send_due()

    assert outbox_rows(store)[0]["status"] == "sent"
    assert len(sent_messages(settings)) == 1


@pytest.mark.parametrize("kind", ["welcome", "notice"])
def test_a_welcome_or_a_reminder_goes_to_no_one_who_left_since(
    settings: Settings, store: Store, clock: Clock, kind: str
) -> None:
    take_signups(settings)
    queue(store, kind, "left@example.org")
    queue(store, kind, "stayed@example.org")
    suppress(store, "left@example.org", SuppressionReason.UNSUBSCRIBED, "weekly")
    suppress(store, "stayed@example.org", SuppressionReason.UNSUBSCRIBED, "every-article")

    OutboxSender(take_signups(settings), store).send_due()

    statuses = {row["to_email"]: (row["status"], row["error"]) for row in outbox_rows(store)}
    assert statuses == {
        "left@example.org": ("failed",
                             "not sent: the address is suppressed: unsubscribed (list weekly)"),
        "stayed@example.org": ("sent", ""),
    }
    assert [m["To"] for m in sent_messages(settings)] == ["stayed@example.org"]


def break_publication_file(settings: Settings) -> None:
    """What an admin's half-finished edit leaves: a table opened and never closed."""
    path = settings.subscribers_dir / "publication.toml"
    path.write_text(path.read_text(encoding="utf-8") + "\n[lists.new\n", encoding="utf-8")


def test_a_confirmation_goes_out_through_an_edit_that_broke_the_publication_file(
    settings: Settings, store: Store, clock: Clock
) -> None:
    queue_confirmations(settings, store, clock, 1)
    sender = OutboxSender(take_signups(settings), store)
    assert sender.send_due() == 1  # the file read as it was

    break_publication_file(settings)
    queue(store, "welcome", "later@example.org")

    assert sender.send_due() == 1
    assert [row["status"] for row in outbox_rows(store)] == ["sent", "sent"]
    assert sorted(m["To"] for m in sent_messages(settings)) == [
        "later@example.org", "reader0@example.org"]


def test_a_confirmation_waits_for_a_publication_file_that_never_read(
    settings: Settings, store: Store, clock: Clock
) -> None:
    queue_confirmations(settings, store, clock, 1)
    break_publication_file(settings)
    sender = OutboxSender(settings, store)

    assert sender.send_due() == 1
    [row] = outbox_rows(store)
    assert row["status"] == "pending" and row["due_at"] > clock.at
    assert "publication.toml:" in row["error"] and "invalid TOML" in row["error"]

    path = settings.subscribers_dir / "publication.toml"
    path.write_text(path.read_text(encoding="utf-8").replace("\n[lists.new\n", "\n"),
                    encoding="utf-8")
    clock.advance(hours=1)
    assert sender.send_due() == 1
    [row] = outbox_rows(store)
    assert (row["status"], row["attempts"]) == ("sent", 2)
    assert len(sent_messages(settings)) == 1
