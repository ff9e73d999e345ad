"""A reader who unsubscribes while a send is under way gets nothing more from it.

The audience is frozen when the send starts; the suppressions added afterwards are read
before each batch's request, and the recipients they apply to end ``suppressed`` with the
reason, never sent. The unsubscribe goes through the real web app (a one-click POST of the
link the copy carries), committed while the fake Mailgun holds the send's first request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from newsletter.config import Secret
from newsletter.delivery.request_start import SuppressionWatch
from newsletter.devtools.fakeprovider import FakeProviderServer
from newsletter.devtools.fakeprovider.core import FakeRequest, Outcome
from newsletter.models import SuppressionReason
from newsletter.publisher import Publisher
from newsletter.store import Store, suppressions, tally
from newsletter.store.tables import batches, recipients
from newsletter.tokens import TokenSigner, unsubscribe_url
from newsletter.web import create_app
from tests.servers.fake_provider import provider_settings
from tests.servers.webapp import SITE, WebApp

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


class FirstRequestHook(FakeProviderServer):
    """The fake provider, running ``on_first`` before it answers the first send request."""

    def __init__(self) -> None:
        super().__init__()
        self.on_first: Callable[[], None] = lambda: None
        self._fired = False

    def handle(self, request: FakeRequest) -> Outcome:
        if request.method == "POST" and not request.path.startswith("/_fake/") and not self._fired:
            self._fired = True
            self.on_first()
        return super().handle(request)


@contextmanager
def sending_through(home: Path, database_url: str) -> Iterator[
    tuple[FirstRequestHook, Publisher, WebApp]
]:
    """A publisher sending one batch at a time through the fake Mailgun, and its web app."""
    with FirstRequestHook() as server:
        settings = provider_settings(
            server, home, "mailgun", database_url=database_url, lookback_days=3650,
            secret_key=Secret("mid-send-signing-key"), batch_size=2, concurrency=1, processes=1,
        )
        store = Store.open(database_url)
        try:
            publisher = Publisher(settings, store)
            publisher.collect()
            with WebApp(create_app(settings, store, site=SITE)) as web:
                yield server, publisher, web
        finally:
            store.close()


def batch_members(store: Store, issue_id: int, seq: int) -> list[str]:
    with store.engine.connect() as conn:
        found = conn.execute(
            select(recipients.c.email)
            .join(batches, batches.c.id == recipients.c.batch_id)
            .where(batches.c.issue_id == issue_id, batches.c.seq == seq)
            .order_by(recipients.c.id)
        )
        return list(found.scalars())


def rows(store: Store, issue_id: int) -> dict[str, tuple[str, str]]:
    """Each recipient's status as the ledger means it, and its error."""
    with store.engine.connect() as conn:
        found = conn.execute(
            select(recipients.c.email, tally.recipient_status, recipients.c.error)
            .select_from(tally.recipients_with_batch)
            .where(recipients.c.issue_id == issue_id)
        )
        return {email: (status, error) for email, status, error in found}


def test_a_reader_who_unsubscribes_during_the_send_is_not_sent_to(
    home: Path, database_url: str
) -> None:
    with sending_through(home, database_url) as (server, publisher, web):
        [issue_id] = publisher.draft("weekly")
        publisher.queue(issue_id)
        signer = TokenSigner(publisher.settings.secret_key.reveal())
        later: list[str] = []

        def unsubscribe_one_of_the_third_batch() -> None:
            """The audience is frozen (the first batch is on the wire): a reader of batch 3
            clicks the one-click link of an earlier issue."""
            later.extend(batch_members(publisher.store, issue_id, 3))
            link = unsubscribe_url(web.url(""), signer, later[0], "weekly")
            answer = web.session.post(link, data=ONE_CLICK, allow_redirects=False)
            assert answer.status_code == 200

        server.on_first = unsubscribe_one_of_the_third_batch
        report = publisher.send_issue(issue_id)
        received = server.recorder.summary()
        copies = {c.recipient.lower() for c in server.recorder.copies("mailgun")}
        ledger = rows(publisher.store, issue_id)

    gone, neighbour = later
    assert report.final_state == "sent"
    assert gone not in copies  # the provider never saw the address
    assert neighbour in copies  # the rest of its batch went
    status, error = ledger[gone]
    assert status == "suppressed"
    assert error == "unsubscribed (one-click) after the send began"
    assert {e for e, (s, _) in ledger.items() if s == "sent"} == copies
    assert received["recipients_with_duplicates"] == {"mailgun": 0}
    assert report.counts.get("suppressed", 0) >= 1


def test_a_suppression_committed_after_a_later_read_is_still_seen(store: Store) -> None:
    """A suppression is stamped by its writer before it commits: one stamped before a read
    but committed after it is found by the next read (each goes back ``OVERLAP``)."""
    began = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    watch = SuppressionWatch(began)
    with store.engine.begin() as conn:
        assert watch.refresh(conn, began + timedelta(seconds=120)) == {}
        suppressions.add(conn, "Late@Example.org", SuppressionReason.UNSUBSCRIBED,
                         scope="weekly", source="one-click", at=began + timedelta(seconds=100))
        seen = watch.refresh(conn, began + timedelta(seconds=130))
        assert set(seen) == {"late@example.org"}
        assert seen["late@example.org"].scope == "weekly"
        # Read once: later reads do not make it anew, and keep it.
        assert watch.refresh(conn, began + timedelta(seconds=140)) is seen
