"""A send the desk tests can watch: a provider that holds one request until the test lets it
go, and the example's weekly list made long enough for several batches.

    with watched_send(desk, hold_at=3) as send:
        send.provider.held.wait(30)   # the third batch is in flight
        ...                           # read the progress mid-send
        send.provider.released.set()
    # the send has finished: ``send.report`` says how
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from newsletter.config import Settings
from newsletter.delivery.base import (
    BatchResult,
    OutgoingBatch,
    PreparedIssue,
    Provider,
    RecipientResult,
)
from newsletter.delivery.report import SendReport
from newsletter.editor import editing
from newsletter.errors import TransientProviderError
from newsletter.models import DeliveryStatus, SuppressionReason
from newsletter.publisher import Publisher
from newsletter.store import suppressions
from tests.desk_support import Desk

#: Members of the weekly list: 23 addresses, one suppressed and one the provider refuses,
#: so 22 rows in 5 batches of 5 (4 + 1 = the last), 20 sent, 1 failed, 1 suppressed.
MEMBERS = [f"Reader.{n:02d}@Example.org" for n in range(23)]
SUPPRESSED = "reader.07@example.org"
REFUSED = "reader.11@example.org"
BATCH = 5


class GatedProvider(Provider):
    """Takes every batch, but holds request number ``hold_at`` (from 1) until ``released``
    is set, and refuses ``refused`` for good. Odd requests are sent under one message id
    (the ledger's rows stay queued), even ones under an id per recipient (each row marked)."""

    name = "gated"
    max_batch = BATCH
    idempotent = True

    def __init__(self, settings: Settings, *, hold_at: int, refused: str = REFUSED) -> None:
        super().__init__(settings)
        self.hold_at = hold_at
        self.refused = refused
        self.requests = 0
        self.held = threading.Event()
        self.released = threading.Event()
        self._lock = threading.Lock()

    def send_batch(self, issue: PreparedIssue, batch: OutgoingBatch) -> BatchResult:
        with self._lock:
            self.requests += 1
            number = self.requests
        if number == self.hold_at:
            self.held.set()
            if not self.released.wait(120):
                raise TransientProviderError("the test never let the held request go",
                                             provider=self.name)
        return self._answer(number, batch)

    def _answer(self, number: int, batch: OutgoingBatch) -> BatchResult:
        whole = f"<{batch.idempotency_key}@gated.example>"
        results = []
        for r in batch.recipients:
            if r.email.lower() == self.refused:
                results.append(RecipientResult(r.email, DeliveryStatus.FAILED,
                                               error="550 no such mailbox"))
                continue
            own = whole if number % 2 else f"<{r.recipient_id}.{batch.idempotency_key}@gated>"
            results.append(RecipientResult(r.email, DeliveryStatus.SENT, own))
        return BatchResult(results, whole if number % 2 else "")


@dataclass
class WatchedSend:
    provider: GatedProvider
    publisher: Publisher
    issue_id: int
    thread: threading.Thread | None = None
    report: SendReport | None = None
    errors: list[BaseException] = field(default_factory=list)

    def run(self) -> None:
        try:
            self.report = self.publisher.send_issue(self.issue_id)
        except BaseException as exc:
            self.errors.append(exc)

    def start(self) -> None:
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def finish(self) -> SendReport:
        """Let the held request go and wait for the send to end; its report."""
        self.provider.released.set()
        if self.thread is not None:
            self.thread.join(120)
            assert not self.thread.is_alive(), "the send did not finish"
        assert not self.errors, self.errors
        assert self.report is not None
        return self.report


def long_weekly_list(desk: Desk) -> None:
    """The weekly list of ``MEMBERS``, one of them suppressed."""
    rows = "".join(f"{address},Reader {n}\n" for n, address in enumerate(MEMBERS))
    (desk.settings.subscribers_dir / "weekly.csv").write_text("email,name\n" + rows)
    with desk.store.engine.begin() as conn:
        suppressions.add(conn, SUPPRESSED, SuppressionReason.MANUAL, source="test",
                         detail="asked by letter", at=desk.store.now())


def sending_settings(desk: Desk) -> Settings:
    """One sender, one batch at a time, no helper processes: the held request stops it."""
    return desk.settings.with_changes(batch_size=BATCH, concurrency=1, processes=1)


@contextmanager
def watched_send(desk: Desk, *, hold_at: int) -> Iterator[WatchedSend]:
    """The desk's weekly issue queued and sending in a thread through a ``GatedProvider``
    holding request ``hold_at``; the held request is let go when the block ends."""
    long_weekly_list(desk)
    settings = sending_settings(desk)
    provider = GatedProvider(settings, hold_at=hold_at)
    publisher = Publisher(settings, desk.store, provider=provider)
    editing.queue(publisher, desk.issue_id)
    send = WatchedSend(provider, publisher, desk.issue_id)
    send.start()
    try:
        yield send
    finally:
        provider.released.set()
        if send.thread is not None:
            send.thread.join(120)
