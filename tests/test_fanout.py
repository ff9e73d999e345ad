"""One large send shared with helper processes (``NEWSLETTER_PROCESSES``).

The helpers are real processes started with ``spawn``; the fake provider is a process of
its own, so its record of each recipient's copies is what the assertions read.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from newsletter.config import Settings, load_settings
from newsletter.delivery.fanout import MIN_RECIPIENTS_PER_PROCESS, helper_count
from newsletter.errors import ConfigError, IssueMovedOnError
from newsletter.publisher import Publisher
from newsletter.store import Store
from newsletter.store import issues as issue_store
from tests.test_workers import (
    FakeProviderProcess,
    Send,
    fake,
    prepare_send,
    start_workers,
    wait_all,
)

__all__ = ["fake"]  # the fixture, imported for use here


@pytest.mark.parametrize(
    ("processes", "recipients", "helpers"),
    [
        (1, 10**6, 0),  # one process asked for: never a helper
        (4, 10**6, 3),
        (4, 2 * MIN_RECIPIENTS_PER_PROCESS, 1),  # not worth four processes
        (4, MIN_RECIPIENTS_PER_PROCESS * 2 - 1, 0),  # a small issue is sent by one process
        (4, 0, 0),
    ],
)
def test_helpers_are_started_only_for_an_issue_big_enough(
    processes: int, recipients: int, helpers: int
) -> None:
    assert helper_count(Settings(home=Path("."), processes=processes), recipients) == helpers


def test_auto_means_one_process_per_core() -> None:
    settings = Settings(home=Path("."), processes=0)
    assert helper_count(settings, 10**6) == (os.cpu_count() or 1) - 1


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_a_bad_process_count_is_named(home: Path, value: str) -> None:
    with pytest.raises(ConfigError, match=r"NEWSLETTER_PROCESSES='.*': must be auto or a positive"):
        load_settings(home, environ={"NEWSLETTER_PROCESSES": value})


def test_processes_default_to_auto(home: Path) -> None:
    assert load_settings(home, environ={}).processes == 0
    assert load_settings(home, environ={"NEWSLETTER_PROCESSES": "AUTO"}).processes == 0
    assert load_settings(home, environ={"NEWSLETTER_PROCESSES": "3"}).processes == 3


#: Enough members for one helper beside the sending process (by the member file's size),
#: in batches of 500.
MEMBERS = 21_000
BATCH = 500


def large_send(home: Path, database_url: str, fake: FakeProviderProcess, processes: int) -> Send:
    return prepare_send(
        home,
        database_url,
        "mailgun",
        fake.url,
        members=MEMBERS,
        NEWSLETTER_PROCESSES=str(processes),
        NEWSLETTER_BATCH_SIZE=str(BATCH),
        # Three senders, PostgreSQL and the fake share two cores here: no answer is lost to
        # a timeout meant for the kill tests.
        NEWSLETTER_HTTP_TIMEOUT="10",
    )


def test_a_large_issue_is_shared_with_a_helper_and_each_reader_gets_one_copy(
    home: Path,
    database_url: str,
    fake: FakeProviderProcess,
    caplog: pytest.LogCaptureFixture,
) -> None:
    send = large_send(home, database_url, fake, processes=2)
    # Each request answered after 0.2 s: the parent alone would need about four seconds,
    # which leaves the helper (a second or so to start) its share.
    fake.fault(provider="mailgun", kind="slow", delay=0.2, times=MEMBERS // BATCH)
    settings = load_settings(home, environ=send.env)
    store = Store.open(settings.database_url)
    progress: list[int] = []
    try:
        with caplog.at_level(logging.INFO, logger="newsletter.delivery.fanout"):
            report = Publisher(settings, store).send_issue(send.issue_id, progress.append)
        with store.engine.connect() as conn:
            moves = [f"{e['from']}->{e['to']}" for e in issue_store.events(conn, send.issue_id)]
    finally:
        store.close()

    assert "1 helper process(es) share the send" in caplog.text
    assert len(report.by_helpers) == 1 and report.by_helpers[0] > 0, report.by_helpers
    assert (report.final_state, report.counts) == ("sent", {"sent": MEMBERS})
    assert (report.recipients_sent, report.batches_sent) == (MEMBERS, MEMBERS // BATCH)
    assert sum(progress) == MEMBERS  # the helper's batches reach the progress display too
    assert fake.copies("mailgun") == {email: 1 for email in send.audience}
    assert moves.count("queued->sending") == 1 and moves[-1] == "sending->sent"


def test_a_worker_sends_alone(home: Path, database_url: str, fake: FakeProviderProcess) -> None:
    """``newsletter worker`` is one process by design: more cores mean more workers."""
    send = large_send(home, database_url, fake, processes=4)
    [worker] = start_workers(send, 1, "--once")
    assert wait_all([worker]) == [0], worker.output()
    assert f"{MEMBERS} sent" in worker.output()
    assert "helper process" not in worker.output()
    assert fake.copies("mailgun") == {email: 1 for email in send.audience}


def test_helpers_started_for_an_issue_that_cannot_start_are_stopped(
    home: Path, database_url: str, fake: FakeProviderProcess
) -> None:
    """Helpers start before the audience freezes; when starting fails, they go away."""
    send = large_send(home, database_url, fake, processes=2)
    settings = load_settings(home, environ=send.env)
    store = Store.open(settings.database_url)
    try:
        publisher = Publisher(settings, store)
        publisher.pause(send.issue_id)  # queued → paused: nothing to send
        with pytest.raises(IssueMovedOnError, match="nothing left to send"):
            publisher.send_issue(send.issue_id)
    finally:
        store.close()
    assert fake.requests_made("mailgun") == 0
