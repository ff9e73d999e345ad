"""What one engine's senders have lately seen of their provider.

When the provider asks to wait (``Retry-After``), or two attempts in a row fail (429,
5xx, no connection), the engine's senders stop: until the provider has answered again,
one batch at a time probes it, each after a wait that grows with the failures in a row
(the usual backoff, and never less than a ``Retry-After``). A provider that asks to slow
down, or is down, is then not hit by every thread at once, and the batches that wait keep their
attempts. A single failure among successes (the odd 502 of a large send) holds only its
own batch. A probe takes a batch never tried before when there is one, so a batch that
fails for reasons of its own is retried between others that go through, and is failed
once it runs out of attempts. When every attempt fails for
``max_attempts`` in a row (one to three minutes with the defaults), the provider is
unavailable: the engine pauses the issue, and nobody is failed for it. The next send,
worker or scheduler run after ``NEWSLETTER_OUTAGE_RESUME_MINUTES`` queues it again.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from ..errors import IssueStateError
from ..models import IssueState
from ..store import Store
from ..store import issues as issue_store
from ..store.issues import IssueRecord
from . import backoff

log = logging.getLogger(__name__)

#: How an issue's pause reason starts when the provider was down (and a later ``send``,
#: ``worker`` or the scheduler may resume it without a person: ``Publisher.due_issues``).
UNAVAILABLE = "provider unavailable"


class Start(enum.Enum):
    GO = "go"  # the provider answers: as many batches at once as there are senders
    PROBE = "probe"  # it failed lately: this one batch tries it
    WAIT = "wait"  # a probe is in flight, or the wait before the next one is not over


class ProviderHealth:
    """Shared by the threads of one engine; every method is thread-safe."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._failures_in_a_row = 0
        self._quiet_until = 0.0
        self._prober: int | None = None  # the thread whose batch is the probe in flight

    def start(self) -> Start:
        """May a sender start a batch now? ``PROBE`` makes it the only one in flight until
        ``failed``, ``succeeded`` or ``done``."""
        with self._lock:
            if not self._quiet_until:
                return Start.GO
            if self._prober is not None or self._clock() < self._quiet_until:
                return Start.WAIT
            self._prober = threading.get_ident()
            return Start.PROBE

    def failed(self, retry_after: float | None) -> tuple[int, float]:
        """A temporary failure: returns the failures in a row, this one included, and the
        wait before the next probe (the senders wait for it only from the second)."""
        with self._lock:
            self._failures_in_a_row += 1
            wait = backoff.delay(self._failures_in_a_row, retry_after)
            if retry_after is not None or self._failures_in_a_row > 1:
                self._quiet_until = self._clock() + wait
            self._prober = None
            return self._failures_in_a_row, wait

    def succeeded(self) -> None:
        """The provider took a batch: every sender may go again."""
        with self._lock:
            self._failures_in_a_row = 0
            self._quiet_until = 0.0
            self._prober = None

    def done(self) -> None:
        """The calling thread's probe, if it has one, ended some other way (nothing to
        claim, an answer that says nothing of the provider's health): the next may probe."""
        with self._lock:
            if self._prober == threading.get_ident():
                self._prober = None

    def quiet_until(self) -> float:
        """When the next probe may start (0.0 while the provider answers)."""
        with self._lock:
            return self._quiet_until


def resumes_at(record: IssueRecord, minutes: int) -> datetime | None:
    """When ``resume_after_outage`` will queue the issue again, if it will."""
    if record.state != IssueState.PAUSED or not record.pause_reason.startswith(UNAVAILABLE):
        return None
    return record.updated_at + timedelta(minutes=minutes) if minutes else None


def resume_after_outage(store: Store, minutes: int) -> list[int]:
    """Queue again the issues paused because the provider was down, ``minutes`` or more
    ago (0: never; a person resumes them). Returns their ids."""
    if not minutes:
        return []
    now, resumed = store.now(), []
    before = now - timedelta(minutes=minutes)
    with store.engine.begin() as conn:
        for issue_id in issue_store.paused_since(conn, UNAVAILABLE, before):
            try:
                issue_store.transition(conn, issue_id, IssueState.QUEUED, now,
                                       "resumed after the provider's outage", pause_reason="")
            except IssueStateError:  # another worker resumed it (or a person moved it) first
                continue
            resumed.append(issue_id)
    for issue_id in resumed:
        log.warning("issue %s: resumed %s minutes after the provider's outage", issue_id, minutes)
    return resumed
