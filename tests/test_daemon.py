"""``newsletter run`` as real processes: one scheduler per database, and a clean stop mid-send.

The send goes to a Postmark-compatible endpoint started here, which holds every request
until the test opens its gate: the test knows a batch is in flight, stops the daemon, and
only then lets the batch finish. Each step waits on an event or a line of output.
"""

from __future__ import annotations

import email.utils
import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO

import pytest
from sqlalchemy import select

from newsletter.models import IssueState
from newsletter.store import issues as issue_store
from newsletter.store import tally
from newsletter.store.tables import locks
from tests.schedule_helpers import ListSpec, make_home, open_publication, write_article

MEMBERS = 60
BATCH = 10


class GatedPostmark:
    """``POST /email/batch`` that records each copy, then waits for the gate to open."""

    def __init__(self) -> None:
        self.copies: list[str] = []
        self.arrived = threading.Event()
        self.gate = threading.Event()
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                messages = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.accept([email.utils.parseaddr(m["To"])[1] for m in messages])
                outer.gate.wait(timeout=60)
                body = json.dumps(
                    [
                        {
                            "ErrorCode": 0,
                            "Message": "OK",
                            "To": m["To"],
                            "MessageID": str(uuid.uuid4()),
                        }
                        for m in messages
                    ]
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def accept(self, addresses: list[str]) -> None:
        with self._lock:
            self.copies += addresses
        self.arrived.set()

    def __enter__(self) -> GatedPostmark:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()


@pytest.fixture
def postmark() -> Iterator[GatedPostmark]:
    with GatedPostmark() as server:
        yield server


@pytest.fixture
def home(tmp_path: Path, database_url: str, postmark: GatedPostmark) -> Path:
    home = make_home(tmp_path, [ListSpec("weekly", members=MEMBERS)])
    (home / ".env").write_text(
        "\n".join(
            [
                f"NEWSLETTER_DATABASE_URL={database_url}",
                "NEWSLETTER_PROVIDER=postmark",
                "POSTMARK_SERVER_TOKEN=pm-test-token",
                f"POSTMARK_BASE_URL={postmark.url}",
                f"NEWSLETTER_BATCH_SIZE={BATCH}",
                "NEWSLETTER_CONCURRENCY=2",
                "NEWSLETTER_LOG_LEVEL=info",
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    return home


def newsletter(home: Path, *args: str, stderr: IO[str] | None = None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", "--home", str(home), *args],
        stdout=subprocess.PIPE,
        stderr=stderr or subprocess.PIPE,
        text=True,
        env=env,
    )


class Daemon:
    """A running ``newsletter run``; its log goes to a file so no pipe can fill up."""

    def __init__(self, home: Path, log: Path) -> None:
        self.log_path = log
        self._log = log.open("w", encoding="utf-8")
        self.process = newsletter(home, "run", stderr=self._log)
        self.started = self.line()
        assert self.started.startswith("Scheduler running as "), self.failure()
        self.owner = self.started.removeprefix("Scheduler running as ").split(" with ")[0]

    def line(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    def stop(self, number: signal.Signals) -> tuple[int, list[str]]:
        self.process.send_signal(number)
        return self.finish()

    def finish(self) -> tuple[int, list[str]]:
        out, _ = self.process.communicate(timeout=60)
        self._log.close()
        return self.process.returncode, out.splitlines()

    def failure(self) -> str:
        self._log.flush()
        return self.log_path.read_text(encoding="utf-8")


def queue_issue(home: Path, database_url: str) -> int:
    from datetime import UTC, datetime, timedelta

    write_article(home, "harbour-news", datetime.now(UTC) - timedelta(hours=1))
    _, store, publisher = open_publication(home, database_url)
    try:
        publisher.collect()
        [issue_id] = publisher.draft("weekly")
        publisher.queue(issue_id)
        return issue_id
    finally:
        store.close()


def ledger_of(home: Path, database_url: str, issue_id: int) -> tuple[IssueState, dict[str, int]]:
    _, store, _ = open_publication(home, database_url)
    try:
        with store.engine.connect() as conn:
            return (issue_store.get(conn, issue_id).state, tally.status_counts(conn, issue_id))
    finally:
        store.close()


def lock_rows(home: Path, database_url: str) -> list[str]:
    _, store, _ = open_publication(home, database_url)
    try:
        with store.engine.connect() as conn:
            return list(conn.execute(select(locks.c.owner)).scalars())
    finally:
        store.close()


def test_a_second_scheduler_exits_1_naming_the_first(
    home: Path,
    tmp_path: Path,
    database_url: str,
) -> None:
    first = Daemon(home, tmp_path / "first.log")
    second = newsletter(home, "run")
    _, refused = second.communicate(timeout=60)
    code, out = first.stop(signal.SIGTERM)

    assert second.returncode == 1
    assert "Error: another scheduler is already running on this database" in refused
    assert f"held by {first.owner} (lease until" in refused
    assert code == 0, first.failure()
    assert out[-1] == "Stopped on SIGTERM; the scheduler lock is released."
    assert lock_rows(home, database_url) == []

    again = Daemon(home, tmp_path / "again.log")  # free again once the first has gone
    code, out = again.stop(signal.SIGINT)
    assert code == 0, again.failure()
    assert out[-1] == "Stopped on SIGINT; the scheduler lock is released."


def test_sigterm_mid_send_finishes_the_batch_in_flight_and_send_resumes(
    home: Path,
    tmp_path: Path,
    database_url: str,
    postmark: GatedPostmark,
) -> None:
    issue_id = queue_issue(home, database_url)
    daemon = Daemon(home, tmp_path / "daemon.log")
    assert postmark.arrived.wait(timeout=60), daemon.failure()  # a batch is at the provider
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.line() == "Stopping: finishing the batches in flight; nothing new starts."
    postmark.gate.set()  # only now may the batch in flight be answered
    code, out = daemon.finish()

    assert code == 0, daemon.failure()
    assert out[-1] == "Stopped on SIGTERM; the scheduler lock is released."
    state, counts = ledger_of(home, database_url, issue_id)
    in_flight = len(postmark.copies)
    assert in_flight in (BATCH, 2 * BATCH)  # one batch per sending thread, no more
    assert state == IssueState.SENDING
    assert counts == {"sent": in_flight, "queued": MEMBERS - in_flight}

    resumed = newsletter(home, "send")
    out_text, err_text = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err_text
    assert f"Issue {issue_id}: sent" in out_text
    state, counts = ledger_of(home, database_url, issue_id)
    assert (state, counts) == (IssueState.SENT, {"sent": MEMBERS})
    delivered = Counter(postmark.copies)
    assert len(delivered) == MEMBERS and set(delivered.values()) == {1}  # each exactly once


def test_a_standby_scheduler_takes_over_when_the_leader_is_killed(
    home: Path,
    tmp_path: Path,
    database_url: str,
) -> None:
    with (home / ".env").open("a", encoding="utf-8") as env:
        env.write("NEWSLETTER_LEASE_SECONDS=3\n")
    leader = Daemon(home, tmp_path / "leader.log")
    with (tmp_path / "standby.log").open("w", encoding="utf-8") as log:
        standby = newsletter(home, "run", "--standby", stderr=log)
        assert standby.stdout is not None
        waiting = standby.stdout.readline().strip()
        assert waiting.startswith("Standing by: another scheduler is already running"), waiting
        assert leader.owner in waiting
        leader.process.send_signal(signal.SIGKILL)  # no clean release: the lease must lapse
        leader.finish()
        took_over = standby.stdout.readline().strip()
        assert took_over.startswith("Scheduler running as "), took_over
        new_owner = took_over.removeprefix("Scheduler running as ").split(" with ")[0]
        assert lock_rows(home, database_url) == [new_owner] != [leader.owner]
        standby.send_signal(signal.SIGTERM)
        out, _ = standby.communicate(timeout=60)
    assert standby.returncode == 0
    assert out.splitlines()[-1] == "Stopped on SIGTERM; the scheduler lock is released."
    assert lock_rows(home, database_url) == []


def issues_by_state(home: Path, database_url: str) -> dict[int, IssueState]:
    _, store, _ = open_publication(home, database_url)
    try:
        with store.engine.connect() as conn:
            return {r.id: r.state for r in issue_store.find(conn)}
    finally:
        store.close()


def test_run_once_refuses_while_a_daemon_holds_the_lock_and_drafts_nothing(
    home: Path,
    tmp_path: Path,
    database_url: str,
) -> None:
    from datetime import UTC, datetime, timedelta

    write_article(home, "harbour-news", datetime.now(UTC) - timedelta(hours=1))
    daemon = Daemon(home, tmp_path / "daemon.log")
    once = newsletter(home, "run", "--once")
    _, refused = once.communicate(timeout=120)
    drafted_meanwhile = issues_by_state(home, database_url)
    code, _ = daemon.stop(signal.SIGTERM)

    assert once.returncode == 75, refused
    assert f"held by {daemon.owner} (lease until" in refused
    assert "Nothing was done." in refused
    assert drafted_meanwhile == {}  # the daemon drafts the weekly digest on Mondays only
    assert code == 0, daemon.failure()

    again = newsletter(home, "run", "--once")  # the daemon has gone: the lock is free
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert "skipped weekly: next digest at " in out
    assert lock_rows(home, database_url) == []  # taken for the run, released after


def wait_for_states(
    home: Path, database_url: str, wanted: dict[int, IssueState], daemon: Daemon
) -> None:
    """Poll the store until the issues are in ``wanted`` (the daemon sends on its own)."""
    import time

    deadline = time.monotonic() + 120
    while (seen := issues_by_state(home, database_url)) != wanted:
        assert daemon.process.poll() is None, daemon.failure()
        assert time.monotonic() < deadline, (seen, daemon.failure())
        time.sleep(0.2)


def test_the_daemon_logs_each_step_at_info_whatever_the_log_level(
    tmp_path: Path, database_url: str
) -> None:
    from datetime import UTC, datetime, timedelta

    from newsletter.devtools.fakeprovider import FakeProviderServer, Fault, FaultKind

    home = make_home(tmp_path, [ListSpec("alerts", "instant", members=3)])
    write_article(home, "harbour-wall", datetime.now(UTC) - timedelta(hours=2))
    write_article(home, "lifeboat-day", datetime.now(UTC) - timedelta(hours=1))
    with FakeProviderServer() as provider:
        settings = {"NEWSLETTER_DATABASE_URL": database_url, "NEWSLETTER_PROVIDER": "postmark"}
        settings |= provider.environment()  # and NEWSLETTER_LOG_LEVEL left at its warning
        (home / ".env").write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        provider.faults.push("postmark", Fault(FaultKind.UNAUTHORIZED, nth=1))
        daemon = Daemon(home, tmp_path / "daemon.log")
        wait_for_states(home, database_url, {1: IssueState.PAUSED, 2: IssueState.SENT}, daemon)
        code, _ = daemon.stop(signal.SIGTERM)
    log = daemon.log_path.read_text(encoding="utf-8")
    assert code == 0, log
    logged = [line.split(": ", 1)[1] for line in log.splitlines() if ": " in line]
    for line in (
        "collected 2 new article(s) from 1 source(s), 0 failing",
        "drafted issue 1 for alerts (1 articles)",
        "drafted issue 2 for alerts (1 articles)",
        "list alerts: issue 1 queued",
        "list alerts: issue 2 queued",
        "issue 1 (alerts): sending, 3 recipient(s) to go",
        "issue 1: paused (3 queued)",
        "issue 2 (alerts): sending, 3 recipient(s) to go",
        "issue 2: sent (3 sent)",
    ):
        assert logged.count(line) == 1, (line, logged)
    [paused] = [line for line in logged if line.startswith("issue 1 paused: ")]
    assert "401" in paused
