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
from newsletter.delivery.fanout import MIN_BATCHES_PER_PROCESS, helper_count
from newsletter.errors import ConfigError, IssueMovedOnError
from newsletter.publisher import Publisher
from newsletter.store import Store
from tests.test_workers import BATCH_SIZE, FakeProviderProcess, fake, outcome, prepare_send

__all__ = ["fake"]  # the fixture, imported for use here


@pytest.mark.parametrize(
    ("processes", "pending", "helpers"),
    [
        (1, 1000, 0),  # one process asked for: never a helper
        (4, 1000, 3),
        (4, 2 * MIN_BATCHES_PER_PROCESS, 1),  # not worth four processes
        (4, MIN_BATCHES_PER_PROCESS - 1, 0),  # a small issue is sent by one process
        (4, 0, 0),
    ],
)
def test_helpers_are_started_only_for_an_issue_big_enough(
    processes: int, pending: int, helpers: int
) -> None:
    assert helper_count(Settings(home=Path("."), processes=processes), pending) == helpers


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


def test_a_large_issue_is_shared_with_helpers_and_each_reader_gets_one_copy(
    home: Path,
    database_url: str,
    fake: FakeProviderProcess,
    caplog: pytest.LogCaptureFixture,
) -> None:
    members = 600  # 60 batches: two helpers beside the sending process
    send = prepare_send(
        home, database_url, "mailgun", fake.url, members=members, NEWSLETTER_PROCESSES="3"
    )
    # Each request answered after 0.2 s: the parent alone would need about six seconds,
    # which leaves the helpers (a second or so to start) their share.
    fake.fault(provider="mailgun", kind="slow", delay=0.2, times=members // BATCH_SIZE)
    settings = load_settings(home, environ=send.env)
    store = Store.open(settings.database_url)
    progress: list[int] = []
    try:
        with caplog.at_level(logging.INFO, logger="newsletter.delivery.fanout"):
            report = Publisher(settings, store).send_issue(send.issue_id, progress.append)
    finally:
        store.close()

    assert "2 helper process(es) share the send" in caplog.text
    assert len(report.by_helpers) == 2 and sum(report.by_helpers) > 0, report.by_helpers
    assert (report.final_state, report.counts) == ("sent", {"sent": members})
    assert (report.recipients_sent, report.batches_sent) == (members, members // BATCH_SIZE)
    assert sum(progress) == members  # the helpers' batches reach the progress display too
    assert fake.copies("mailgun") == {email: 1 for email in send.audience}
    state, counts, moves, problems = outcome(send)
    assert (state, counts, problems) == ("sent", {"sent": members}, [])
    assert moves.count("queued->sending") == 1


def test_a_worker_sends_alone(home: Path, database_url: str, fake: FakeProviderProcess) -> None:
    """``newsletter worker`` is one process by design: more cores mean more workers."""
    from tests.test_workers import start_workers, wait_all

    send = prepare_send(
        home, database_url, "mailgun", fake.url, members=300, NEWSLETTER_PROCESSES="4"
    )
    [worker] = start_workers(send, 1, "--once")
    assert wait_all([worker]) == [0], worker.output()
    assert "helper process" not in worker.output()
    assert fake.copies("mailgun") == {email: 1 for email in send.audience}


def test_helpers_started_for_an_issue_that_cannot_start_are_stopped(
    home: Path, database_url: str, fake: FakeProviderProcess
) -> None:
    """Helpers start before the audience freezes; when starting fails, they go away."""
    send = prepare_send(
        home, database_url, "mailgun", fake.url, members=600, NEWSLETTER_PROCESSES="3"
    )
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
