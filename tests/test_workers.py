"""Several ``newsletter worker`` processes on one send, against the fake provider.

The fake provider runs as a process of its own, so its record of what each recipient
received outlives a worker killed with SIGKILL; the ledger is read from the database the
workers share. Each test's database comes from the ``database_url`` fixture: a SQLite file
and a PostgreSQL schema of its own.
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select

from newsletter.config import VARIABLES, Secret, Settings, load_settings
from newsletter.devtools.fakeprovider import FakeProviderServer, Fault, FaultKind
from newsletter.models import BatchState, IssueState
from newsletter.publisher import Publisher
from newsletter.runners.worker import Worker
from newsletter.schedule.jobs import DISPATCH_SECONDS, Runtime
from newsletter.store import Store, tally
from newsletter.store import issues as issue_store
from newsletter.store.tables import batches, recipients
from tests.servers.fake_provider import fake_provider_server, provider_settings

REPO = Path(__file__).resolve().parent.parent
BATCH_SIZE = 10
PROCESS_TIMEOUT = 90.0
#: Variables the package reads: a developer's own values must not reach the workers.
PACKAGE_VARIABLES = frozenset({v.name for v in VARIABLES} | {"NEWSLETTER_HOME"})
PROVIDER_VARIABLES = {
    "mailgun": {"MAILGUN_API_KEY": "mg-test-key", "MAILGUN_DOMAIN": "mg.example.org"},
    "resend": {"RESEND_API_KEY": "re_test_key"},
}


# -- the fake provider, as a process ---------------------------------------------------------
class FakeProviderProcess:
    """``python -m newsletter.devtools.fakeprovider`` on a port the OS picks."""

    def __init__(self, log: Path, *, counts_only: bool = False) -> None:
        command = [sys.executable, "-m", "newsletter.devtools.fakeprovider", "--port", "0"]
        self._log = log
        # The child's output goes to a file description of its own: reading it back through
        # a shared one (seek, read) would move the offset the child writes at, and its next
        # lines would overwrite the first, "listening on …" among them.
        with log.open("w") as output:
            self.process = subprocess.Popen(
                command + (["--counts-only"] if counts_only else []),
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        try:
            self.url = self._announced_url()
        except AssertionError:
            self.process.kill()
            self.process.wait(10)
            raise
        self.http = requests.Session()
        self.http.trust_env = False

    def _announced_url(self) -> str:
        def url() -> str | None:
            found = re.search(r"listening on (http://\S+)", self._log.read_text())
            return found.group(1) if found else None

        return eventually(url, what="the fake provider to listen")

    def fault(self, **fault: Any) -> None:
        self.http.post(f"{self.url}/_fake/faults", json=fault, timeout=5).raise_for_status()

    def release(self) -> None:
        """Answer every held request now."""
        self.http.post(f"{self.url}/_fake/release", timeout=5).raise_for_status()

    def copies(self, provider: str) -> dict[str, int]:
        """Recipient → how many copies the provider accepted for them."""
        record = self.http.get(
            f"{self.url}/_fake/record", params={"provider": provider}, timeout=10
        )
        return {c["recipient"].lower(): c["copies"] for c in record.json()["copies"]}

    def requests_made(self, provider: str) -> int:
        summary = self.http.get(f"{self.url}/_fake/record?summary=1", timeout=5).json()
        return int(summary["requests"].get(provider, 0))

    def close(self) -> None:
        self.http.close()
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeProviderProcess]:
    server = FakeProviderProcess(tmp_path / "fake-provider.log")
    try:
        yield server
    finally:
        server.close()


def eventually(probe: Callable[[], Any], *, what: str, timeout: float = 30.0) -> Any:
    """Poll another process's state until ``probe`` answers something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = probe()
        if answer:
            return answer
        time.sleep(0.02)  # another process: there is no event of ours to wait on
    raise AssertionError(f"timed out waiting for {what}")


# -- the publication and its workers -----------------------------------------------------------
@dataclass
class Send:
    """One queued issue of the weekly list, and the environment its workers run with."""

    home: Path
    env: dict[str, str]
    issue_id: int
    audience: list[str]
    provider: str

    def store(self) -> Store:
        return Store.open(self.env["NEWSLETTER_DATABASE_URL"])


def prepare_send(
    home: Path, database_url: str, provider: str, fake_url: str, members: int, **extra: str
) -> Send:
    audience = [f"reader{i:03d}@example.org" for i in range(members)]
    rows = [f"{email},Reader {i:03d},Kellmouth" for i, email in enumerate(audience)]
    (home / "subscribers" / "weekly.csv").write_text("email,name,city\n" + "\n".join(rows) + "\n")
    inherited = {k: v for k, v in os.environ.items() if k not in PACKAGE_VARIABLES}
    env = {
        **inherited,
        **PROVIDER_VARIABLES[provider],
        f"{provider.upper()}_BASE_URL": fake_url,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), inherited.get("PYTHONPATH")])),
        "NEWSLETTER_PROVIDER": provider,
        "NEWSLETTER_DATABASE_URL": database_url,
        "NEWSLETTER_SECRET_KEY": "worker-test-signing-key",
        "NEWSLETTER_BATCH_SIZE": str(BATCH_SIZE),
        "NEWSLETTER_CONCURRENCY": "2",
        "NEWSLETTER_LOOKBACK_DAYS": "3650",
        "NEWSLETTER_LEASE_SECONDS": "2",
        "NEWSLETTER_HTTP_TIMEOUT": "1",
        "NEWSLETTER_RATE_REQUESTS": "0",  # no account limit on the fake (Resend's is 2/s)
        **extra,
    }
    settings = load_settings(home, environ=env)
    store = Store.open(settings.database_url)  # migrated here, before any worker starts
    try:
        publisher = Publisher(settings, store)
        publisher.collect()
        [issue_id] = publisher.draft("weekly")
        publisher.queue(issue_id)
    finally:
        store.close()
    return Send(home, env, issue_id, audience, provider)


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log.read_text()

    def sent_by_me(self) -> int:
        return sum(int(n) for n in re.findall(r"this worker sent (\d+) recipient", self.output()))


def start_workers(send: Send, count: int, *args: str) -> list[WorkerProcess]:
    workers = []
    for n in range(count):
        log = send.home / f"worker-{n}-{time.monotonic_ns()}.log"
        with log.open("wb") as out:
            command = [sys.executable, "-m", "newsletter", "--home", str(send.home), "worker"]
            process = subprocess.Popen([*command, *args], env=send.env, stdout=out, stderr=out)
        workers.append(WorkerProcess(process, log))
    return workers


def wait_all(workers: list[WorkerProcess]) -> list[int]:
    try:
        return [w.process.wait(PROCESS_TIMEOUT) for w in workers]
    finally:
        for w in workers:
            if w.process.poll() is None:
                w.process.kill()
                w.process.wait()


def holder_of(send: Send, store: Store, email: str) -> int | None:
    """The pid of the worker whose lease covers ``email``'s batch, while it is in flight."""
    stmt = (
        select(batches.c.state, batches.c.lease_owner)
        .join(recipients, recipients.c.batch_id == batches.c.id)
        .where(recipients.c.issue_id == send.issue_id, recipients.c.email == email)
    )
    with store.engine.connect() as conn:
        row = conn.execute(stmt).first()
    if row is None or row.state != BatchState.SENDING or not row.lease_owner:
        return None
    return int(row.lease_owner.split(":")[1])


def outcome(send: Send) -> tuple[str, dict[str, int], list[str], list[dict[str, Any]]]:
    """The issue's state, ledger counts, state changes and problem rows."""
    store = send.store()
    try:
        with store.engine.connect() as conn:
            state = issue_store.get(conn, send.issue_id).state
            counts = tally.status_counts(conn, send.issue_id)
            moves = [f"{e['from']}->{e['to']}" for e in issue_store.events(conn, send.issue_id)]
            problems = tally.problems(conn, send.issue_id, limit=1000)
            batch_count = sum(tally.batch_counts(conn, send.issue_id).values())
    finally:
        store.close()
    assert batch_count >= math.ceil(len(send.audience) / BATCH_SIZE)
    return str(state), counts, moves, problems


# -- several workers, one send -------------------------------------------------------------------
#: Members frozen per transaction: all in one chunk, or in five (the others send meanwhile).
@pytest.mark.parametrize(("count", "chunk"), [(2, "20000"), (4, "20000"), (2, "40")])
def test_workers_share_one_send_and_freeze_it_once(
    home: Path, database_url: str, fake: FakeProviderProcess, count: int, chunk: str
) -> None:
    send = prepare_send(home, database_url, "mailgun", fake.url, members=200,
                        NEWSLETTER_FREEZE_CHUNK=chunk)
    workers = start_workers(send, count, "--once")

    assert wait_all(workers) == [0] * count, [w.output() for w in workers]
    state, counts, moves, _ = outcome(send)
    assert state == IssueState.SENT
    assert counts == {"sent": 200}
    # However many workers raced to start it, it started once and its audience froze once.
    assert moves.count("queued->sending") == 1
    assert moves.count("sending->sent") == 1
    assert fake.copies("mailgun") == {email: 1 for email in send.audience}
    assert sum(w.sent_by_me() for w in workers) == 200


@pytest.mark.parametrize("provider", ["resend", "mailgun"])
def test_a_worker_killed_mid_batch_is_taken_over(
    home: Path, database_url: str, fake: FakeProviderProcess, provider: str
) -> None:
    send = prepare_send(home, database_url, provider, fake.url, members=200)
    victim_email = "reader055@example.org"
    # The provider accepts that batch, then holds its answer until the fake stops: the kill
    # lands mid-request however long a loaded machine takes to deliver it (a hold of a few
    # seconds could end first, and the batch would be settled by the worker it was for).
    fake.fault(provider=provider, kind="slow", recipient=victim_email, delay=600)
    workers = start_workers(send, 4, "--once")
    store = send.store()
    try:
        pid = eventually(lambda: holder_of(send, store, victim_email), what="the batch's lease")
        eventually(lambda: fake.copies(provider).get(victim_email), what="the held request")
    finally:
        store.close()
    [victim] = [w for w in workers if w.pid == pid]
    os.kill(pid, signal.SIGKILL)

    codes = wait_all(workers)
    assert victim.process.returncode == -signal.SIGKILL
    survivors = [w for w in workers if w is not victim]
    assert [c for w, c in zip(workers, codes, strict=True) if w is not victim] == [0, 0, 0]
    # Every survivor saw the stale batch; exactly one of them took it over. (On a loaded
    # machine a live batch may outlast its 2 s lease too: still one taker per batch.)
    taken = [n for w in survivors for n in re.findall(r"batch (\d+): taken over", w.output())]
    assert taken and len(taken) == len(set(taken)), taken
    state, counts, moves, problems = outcome(send)
    received = fake.copies(provider)
    if provider == "resend":  # idempotent: resent with the same key, delivered once
        assert (state, counts) == (IssueState.SENT, {"sent": 200})
        assert received == {email: 1 for email in send.audience}
    else:  # Mailgun: reconciled from its events, else held as unknown, never sent twice
        unknown = {p["email"] for p in problems if p["status"] == "unknown"}
        assert state == (IssueState.PARTIALLY_FAILED if unknown else IssueState.SENT)
        assert counts == {
            "sent": 200 - len(unknown),
            **({"unknown": len(unknown)} if unknown else {}),
        }
        assert all(received.get(e) == 1 for e in send.audience if e not in unknown)
        assert all(received.get(e, 0) <= 1 for e in unknown)
    assert moves.count("queued->sending") == 1


def send_with_a_held_batch(
    home: Path, database_url: str, fake: FakeProviderProcess
) -> tuple[Send, str]:
    """100 members, one sender thread; the provider holds its answer to the third batch
    until ``fake.release()``. Returns the send and an address of that batch."""
    send = prepare_send(
        home,
        database_url,
        "mailgun",
        fake.url,
        members=100,
        NEWSLETTER_CONCURRENCY="1",
        NEWSLETTER_HTTP_TIMEOUT="20",
        NEWSLETTER_LEASE_SECONDS="60",
    )
    held = "reader020@example.org"  # the third batch
    fake.fault(provider="mailgun", kind="slow", recipient=held, delay=600)
    return send, held


def test_sigterm_finishes_the_batch_in_flight(
    home: Path, database_url: str, fake: FakeProviderProcess
) -> None:
    send, held = send_with_a_held_batch(home, database_url, fake)
    [worker] = start_workers(send, 1)  # no --once: it would run until stopped
    eventually(lambda: fake.copies("mailgun").get(held), what="the held request")
    worker.process.send_signal(signal.SIGTERM)
    # Answered only once the worker has taken the signal: it must take no other batch.
    eventually(lambda: "SIGTERM: finishing" in worker.output(), what="the worker to stop")
    fake.release()

    assert wait_all([worker]) == [0], worker.output()
    state, counts, _, _ = outcome(send)
    assert state == IssueState.SENDING  # the rest waits for the next worker
    assert counts == {"sent": 30, "queued": 70}  # the held batch was answered and recorded
    assert fake.copies("mailgun") == {e: 1 for e in send.audience[:30]}
    assert "SIGTERM: finishing the batches in flight" in worker.output()


def test_ctrl_c_on_send_finishes_the_batch_in_flight_and_takes_no_other(
    home: Path, database_url: str, fake: FakeProviderProcess
) -> None:
    send, held = send_with_a_held_batch(home, database_url, fake)
    log = home / "send.log"
    with log.open("wb") as out:
        command = [sys.executable, "-m", "newsletter", "--home", str(home), "send"]
        sender = subprocess.Popen(command, env=send.env, stdout=out, stderr=out)
    try:
        eventually(lambda: fake.copies("mailgun").get(held), what="the held request")
        sender.send_signal(signal.SIGINT)
        eventually(lambda: "interrupted: finishing" in log.read_text(), what="the send to stop")
        fake.release()
        code = sender.wait(PROCESS_TIMEOUT)
    finally:
        if sender.poll() is None:
            sender.kill()
    assert code == 1 and "Aborted" in log.read_text(), log.read_text()
    state, counts, _, _ = outcome(send)
    assert state == IssueState.SENDING  # the rest waits for the next send
    assert counts == {"sent": 30, "queued": 70}  # the held batch was answered and recorded
    assert fake.copies("mailgun") == {e: 1 for e in send.audience[:30]}

    again = subprocess.run(command, env=send.env, capture_output=True, timeout=PROCESS_TIMEOUT)
    assert again.returncode == 0, again.stderr
    assert outcome(send)[:2] == (IssueState.SENT, {"sent": 100})
    assert fake.copies("mailgun") == {e: 1 for e in send.audience}


def test_two_workers_stay_under_a_shared_request_rate(
    home: Path, database_url: str, fake: FakeProviderProcess
) -> None:
    rate = 20.0
    send = prepare_send(
        home,
        database_url,
        "mailgun",
        fake.url,
        members=90,
        NEWSLETTER_BATCH_SIZE="1",
        NEWSLETTER_RATE_REQUESTS=str(rate),
    )
    workers = start_workers(send, 2, "--once")
    samples: list[tuple[float, int]] = []
    while any(w.process.poll() is None for w in workers):
        samples.append((time.monotonic(), fake.requests_made("mailgun")))
        time.sleep(0.1)  # sampling the server's count: the cadence of the measurement itself

    assert wait_all(workers) == [0, 0]
    assert all(w.sent_by_me() > 0 for w in workers), "both processes must have sent"
    assert fake.copies("mailgun") == {email: 1 for email in send.audience}
    # Over any window of a second or more, the two together stay within one bucket: a burst
    # of its capacity (plus a chunk per process) and then the rate, with a generous margin.
    # Separate buckets per process would allow twice as much.
    burst = rate + 2 * rate * 0.1
    for i, (start, before) in enumerate(samples):
        for end, after in samples[i + 1 :]:
            if end - start >= 1.0:
                assert after - before <= burst + rate * (end - start) * 1.25 + 2, (start, end)


# -- in one process ---------------------------------------------------------------------------
@contextmanager
def mailgun_publisher(
    home: Path, database_url: str, **changes: Any
) -> Iterator[tuple[FakeProviderServer, Publisher]]:
    """A publisher sending through the in-process fake Mailgun, its articles collected."""
    with fake_provider_server() as server:
        settings = provider_settings(
            server,
            home,
            "mailgun",
            database_url=database_url,
            lookback_days=3650,
            secret_key=Secret("worker-test-signing-key"),
            **changes,
        )
        store = Store.open(database_url)
        try:
            publisher = Publisher(settings, store)
            publisher.collect()
            yield server, publisher
        finally:
            store.close()


def queued(publisher: Publisher, *issue_ids: int) -> tuple[int, ...]:
    for issue_id in issue_ids:
        publisher.queue(issue_id)
    return issue_ids


def states(publisher: Publisher, issue_ids: Iterable[int]) -> dict[int, IssueState]:
    with publisher.store.engine.connect() as conn:
        return {i: issue_store.get(conn, i).state for i in issue_ids}


def test_worker_once_sends_every_due_issue_then_returns(home: Path, database_url: str) -> None:
    with mailgun_publisher(home, database_url, batch_size=7) as (server, publisher):
        issue_ids = queued(
            publisher, *publisher.draft("weekly"), *publisher.draft("every-article")
        )
        report = Worker(publisher, once=True).run()
        after = states(publisher, issue_ids)
    assert len(issue_ids) > 2
    assert sorted(r.issue_id for r in report.sent) == sorted(issue_ids)
    assert set(after.values()) == {IssueState.SENT}
    assert report.failed == {}
    assert report.recipients_sent == sum(server.recorder.counts.values()) > 0


def test_a_providers_wait_holds_every_issue_and_the_worker_sleeps_on_none(
    home: Path, database_url: str
) -> None:
    with mailgun_publisher(home, database_url, max_attempts=3) as (server, publisher):
        first, second = queued(
            publisher, *publisher.draft("weekly"), publisher.draft("every-article")[0]
        )
        # The first issue's only batch is refused for 3 s; the worker's poll is 1 s.
        server.faults.push("mailgun", Fault(FaultKind.RATE_LIMIT, nth=1, retry_after=3))
        refused_at = time.time()
        report = Worker(publisher, once=True, poll_seconds=1.0).run()
        accepted = [c.at for c in server.recorder.copies("mailgun")]
        after = states(publisher, (first, second))
    order = [(r.issue_id, r.retry_at is not None) for r in report.sent]
    # Each handed back at once, not slept on: the rate limit is the account's, so the
    # second issue waits for it too instead of being refused in turn.
    assert order[:2] == [(first, True), (second, True)]
    assert min(accepted) >= refused_at + 3
    assert after == {first: IssueState.SENT, second: IssueState.SENT}


def test_send_due_sends_other_issues_while_one_waits_for_a_retry(
    home: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Any wait hands the issue back. With a positive threshold, a loaded machine that took
    # longer than (Retry-After - threshold) between the 429 and the engine's look at the
    # wait would retry the first issue in place, and the order below would flip.
    monkeypatch.setattr("newsletter.publisher.HAND_BACK_SECONDS", 0.0)
    with mailgun_publisher(home, database_url, max_attempts=3) as (server, publisher):
        first, second = queued(
            publisher, *publisher.draft("weekly"), publisher.draft("every-article")[0]
        )
        server.faults.push("mailgun", Fault(FaultKind.RATE_LIMIT, nth=1, retry_after=4))
        reports = publisher.send_due()
        accepted = {c.metadata["nl_issue"]: c.at for c in server.recorder.copies("mailgun")}
        after = states(publisher, (first, second))
    # Both wait for the provider's Retry-After; then the second goes first: its retry came
    # due with the account's pause, the refused batch's a moment after (``DueRounds`` takes
    # issues up in that order however late the run wakes).
    assert accepted[str(second)] < accepted[str(first)]
    assert [(r.issue_id, r.final_state, r.retries) for r in reports] == [
        (first, "sent", 1), (second, "sent", 0),
    ]
    assert reports[0].recipients_sent > 0 and reports[0].retry_at is None
    assert after == {first: IssueState.SENT, second: IssueState.SENT}


def test_an_issue_another_sender_finished_meanwhile_is_no_failure(
    home: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with mailgun_publisher(home, database_url) as (_server, publisher):
        (issue_id,) = queued(publisher, publisher.draft("every-article")[0])
        publisher.send_due()
        # Found due a moment before the other sender finished it: the race of several workers.
        listed: list[list[int]] = [[issue_id], [issue_id]]
        monkeypatch.setattr(publisher, "due_issues", lambda: listed.pop() if listed else [])
        report = Worker(publisher, once=True).run()
        again = publisher.send_due()
    assert (report.failed, report.sent, again) == ({}, [], [])


def test_the_dispatcher_hands_back_an_issue_whose_retry_is_far_off(
    home: Path, database_url: str
) -> None:
    with mailgun_publisher(home, database_url) as (server, publisher):
        first, second = queued(
            publisher, *publisher.draft("weekly"), publisher.draft("every-article")[0]
        )
        wait = DISPATCH_SECONDS + 30
        server.faults.push("mailgun", Fault(FaultKind.RATE_LIMIT, nth=1, retry_after=wait))
        started = time.monotonic()
        reports = Runtime(publisher.settings, publisher.store).send_due()
        took = time.monotonic() - started
        after = states(publisher, (first, second))
    assert took < DISPATCH_SECONDS  # the provider's wait was not slept on
    assert [(r.issue_id, r.retry_at is not None) for r in reports][:2] == [
        (first, True), (second, True),  # the second waits for the provider too
    ]
    assert sum(server.recorder.counts.values()) == 0
    assert after == {first: IssueState.SENDING, second: IssueState.SENDING}


def test_finishing_at_the_same_moment_lets_one_win(home: Path, database_url: str) -> None:
    settings = outbox_settings(home, database_url)
    stores = [Store.open(database_url) for _ in range(2)]
    try:
        first = Publisher(settings, stores[0])
        first.collect()
        [issue_id] = first.draft("weekly")
        first.queue(issue_id)
        first.send_issue(issue_id)  # sends; then pretend it is still being finished
        with stores[0].engine.begin() as conn:
            issue_store.transition(conn, issue_id, IssueState.QUEUED, stores[0].now(), "again")
            issue_store.transition(conn, issue_id, IssueState.SENDING, stores[0].now(), "again")
        barrier = threading.Barrier(2)
        answers: list[str] = []

        def finish(store: Store) -> None:
            barrier.wait()
            answers.append(Publisher(settings, store).finish(issue_id)[0])

        threads = [threading.Thread(target=finish, args=(s,)) for s in stores]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with stores[0].engine.connect() as conn:
            moves = [e["to"] for e in issue_store.events(conn, issue_id)]
    finally:
        for store in stores:
            store.close()
    assert answers == ["sent", "sent"]
    assert moves.count("sent") == 2  # the first send, and exactly one of the two finishes


def outbox_settings(home: Path, database_url: str) -> Settings:
    return load_settings(home, environ={}).with_changes(
        database_url=database_url, lookback_days=3650
    )
