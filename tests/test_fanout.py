"""One large send shared with helper processes (``NEWSLETTER_PROCESSES``).

The helpers are real processes started with ``spawn``; the fake provider is a process of
its own, so its record of each recipient's copies is what the assertions read.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from newsletter.cli.send import describe, report_dict
from newsletter.config import Settings, load_settings
from newsletter.delivery.fanout import (
    AUTO_MAX_PROCESSES,
    MIN_RECIPIENTS_PER_PROCESS,
    helper_count,
)
from newsletter.errors import ConfigError, IssueMovedOnError
from newsletter.publisher import Publisher
from newsletter.store import Store, tally
from newsletter.store import issues as issue_store
from tests.test_workers import (
    PROCESS_TIMEOUT,
    FakeProviderProcess,
    Send,
    eventually,
    fake,
    prepare_send,
    start_workers,
    wait_all,
)

__all__ = ["fake"]  # the fixture, imported for use here


@pytest.fixture
def counting(tmp_path: Path) -> Iterator[FakeProviderProcess]:
    """The fake provider keeping only counts: a full copy of each message, for tens of
    thousands of recipients, would take gigabytes."""
    server = FakeProviderProcess(tmp_path / "fake-provider.log", counts_only=True)
    try:
        yield server
    finally:
        server.close()


def received(fake: FakeProviderProcess) -> tuple[int, int]:
    """Copies the fake accepted for Mailgun, and recipients who got more than one."""
    summary = fake.http.get(f"{fake.url}/_fake/record?summary=1", timeout=30).json()
    return summary["accepted"].get("mailgun", 0), summary["recipients_with_duplicates"].get(
        "mailgun", 0
    )


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


def test_auto_means_one_process_per_core_up_to_four(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(home=Path("."), processes=0)
    for cores, helpers in [(1, 0), (2, 1), (4, 3), (16, AUTO_MAX_PROCESSES - 1)]:
        monkeypatch.setattr(os, "cpu_count", lambda cores=cores: cores)
        assert helper_count(settings, 10**6) == helpers
    assert helper_count(settings.with_changes(processes=16), 10**6) == 15  # asked for: given


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


def slow_large_send(
    home: Path, database_url: str, fake: FakeProviderProcess, *, delay: float
) -> tuple[Send, Settings]:
    """A large send, one helper, each request answered ``delay`` seconds late."""
    send = large_send(home, database_url, fake, processes=2)
    fake.fault(provider="mailgun", kind="slow", delay=delay, times=MEMBERS // BATCH)
    return send, load_settings(home, environ=send.env)


def test_a_large_issue_is_shared_with_a_helper_and_each_reader_gets_one_copy(
    home: Path,
    database_url: str,
    counting: FakeProviderProcess,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = counting
    # Each request answered after 0.2 s: the parent alone would need about four seconds,
    # which leaves the helper (a second or so to start) its share.
    send, settings = slow_large_send(home, database_url, fake, delay=0.2)
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
    assert "exited with" not in caplog.text  # the helper told its share, then exited with 0
    assert len(report.by_helpers) == 1 and report.by_helpers[0] > 0, report.by_helpers
    assert (report.final_state, report.counts) == ("sent", {"sent": MEMBERS})
    assert (report.recipients_sent, report.batches_sent) == (MEMBERS, MEMBERS // BATCH)
    assert sum(progress) == MEMBERS  # the helper's batches reach the progress display too
    assert "; shared with 1 helper process;" in describe(report) + ";"
    assert report_dict(report)["helper_processes"] == 1
    assert received(fake) == (MEMBERS, 0)
    assert moves.count("queued->sending") == 1 and moves[-1] == "sending->sent"


def test_a_helper_sends_the_first_chunks_while_the_rest_is_frozen(
    home: Path,
    database_url: str,
    counting: FakeProviderProcess,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The audience is frozen a chunk per transaction, slowed here to about two seconds:
    the helper sends what is committed, and waits for more, until the freeze is done."""
    send = large_send(home, database_url, counting, processes=2)
    settings = load_settings(home, environ={**send.env, "NEWSLETTER_FREEZE_CHUNK": "1000"})
    reading = Publisher.audience

    def slow_audience(self: Publisher, *args: Any) -> Iterator[Any]:
        for number, member in enumerate(reading(self, *args)):
            if number % 1000 == 0:
                time.sleep(0.1)
            yield member

    monkeypatch.setattr(Publisher, "audience", slow_audience)
    store = Store.open(settings.database_url)
    progress: list[int] = []
    try:
        report = Publisher(settings, store).send_issue(send.issue_id, progress.append)
    finally:
        store.close()
    frozen_at = progress.index(0)  # the parent's first report: its freeze is done
    assert sum(progress[:frozen_at]) > 0, "nothing was sent while the audience was frozen"
    assert (report.final_state, report.counts) == ("sent", {"sent": MEMBERS})
    assert received(counting) == (MEMBERS, 0)


def test_a_worker_sends_alone(
    home: Path, database_url: str, counting: FakeProviderProcess
) -> None:
    """``newsletter worker`` is one process by design: more cores mean more workers."""
    fake = counting
    send = large_send(home, database_url, fake, processes=4)
    [worker] = start_workers(send, 1, "--once")
    assert wait_all([worker]) == [0], worker.output()
    assert f"{MEMBERS} sent" in worker.output()
    assert "helper process" not in worker.output()
    assert received(fake) == (MEMBERS, 0)


def test_helpers_started_for_an_issue_that_cannot_start_are_stopped(
    home: Path, database_url: str, counting: FakeProviderProcess
) -> None:
    fake = counting
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


def test_stopping_the_send_stops_its_helpers_after_their_batches_in_flight(
    home: Path, database_url: str, counting: FakeProviderProcess
) -> None:
    """What SIGTERM to ``newsletter run`` does: the engine stops, and so do its helpers."""
    fake = counting
    send, settings = slow_large_send(home, database_url, fake, delay=0.3)
    store = Store.open(settings.database_url)
    sent: list[int] = []
    try:
        publisher = Publisher(settings, store)
        engine = publisher.engine()

        def progress(count: int) -> None:
            sent.append(count)
            if sum(sent) >= 4 * BATCH:  # the helper has begun by now, or is about to
                engine.stop()

        report = publisher.send_issue(send.issue_id, progress, engine)
        with store.engine.connect() as conn:
            batches = tally.batch_counts(conn, send.issue_id)
            counts = tally.status_counts(conn, send.issue_id)
    finally:
        store.close()

    assert report.final_state == "sending"  # the rest waits for the next send
    assert batches.get("sending", 0) == 0  # nothing left in flight, by anyone
    assert 0 < counts["sent"] < MEMBERS and counts["sent"] + counts["queued"] == MEMBERS
    assert received(fake) == (counts["sent"], 0)  # the ledger knows of every copy sent


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's exit status waits for whoever adopts it)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def test_a_sender_killed_with_sigkill_stops_its_helpers_and_a_new_send_finishes(
    home: Path, database_url: str, counting: FakeProviderProcess
) -> None:
    fake = counting
    send, _ = slow_large_send(home, database_url, fake, delay=0.3)
    command = [sys.executable, "-m", "newsletter", "--home", str(home), "send"]
    with (home / "send.log").open("wb") as out:
        sender = subprocess.Popen(command, env=send.env, stdout=out, stderr=out)
    try:
        helpers = eventually(lambda: children(sender.pid), what="the helper process")
        eventually(lambda: fake.requests_made("mailgun") >= 6, what="a few batches sent")
        os.kill(sender.pid, signal.SIGKILL)
        sender.wait(PROCESS_TIMEOUT)
        at_kill, _ = received(fake)
        # The helper sees its parent gone, finishes its batches in flight and exits.
        eventually(lambda: not any(running(pid) for pid in helpers), what="the helper to exit")
    finally:
        if sender.poll() is None:
            sender.kill()
    accepted_before, _ = received(fake)
    # It looks for its parent every half second: a few batches at most, not the rest.
    assert accepted_before - at_kill <= 6 * BATCH < MEMBERS - accepted_before

    again = subprocess.run(command, env=send.env, capture_output=True, timeout=PROCESS_TIMEOUT)
    assert again.returncode == 0, again.stderr
    store = send.store()
    try:
        with store.engine.connect() as conn:
            state = issue_store.get(conn, send.issue_id).state
            counts = tally.status_counts(conn, send.issue_id)
            problems = tally.problems(conn, send.issue_id, limit=MEMBERS)
    finally:
        store.close()
    # Mailgun has no idempotency key: the killed sender's batch in flight is reconciled
    # or held as unknown (the counts-only fake keeps no events), never sent again.
    unknown = counts.get("unknown", 0)
    assert counts == {"sent": MEMBERS - unknown, **({"unknown": unknown} if unknown else {})}
    in_flight = int(send.env["NEWSLETTER_CONCURRENCY"]) * BATCH  # the killed sender's threads
    assert unknown <= in_flight and state == ("partially-failed" if unknown else "sent")
    accepted, duplicates = received(fake)
    assert duplicates == 0 and MEMBERS - unknown <= accepted <= MEMBERS
    assert {p["status"] for p in problems} <= {"unknown"}


def children(pid: int) -> list[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in found]
