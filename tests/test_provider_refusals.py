"""A provider that refuses the credentials, or cannot be reached: one message that names the
variable to check and the command that carries on, logged once for the issue however many
sender threads met the refusal. Each provider's real fake server gives its own 401/403."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from newsletter.config import Secret
from newsletter.delivery import backoff
from newsletter.devtools.fakeprovider import FakeProviderServer, Fault, FaultKind
from newsletter.devtools.fakeprovider.core import FakeRequest, Outcome
from newsletter.models import IssueState
from newsletter.publisher import Publisher
from newsletter.store import Store
from newsletter.store import issues as issue_store
from tests.servers.fake_provider import provider_settings

SENDERS = 3
#: Far above the moment the three senders need to post; only a hung send gets near it.
GATHER_SECONDS = 30.0


class GatheringServer(FakeProviderServer):
    """The fake provider, answering no send request until ``SENDERS`` of them are open: every
    sender thread is in flight when the first refusal comes back."""

    def __init__(self) -> None:
        super().__init__()
        self.gathered = threading.Event()
        self._open = 0
        self._lock = threading.Lock()

    def handle(self, request: FakeRequest) -> Outcome:
        if request.method == "POST" and not request.path.startswith("/_fake/"):
            with self._lock:
                self._open += 1
                if self._open == SENDERS:
                    self.gathered.set()
            assert self.gathered.wait(GATHER_SECONDS), "the senders did not all post"
        return super().handle(request)


@contextmanager
def publisher_for(server: FakeProviderServer, home: Path, database_url: str, provider: str,
                  **changes: Any) -> Iterator[Publisher]:
    settings = provider_settings(
        server, home, provider, database_url=database_url, lookback_days=3650,
        secret_key=Secret("refusal-test-signing-key"), batch_size=2, concurrency=SENDERS,
        processes=1, **changes,
    )
    store = Store.open(database_url)
    try:
        publisher = Publisher(settings, store)
        publisher.collect()
        yield publisher
    finally:
        store.close()


def paused_reason(publisher: Publisher, issue_id: int) -> str:
    with publisher.store.engine.connect() as conn:
        record = issue_store.get(conn, issue_id)
    assert record.state == IssueState.PAUSED
    return record.pause_reason


REFUSALS = [
    ("postmark", "Postmark refused the credentials (401 Unauthorized: ",
     "check POSTMARK_SERVER_TOKEN"),
    ("mailgun", "Mailgun refused the credentials (401 Unauthorized: ", "check MAILGUN_API_KEY"),
    ("sendgrid", "SendGrid refused the credentials (401 Unauthorized: ",
     "check SENDGRID_API_KEY"),
    ("resend", "Resend refused the credentials (403 Forbidden: ", "check RESEND_API_KEY"),
    ("brevo", "Brevo refused the credentials (401 Unauthorized: ", "check BREVO_API_KEY"),
    ("ses", "Amazon SES refused the credentials (403 Forbidden: ",
     "check SES_ACCESS_KEY_ID and SES_SECRET_ACCESS_KEY"),
]


@pytest.mark.parametrize(("provider", "opening", "check"), REFUSALS,
                         ids=[r[0] for r in REFUSALS])
def test_refused_credentials_are_told_once_with_the_variable_and_the_command(
    home: Path, database_url: str, caplog: pytest.LogCaptureFixture,
    provider: str, opening: str, check: str,
) -> None:
    with GatheringServer() as server, \
            publisher_for(server, home, database_url, provider) as publisher:
        server.faults.push(provider, Fault(FaultKind.UNAUTHORIZED, times=100))
        [issue_id] = publisher.draft("weekly")
        publisher.queue(issue_id)
        with caplog.at_level(logging.INFO):
            report = publisher.send_issue(issue_id)
        assert server.recorder.requests[provider] == SENDERS  # each refused on its own
        stored = paused_reason(publisher, issue_id)

    then = f", then run: newsletter issue resume {issue_id}"
    assert report.paused.startswith(opening)
    assert report.paused.endswith(f"): {check}{then}")
    assert stored == report.paused
    told = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in told] == [f"issue {issue_id} paused: {report.paused}"]


def closed_port() -> int:
    """A local port nothing listens on (bound a moment ago, then let go)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_provider_that_cannot_be_reached_names_its_address_variable(
    home: Path, database_url: str, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(backoff, "BASE_SECONDS", 0.02)  # waits of tens of milliseconds
    address = f"http://127.0.0.1:{closed_port()}"
    with FakeProviderServer() as server, \
            publisher_for(server, home, database_url, "mailgun", mailgun_base_url=address,
                          max_attempts=2) as publisher:
        [issue_id] = publisher.draft("weekly")
        publisher.queue(issue_id)
        with caplog.at_level(logging.INFO):
            report = publisher.send_issue(issue_id)
        stored = paused_reason(publisher, issue_id)

    refused = f"could not connect to {address}: [Errno 111] Connection refused"
    assert report.paused.startswith("provider unavailable, ")  # 2 to 4: the senders start at once
    assert report.paused.endswith(f" attempts in a row failed: mailgun: {refused}: check "
                                  "MAILGUN_BASE_URL")
    assert stored == report.paused
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [f"issue {issue_id} paused: {report.paused}"]


def test_an_account_refusal_keeps_the_providers_words_and_names_the_command(
    home: Path, database_url: str,
) -> None:
    """Not the credentials but the account or its settings (Mailgun's 404 for a domain it
    does not know): the provider's words, and what to run once that is put right."""
    with FakeProviderServer() as server, \
            publisher_for(server, home, database_url, "mailgun",
                          mailgun_domain="typo.example.org") as publisher:
        [issue_id] = publisher.draft("weekly")
        publisher.queue(issue_id)
        report = publisher.send_issue(issue_id)
    assert report.paused == (
        "mailgun: HTTP 404: Domain not found: typo.example.org (check MAILGUN_DOMAIN and "
        f"MAILGUN_BASE_URL); put that right, then run: newsletter issue resume {issue_id}"
    )
