"""What the outbox sender deletes now and then (``readers.housekeeping``), on SQLite and
PostgreSQL: old finished messages and expired sign-up requests, in batches, and nothing
that is still of use."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
from sqlalchemy import insert

from newsletter.config import Settings
from newsletter.readers.housekeeping import Tidied, tidy
from newsletter.readers.outbox import OutboxSender
from newsletter.store import Store
from newsletter.store.tables import mail_outbox, reader_limits, signup_requests
from tests.signup_support import Clock, outbox_rows, request_rows, take_signups

DAY = timedelta(days=1)


@pytest.fixture
def clock(store: Store) -> Clock:
    moved = Clock()
    store.clock = moved
    return moved


def message(store: Store, to: str, status: str, last_tried: datetime) -> None:
    with store.engine.begin() as conn:
        conn.execute(insert(mail_outbox).values(
            kind="confirm", list_id="weekly", to_email=to, subject="s", html="h", text="t",
            status=status, attempts=1, queued_at=last_tried, due_at=last_tried,
            sent_at=last_tried if status == "sent" else None, provider_message_id="",
            error="",
        ))


def request(store: Store, email: str, made: datetime, confirmed: datetime | None = None) -> None:
    with store.engine.begin() as conn:
        conn.execute(insert(signup_requests).values(
            list_id="weekly", email_key=email, email=email, name="", nonce="" if confirmed
            else "n0nce", requested_at=made, last_sent_at=made, confirmed_at=confirmed,
        ))


def test_old_finished_messages_and_expired_requests_go_and_nothing_else(
    settings: Settings, store: Store, clock: Clock
) -> None:
    now = clock.at
    for status in ("sent", "failed", "unknown"):
        message(store, f"old-{status}@example.org", status, now - 31 * DAY)
        message(store, f"recent-{status}@example.org", status, now - 29 * DAY)
    message(store, "waiting@example.org", "pending", now - 40 * DAY)  # still to be sent
    message(store, "leased@example.org", "sending", now - 40 * DAY)  # a sender's lease
    request(store, "expired@example.org", now - timedelta(hours=49))
    request(store, "fresh@example.org", now - timedelta(hours=47))
    request(store, "confirmed@example.org", now - 90 * DAY, confirmed=now - 89 * DAY)

    tidied = tidy(settings, store)

    assert tidied == Tidied(messages=3, requests=1, counters=0)
    assert sorted(row["to_email"] for row in outbox_rows(store)) == [
        "leased@example.org", "recent-failed@example.org", "recent-sent@example.org",
        "recent-unknown@example.org", "waiting@example.org",
    ]
    assert sorted(row["email"] for row in request_rows(store)) == [
        "confirmed@example.org", "fresh@example.org",
    ]


def test_the_retention_is_a_setting(settings: Settings, store: Store, clock: Clock) -> None:
    message(store, "week-old@example.org", "sent", clock.at - 8 * DAY)

    assert tidy(settings, store).messages == 0
    assert tidy(settings.with_changes(reader_mail_retention_days=7), store).messages == 1


def test_a_pass_deletes_in_batches_and_at_most_so_many(
    settings: Settings, store: Store, clock: Clock
) -> None:
    for n in range(7):
        message(store, f"old{n}@example.org", "sent", clock.at - 60 * DAY)
        request(store, f"old{n}@example.org", clock.at - 60 * DAY)

    first = tidy(settings, store, batch=2, batches=2)
    second = tidy(settings, store, batch=2, batches=2)
    third = tidy(settings, store, batch=2, batches=2)

    assert [(t.messages, t.requests) for t in (first, second, third)] == [(4, 4), (3, 3), (0, 0)]
    assert outbox_rows(store) == [] and request_rows(store) == []


def test_the_senders_loop_tidies(settings: Settings, store: Store, clock: Clock) -> None:
    message(store, "old@example.org", "sent", clock.at - 60 * DAY)
    request(store, "expired@example.org", clock.at - 60 * DAY)
    with store.engine.begin() as conn:
        conn.execute(insert(reader_limits).values(key="client:192.0.2.1",
                                                  window_start=clock.at - DAY, count=3))
    sender = OutboxSender(take_signups(settings), store)
    sender.start()
    try:
        gone = threading.Event()
        for _ in range(600):  # up to a minute
            if not outbox_rows(store) and not request_rows(store):
                gone.set()
                break
            gone.wait(0.1)
    finally:
        sender.stop()
    assert gone.is_set()
