"""One process sending an issue's first chunks while it freezes the rest (``delivery.beside``),
against the in-process fake Mailgun, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from newsletter.config import Secret
from newsletter.delivery.base import PreparedIssue
from newsletter.delivery.beside import send_beside
from newsletter.devtools.fakeprovider import FakeProviderServer
from newsletter.models import IssueState, Recipient
from newsletter.publisher import Publisher
from newsletter.store import Store, audience, tally
from newsletter.store import issues as issue_store
from tests.servers.fake_provider import fake_provider_server, provider_settings

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
BATCH = 10
DEADLINE_SECONDS = 60.0


@contextmanager
def sending(home: Path, database_url: str) -> Iterator[tuple[FakeProviderServer, Publisher]]:
    with fake_provider_server() as server:
        settings = provider_settings(server, home, "mailgun", database_url=database_url,
                                     lookback_days=3650, batch_size=BATCH,
                                     secret_key=Secret("beside-test-signing-key"))
        store = Store.open(database_url)
        try:
            publisher = Publisher(settings, store)
            publisher.collect()
            yield server, publisher
        finally:
            store.close()


def started(publisher: Publisher) -> PreparedIssue:
    """A weekly issue moved to sending, its audience not frozen."""
    (issue_id,) = publisher.draft("weekly")
    publisher.queue(issue_id)
    with publisher.store.engine.begin() as conn:
        issue_store.transition(conn, issue_id, IssueState.SENDING, NOW)
    return publisher.prepared(issue_id)


def members(count: int) -> list[Recipient]:
    return [Recipient(f"reader{i}@example.org", f"Reader {i}", {}, "weekly") for i in range(count)]


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        time.sleep(0.01)


def test_the_first_chunks_are_sent_while_the_rest_is_frozen(
    home: Path, database_url: str
) -> None:
    """The members after the first chunk are held back until the provider has been sent a
    batch: a process that froze everything before it sent would wait here until the
    deadline and fail."""
    with sending(home, database_url) as (server, publisher):
        prepared = started(publisher)

        def gated(taken: Callable[[], None]) -> Iterator[Recipient]:
            taken()  # read once the lease is held, as the publisher's audience is
            everyone = members(60)
            yield from everyone[:20]  # the first chunk, committed before more is read
            wait_until(lambda: sum(server.recorder.counts.values()) > 0, "a batch sent")
            yield from everyone[20:]

        def freeze(taken: Callable[[], None]) -> None:
            audience.freeze_audience(publisher.store.engine, prepared.issue_id, gated(taken),
                                     batch_size=BATCH, chunk_size=20, at=NOW)

        report = send_beside(publisher.engine(), prepared, freeze, None)
        with publisher.store.engine.connect() as conn:
            counts = tally.status_counts(conn, prepared.issue_id)
    assert report.recipients_sent == 60
    assert counts == {"sent": 60}
    assert sorted(server.recorder.counts.values()) == [1] * 60


def test_a_freeze_that_fails_stops_the_senders_and_is_raised(
    home: Path, database_url: str
) -> None:
    """The senders wait for chunks while the freeze's lease holds (an hour here): a freeze
    that failed must stop them at once, and its error must reach the caller."""
    with sending(home, database_url) as (server, publisher):
        prepared = started(publisher)

        def broken(taken: Callable[[], None]) -> Iterator[Recipient]:
            taken()
            yield from members(20)
            raise OSError("the member file went away")

        def freeze(taken: Callable[[], None]) -> None:
            audience.freeze_audience(publisher.store.engine, prepared.issue_id, broken(taken),
                                     batch_size=BATCH, chunk_size=20, at=NOW,
                                     lease_seconds=3600.0)

        outcome: list[BaseException] = []

        def send() -> None:
            try:
                send_beside(publisher.engine(), prepared, freeze, None)
            except BaseException as exc:
                outcome.append(exc)

        thread = threading.Thread(target=send, daemon=True)
        thread.start()
        thread.join(DEADLINE_SECONDS)
        assert not thread.is_alive(), "the senders kept waiting for the failed freeze"
    assert [type(e) for e in outcome] == [OSError]
    assert sum(server.recorder.counts.values()) <= 20


def test_an_audience_frozen_already_is_just_sent(home: Path, database_url: str) -> None:
    with sending(home, database_url) as (server, publisher):
        prepared = started(publisher)
        audience.freeze_audience(publisher.store.engine, prepared.issue_id, members(15),
                                 batch_size=BATCH, at=NOW)
        report = send_beside(publisher.engine(), prepared, None, None)
    assert report.recipients_sent == 15
    assert sum(server.recorder.counts.values()) == 15
