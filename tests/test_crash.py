"""Crash tests of the delivery ledger: SIGKILL the sender anywhere, resume, lose nobody.

A real sender process (``tests/crash_harness.py``) sends a 300-member issue in batches of
20 through the fake provider server, which runs here and so keeps its record when the
sender dies. The sender is SIGKILLed between two ledger commits (by a hook of its own), or
from here while the provider holds its request, or after a connection reset left its answer
lost. ``newsletter send`` in new processes then finishes the issue, and the provider's
record and the ledger are checked against the promises in ``tests/crash/verdict.py``; where
outcomes stayed unknown, ``newsletter issue retry --unknown`` and one more send deliver them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from newsletter.devtools.fakeprovider import FakeProviderServer
from newsletter.devtools.fakeprovider.core import FakeRequest, Fault, FaultKind, Outcome
from newsletter.store import Store, tally
from tests.crash.publication import (
    BATCH_SIZE,
    FREEZE_CHUNK,
    Audience,
    queue_again,
    queue_weekly_issue,
    sender_environment,
    write_members,
)
from tests.crash.sender import PROCESS_TIMEOUT, Sender
from tests.crash.verdict import (
    IDEMPOTENT,
    RECONCILING,
    UNSURE,
    Mailbox,
    Observation,
    OutboxFolder,
    ServerRecord,
    check_issue_reports_unknown,
    check_retried,
    check_settled,
    listing,
    observe,
)

SQLITE = "sqlite"
POSTGRESQL = "postgresql"


class HoldingServer(FakeProviderServer):
    """The fake provider, telling the test the moment it starts holding back an answer."""

    def __init__(self) -> None:
        super().__init__()
        self.holding = threading.Event()
        self.answered = threading.Event()

    def handle(self, request: FakeRequest) -> Outcome:
        outcome = super().handle(request)
        if outcome.fault is not None and outcome.fault.kind is FaultKind.SLOW:
            self.holding.set()  # the copies are recorded; the answer waits for the delay
        elif request.method == "POST" and not request.path.startswith("/_fake/"):
            self.answered.set()
        return outcome


@dataclass
class Scenario:
    """One queued issue, the processes that send it, and where its copies end up."""

    provider: str
    issue_id: int
    audience: Audience
    sender: Sender
    mailbox: Mailbox
    database_url: str

    def observe(self) -> Observation:
        return observe(self.database_url, self.issue_id, self.mailbox)

    def resume_and_check(self) -> Observation:
        report = self.sender.resume(self.issue_id)
        seen = self.observe()
        assert report["state"] == seen.state
        check_settled(seen, self.audience, self.provider)
        unknown = seen.with_status("unknown")
        assert report["recipients"].get("unknown", 0) == len(unknown)
        # Reconciling providers leave unknown only what they never received; the retry
        # path is the same for them, so it is exercised where doubt is the rule.
        if unknown and self.provider in UNSURE:
            self.retry_unknown(seen)
        return seen

    def retry_unknown(self, seen: Observation) -> None:
        """The operator's explicit choice: resend the unknown ones, accepting duplicates."""
        check_issue_reports_unknown(self.sender.show(self.issue_id), seen)
        count = len(seen.with_status("unknown"))
        answer = self.sender.retry_unknown(self.issue_id)
        noun = "recipient" if count == 1 else "recipients"
        expected = f"Issue {self.issue_id}: {count} unknown-outcome {noun} queued again."
        assert answer == expected
        self.sender.resume(self.issue_id)
        check_retried(seen, self.observe(), self.audience)


@pytest.fixture
def server() -> Iterator[HoldingServer]:
    running = HoldingServer()
    with running:
        yield running


Make = Callable[..., Scenario]


@pytest.fixture
def scenario_for(home: Path, database_url: str, server: HoldingServer, tmp_path: Path) -> Make:
    """``make(provider, concurrency=1, **variables)``: the issue queued, senders ready."""
    def make(provider: str, concurrency: int = 1, **variables: str) -> Scenario:
        audience = write_members(home)
        environment = sender_environment(provider, database_url, server.environment(),
                                         concurrency) | variables
        issue_id = queue_weekly_issue(home, environment)
        logs = tmp_path / "logs"
        logs.mkdir()
        print(f"sender output is kept in {logs}")
        return Scenario(provider, issue_id, audience, Sender(home, environment, logs),
                        mailbox_for(provider, home, issue_id, server), database_url)
    return make


def mailbox_for(provider: str, home: Path, issue_id: int, server: FakeProviderServer) -> Mailbox:
    if provider == "outbox":
        return OutboxFolder(home / "var" / "outbox" / f"issue-{issue_id}-weekly")
    return ServerRecord(server, provider)


def in_flight(seen: Observation) -> frozenset[str]:
    """Recipients of batches the dead sender left ``sending``."""
    return frozenset(e for e, row in seen.rows.items() if row.batch_state == "sending")


def wait_for(event: threading.Event, process: subprocess.Popen[bytes]) -> None:
    """Until the fake provider sets ``event``; fails at once if the sender ended first."""
    while not event.wait(0.05):
        assert process.poll() is None, f"the sender ended ({process.returncode}) too early"


# -- SIGKILL between ledger commits ---------------------------------------------------------
#: One worker thread, so exactly one batch is in flight when the sender dies.
KILL_POINTS = [
    (SQLITE, "freeze", 50, "mailgun"),
    (SQLITE, "freeze", 120, "resend"),
    (SQLITE, "frozen", 1, "sendgrid"),
    (SQLITE, "claimed", 1, "ses"),
    (SQLITE, "claimed", 4, "mailgun"),
    (SQLITE, "starting", 3, "sendgrid"),
    (SQLITE, "starting", 2, "postmark"),
    (SQLITE, "sent", 3, "postmark"),
    (SQLITE, "sent", 5, "outbox"),
    (SQLITE, "recording", 2, "brevo"),
    (SQLITE, "recorded", 7, "ses"),
    (SQLITE, "finishing", 1, "resend"),
    (POSTGRESQL, "freeze", 200, "mailgun"),
    (POSTGRESQL, "sent", 2, "sendgrid"),
    (POSTGRESQL, "recording", 6, "resend"),
]
#: The outcome of a batch is committed together with the claim of the next one.
IN_FLIGHT_POINTS = frozenset({"claimed", "starting", "sent", "recording", "recorded"})
#: Points where the batch in flight was claimed and never reached the provider.
UNSENT_POINTS = frozenset({"claimed", "starting", "recorded"})
#: Points where its request had not even started: nothing is in doubt, it simply goes again.
UNSTARTED_POINTS = frozenset({"claimed", "recorded"})


def expected_unknown(point: str, provider: str, flying: int) -> int:
    """Only the batch in flight can end unknown, and only when its request had started and
    nothing can settle it: idempotent providers resend it, reconciling ones find it unless
    it was never sent."""
    if point not in IN_FLIGHT_POINTS or point in UNSTARTED_POINTS or provider in IDEMPOTENT:
        return 0
    if provider in RECONCILING and point not in UNSENT_POINTS:
        return 0
    return flying


def one_batch(flying: frozenset[str]) -> bool:
    """A batch holds at most BATCH_SIZE rows: fewer where the list's suppressed addresses or
    repeated rows fell (a batch is a run of the member file, cut before those are dropped)."""
    return 0 < len(flying) <= BATCH_SIZE


@pytest.mark.parametrize(("database_url", "point", "nth", "provider"), KILL_POINTS,
                         indirect=["database_url"],
                         ids=[f"{d}-{p}-{n}-{v}" for d, p, n, v in KILL_POINTS])
def test_sigkill_between_commits_then_resume(
    scenario_for: Make, point: str, nth: int, provider: str,
) -> None:
    scenario = scenario_for(provider)
    scenario.sender.crash_at(point, nth)
    crashed = scenario.observe()
    assert crashed.state == "sending"
    if point == "freeze":  # only whole chunks of the audience were committed
        assert len(crashed.rows) == (nth - 1) // FREEZE_CHUNK * FREEZE_CHUNK
    flying = in_flight(crashed)
    assert one_batch(flying) if point in IN_FLIGHT_POINTS else not flying
    was_sent = point not in UNSENT_POINTS
    assert all(bool(crashed.received[e]) == was_sent for e in flying)
    seen = scenario.resume_and_check()
    assert len(seen.with_status("unknown")) == expected_unknown(point, provider, len(flying))


# -- SIGKILL while the audience is copied from the issue before -----------------------------
@pytest.mark.parametrize("database_url", [SQLITE, POSTGRESQL], indirect=True)
def test_sigkill_while_the_audience_is_copied_then_resume(
    scenario_for: Make, home: Path, server: HoldingServer,
) -> None:
    """The second issue to an unchanged list copies the first's audience, page by page; the
    copier dies with two pages committed and the third staged. The resumed send copies it
    again over what was committed, and applies a suppression added between the issues."""
    first = scenario_for("outbox")
    first.resume_and_check()
    left = "reader150@example.com"
    second_id = queue_again(home, first.sender.environment, first.issue_id, unsubscribed=left)
    second = Scenario("outbox", second_id,
                      Audience(first.audience.members, first.audience.suppressed | {left}),
                      first.sender, mailbox_for("outbox", home, second_id, server),
                      first.database_url)
    second.sender.crash_at("copying", 3)
    crashed = second.observe()
    assert (crashed.state, len(crashed.rows)) == ("sending", 2 * FREEZE_CHUNK)
    seen = second.resume_and_check()
    assert {e: r.status for e, r in seen.rows.items() if e != left} == {
        e: r.status for e, r in first.observe().rows.items() if e != left}


# -- SIGKILL while the request is on the wire -----------------------------------------------
@pytest.mark.parametrize(("database_url", "provider"),
                         [(SQLITE, "resend"), (SQLITE, "sendgrid"), (POSTGRESQL, "mailgun")],
                         indirect=["database_url"])
def test_sigkill_while_the_provider_holds_the_request(
    scenario_for: Make, server: HoldingServer, provider: str,
) -> None:
    scenario = scenario_for(provider, concurrency=3)
    server.faults.push(provider, Fault(FaultKind.SLOW, nth=3, delay=PROCESS_TIMEOUT))
    with scenario.sender.running() as process:
        wait_for(server.holding, process)
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait(PROCESS_TIMEOUT) == -signal.SIGKILL
    crashed = scenario.observe()
    held = {e for e in in_flight(crashed) if crashed.received[e]}
    assert held, f"the held batch is not in flight: {listing(in_flight(crashed))}"
    seen = scenario.resume_and_check()
    # Other workers' batches may have been claimed and not sent yet: only idempotent
    # providers settle those too. The held batch was accepted, so only SendGrid/SES doubt it.
    settled_as = "unknown" if provider in UNSURE else "sent"
    assert {seen.rows[e].status for e in held} == {settled_as}
    if provider in IDEMPOTENT:
        assert not seen.with_status("unknown")


# -- SIGKILL while claimed batches wait for the rate limiter -----------------------------------
#: One request per 1,000 seconds: the first batch goes at once, every other one waits.
CRAWL = "0.001"


def wait_until(condition: Callable[[], bool], process: subprocess.Popen[bytes]) -> None:
    """Until ``condition()`` holds; fails at once if the sender ended first."""
    while not condition():
        try:
            code = process.wait(0.05)
        except subprocess.TimeoutExpired:
            continue
        raise AssertionError(f"the sender ended ({code}) too early")


def batch_states(database_url: str, issue_id: int) -> dict[str, int]:
    store = Store.open(database_url)
    try:
        with store.engine.connect() as conn:
            return tally.batch_counts(conn, issue_id)
    finally:
        store.close()


@pytest.mark.parametrize(("database_url", "provider"),
                         [(SQLITE, "sendgrid"), (POSTGRESQL, "ses"), (SQLITE, "mailgun")],
                         indirect=["database_url"])
def test_sigkill_while_batches_wait_for_the_rate_limiter(
    scenario_for: Make, server: HoldingServer, provider: str,
) -> None:
    """Claimed batches that waited for the rate limiter never reached the provider: after a
    SIGKILL they are sent by the next run, and none is held as "may have been delivered"."""
    scenario = scenario_for(provider, concurrency=3, NEWSLETTER_RATE_REQUESTS=CRAWL)
    with scenario.sender.running() as process:
        # The first batch sent and recorded with the claim of the next; each of the three
        # senders holds a claimed batch, waiting for a token that comes in 1,000 s.
        def all_waiting() -> bool:
            states = batch_states(scenario.database_url, scenario.issue_id)
            return states.get("sent") == 1 and states.get("sending") == 3

        wait_until(all_waiting, process)
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait(PROCESS_TIMEOUT) == -signal.SIGKILL
    crashed = scenario.observe()
    waiting = in_flight(crashed)
    assert waiting and not any(crashed.received[e] for e in waiting)
    assert set(crashed.received) == crashed.with_status("sent")  # the first batch alone
    scenario.sender.environment = {**scenario.sender.environment,
                                   "NEWSLETTER_RATE_REQUESTS": "0"}
    seen = scenario.resume_and_check()
    assert not seen.with_status("unknown")
    assert seen.state == "sent"


@pytest.mark.parametrize("database_url", [SQLITE], indirect=True)
@pytest.mark.parametrize("provider", ["brevo", "postmark"])
def test_connection_reset_after_the_body_was_read_then_sigkill(
    scenario_for: Make, server: HoldingServer, provider: str,
) -> None:
    """The provider accepted the batch and reset the connection; the sender died deciding."""
    scenario = scenario_for(provider)
    server.faults.push(provider, Fault(FaultKind.RESET, nth=2))
    scenario.sender.crash_at("unknown", 1)
    crashed = scenario.observe()
    flying = in_flight(crashed)
    assert one_batch(flying) and all(crashed.received[e] == 1 for e in flying)
    seen = scenario.resume_and_check()
    assert not seen.with_status("unknown")


# -- crash after crash: each resume dies too, at the next point -----------------------------
#: Three workers, so several batches are in flight at each death. For Mailgun, ``sent`` and
#: ``recording`` may be reached while recovering, as a reconciled batch is recorded.
CHAIN = [("claimed", 2), ("sent", 1), ("recording", 1), ("recorded", 2)]


@pytest.mark.parametrize("database_url", [SQLITE], indirect=True)
@pytest.mark.parametrize("provider", ["mailgun", "brevo"])
def test_repeated_crashes_then_resume(scenario_for: Make, provider: str) -> None:
    scenario = scenario_for(provider, concurrency=3)
    for point, nth in CHAIN:
        scenario.sender.crash_at(point, nth)
    scenario.resume_and_check()


# -- a sender dies beside one that keeps running ---------------------------------------------
#: The survivor needs about 7 s at 2 requests a second; far less than this.
TAKEOVER_SECONDS = 20.0


@pytest.mark.parametrize("database_url", [POSTGRESQL], indirect=True)
def test_a_running_sender_takes_over_the_batch_of_one_killed_beside_it(
    scenario_for: Make, server: HoldingServer,
) -> None:
    """Two senders share the issue, as on PostgreSQL; one dies holding a claimed batch.

    The survivor had finished its start-up recovery before the other died, so only a
    recovery while it runs can settle that batch. Without one, it waits on the batch
    forever and the batch's recipients get nothing until some new sender starts.
    """
    scenario = scenario_for("resend", NEWSLETTER_RATE_REQUESTS="2")
    with scenario.sender.running() as survivor:
        wait_for(server.answered, survivor)
        scenario.sender.crash_at("claimed", 1)
        try:
            survivor.wait(TAKEOVER_SECONDS)
        except subprocess.TimeoutExpired:
            stuck = in_flight(scenario.observe())
            pytest.fail(f"the surviving sender still runs after {TAKEOVER_SECONDS:g} s, "
                        f"waiting on the dead sender's batch ({listing(stuck)})")
        assert survivor.returncode == 0
    seen = scenario.observe()
    check_settled(seen, scenario.audience, scenario.provider)
    assert seen.state == "sent"
