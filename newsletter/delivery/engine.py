"""The send loop, the same for every provider.

For each batch: claim it (``sending``, committed), wait for the rate limiter, commit that its
request starts (``request_start``), call the provider, record the outcome (committed).
Transient failures go back to ``pending`` with backoff, and the senders wait for the
provider (``outage``); auth failures, and a provider down for good, pause the issue; a
lost answer marks the batch ``unknown`` unless the provider is idempotent (the
same key is sent again) or can tell what happened (``reconcile``). Several threads, and
processes (workers, or a send's helpers: ``fanout``), share one issue's batches.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from sqlalchemy import Connection

from ..bulkwork import fewer_collections
from ..config import Settings
from ..errors import (
    NewsletterError,
    PermanentProviderError,
    ProviderAuthError,
    ProviderError,
    TransientProviderError,
    UnknownOutcomeError,
)
from ..models import BatchState, DeliveryStatus, IssueState
from ..processes import current_owner
from ..store import Store, ledger, suppressions, tally
from ..store import issues as issue_store
from ..store.audience import freeze_going_on
from . import backoff
from .advice import refused
from .base import BatchRecipient, BatchResult, OutgoingBatch, PreparedIssue, Provider
from .outage import UNAVAILABLE, ProviderHealth, Start
from .prepare import RecipientValues
from .ratelimit import LimiterFactory, provider_limits
from .ratelimit_db import SharedBuckets
from .report import Progress, SendReport
from .request_start import LeaseLost, RequestStart
from .screening import send_screened

log = logging.getLogger(__name__)

#: How often a sender with nothing left to claim looks whether other workers' batches in
#: flight have settled: often enough that a send ends a moment after its last batch.
IN_FLIGHT_POLL_SECONDS = 0.1
#: How often a sender with nothing to claim looks for the next chunk of a freeze.
AUDIENCE_POLL_SECONDS = 0.05
#: A named tuple made from a tuple without its Python-level ``__new__`` (one per recipient).
_recipient = tuple.__new__


class Engine:
    """Delivers one issue's pending batches through ``provider``, recording every step."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        provider: Provider,
        values: RecipientValues,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        limiters: LimiterFactory | None = None,
        hand_back_after: float | None = None,
        health: ProviderHealth | None = None,
    ) -> None:
        """``hand_back_after``: when every batch left waits longer than this for a retry,
        return (``SendReport.retry_at``) so the caller can send other issues meanwhile (None:
        wait in place). ``health``: what this process's earlier engines saw of the provider."""
        self.settings = settings
        self.hand_back_after = hand_back_after
        self.store = store
        self.provider = provider
        self.values = values
        self.clock = clock
        self.sleep = sleep
        self.owner = current_owner()
        # A provider's limits are per account, so by default every process shares them.
        self.requests, self.messages = provider_limits(
            settings, provider, limiters or SharedBuckets(store)
        )
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.health = health or ProviderHealth(clock)
        self.starting = RequestStart(store, self.owner, settings.lease_seconds, clock)

    # -- the whole issue ------------------------------------------------------------------
    def run(self, prepared: PreparedIssue, progress: Progress | None = None) -> SendReport:
        """Send every pending batch; ``progress(0)`` first, then the size of each batch sent."""
        report = SendReport(prepared.issue_id)
        self._stop.clear()
        if progress is not None:
            progress(0)  # the audience is frozen: a progress display can count what is left
        while not self._stop.is_set():
            self.send_round(prepared, report, progress)
            if self._stop.is_set() or not self._wait_for_retries(prepared.issue_id, report):
                break
        return report

    def send_round(
        self, prepared: PreparedIssue, report: SendReport, progress: Progress | None = None
    ) -> None:
        """Take over dead workers' batches, then send batches until none is due now."""
        # Every round, not just the first: another worker may have died since.
        self.recover(prepared, report)
        workers = max(1, self.settings.concurrency)
        with fewer_collections(), ThreadPoolExecutor(workers, thread_name_prefix="sender") as pool:
            futures = [pool.submit(self._work, prepared, report, progress) for _ in range(workers)]
            try:
                for future in futures:
                    future.result()
            except BaseException as exc:  # Ctrl-C or a sender's error: the batches in flight
                if isinstance(exc, KeyboardInterrupt):  # finish and are recorded, none starts
                    log.warning("interrupted: finishing the batches in flight, starting no other")
                self.stop()
                raise
            finally:
                self.values.close()  # the kept tokens' connections; opened again if needed

    def _wait_for_retries(self, issue_id: int, report: SendReport) -> bool:
        """Sleep until the earliest pending retry is due; False when nothing is left, or
        when the wait is long enough to hand the issue back (``report.retry_at``)."""
        with self.store.engine.begin() as conn:
            if tally.open_work(conn, issue_id) == 0:
                return False
            due = tally.earliest_retry(conn, issue_id)
        if due is None:  # only in-flight batches held by other workers remain
            self.sleep(IN_FLIGHT_POLL_SECONDS)
            return self._issue_state(issue_id) == IssueState.SENDING
        due = max(due, self.health.quiet_until())  # the provider failed: its wait too
        wait = max(0.0, due - self.clock())
        if self.hand_back_after is not None and wait > self.hand_back_after:
            report.retry_at = due
            return False
        self.sleep(min(wait, 60.0))
        return self._issue_state(issue_id) == IssueState.SENDING

    def _issue_state(self, issue_id: int) -> IssueState:
        with self.store.engine.connect() as conn:
            return issue_store.state_of(conn, issue_id)

    def stop(self) -> None:
        """Finish the batches in flight, take no new ones (SIGTERM)."""
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    # -- one worker thread ----------------------------------------------------------------
    def _work(self, prepared: PreparedIssue, report: SendReport, progress: Progress | None) -> None:
        try:
            # A batch claimed with the last one's outcome is in flight: it goes, even if the
            # engine has been stopped meanwhile.
            batch: ledger.ClaimedBatch | None = None
            while batch is not None or not self._stop.is_set():
                batch = batch or self._claim(prepared.issue_id)
                if batch is not None:
                    batch = self._deliver(prepared, batch, report, progress)
                elif self._audience_growing(prepared.issue_id):
                    self._stop.wait(AUDIENCE_POLL_SECONDS)
                else:
                    return
        finally:
            self.provider.close()

    def _audience_growing(self, issue_id: int) -> bool:
        """Another worker is freezing the audience: more batches are coming."""
        with self.store.engine.connect() as conn:
            return freeze_going_on(issue_store.get(conn, issue_id), self.clock())

    def _claim(self, issue_id: int) -> ledger.ClaimedBatch | None:
        with self.store.engine.begin() as conn:
            return self._claim_in(conn, issue_id)

    def _claim_in(self, conn: Connection, issue_id: int) -> ledger.ClaimedBatch | None:
        """The next due batch, in the caller's transaction; None once the engine is stopped
        or the issue is no longer sending (paused, cancelled), which also stops the engine."""
        if self._stop.is_set():
            return None
        if issue_store.state_of(conn, issue_id) != IssueState.SENDING:
            self._stop.set()
            return None
        start = self.health.start()  # after a temporary failure: one probe at a time
        if start is Start.WAIT:
            return None
        claimed = ledger.claim(conn, issue_id, owner=self.owner, now=self.clock(),
                               lease_seconds=self.settings.lease_seconds, at=self.store.now(),
                               untried_first=start is Start.PROBE)
        if claimed is None:
            self.health.done()
        return claimed

    def _outgoing(self, prepared: PreparedIssue, claimed: ledger.ClaimedBatch) -> OutgoingBatch:
        with self.store.engine.connect() as conn:
            rows = ledger.open_rows(conn, claimed.id, with_fields=prepared.uses_member_fields)
        default_list = prepared.list_id
        with self.values.batch(prepared.field_names, default_list, claimed.seq, rows) as values:
            recipients = [  # named tuples made in C, as ``Recipient`` on the lean member path
                _recipient(BatchRecipient, (rid, email, name,
                                            values(email, name, list_id or default_list, fields)))
                for rid, email, name, fields, list_id in rows
            ]
        claimed_at = claimed.lease_until - self.settings.lease_seconds
        return OutgoingBatch(
            claimed.id, claimed.seq, claimed.idempotency_key, recipients, max(0.0, claimed_at)
        )

    def _deliver(self, prepared: PreparedIssue, claimed: ledger.ClaimedBatch,
                 report: SendReport, progress: Progress | None) -> ledger.ClaimedBatch | None:
        """Send one batch and record its outcome; returns the next batch when it was claimed
        in the same transaction as a successful outcome (one write lock for both on SQLite)."""
        try:
            return self._attempt(prepared, claimed, report, progress)
        except LeaseLost:
            log.warning("batch %s was taken over by another worker after this one's lease ran "
                        "out; it settles the batch", claimed.seq)
            return None
        finally:
            self.health.done()  # a probe that ended without a word on the provider

    def _attempt(
        self,
        prepared: PreparedIssue,
        claimed: ledger.ClaimedBatch,
        report: SendReport,
        progress: Progress | None,
    ) -> ledger.ClaimedBatch | None:
        batch = self._outgoing(prepared, claimed)
        if batch.recipients:
            self.requests.acquire()
            self.messages.acquire(len(batch.recipients))
            batch = self.starting.begin(prepared, claimed, batch)  # less the unsubscribed
        if not batch.recipients:
            self._finish(claimed.id, BatchState.SENT)
            return None
        try:
            result = send_screened(self.provider, prepared, batch)  # unbuildable copies fail
        except ProviderAuthError as exc:
            self._pause(claimed, refused(exc, claimed.issue_id), report)
        except TransientProviderError as exc:
            self._retry_or_fail(claimed, exc, report)
        except UnknownOutcomeError as exc:
            self._unknown(prepared, batch, claimed, exc, report)
        except PermanentProviderError as exc:
            self._fail(claimed.id, str(exc), report, len(batch.recipients))
        else:
            following = self.record(prepared, batch, claimed, result, report, claim_next=True)
            if progress is not None:
                progress(len(batch.recipients))
            return following
        return None

    # -- outcomes -------------------------------------------------------------------------
    @contextmanager
    def _owned(self, batch_id: int) -> Iterator[Connection]:
        """A transaction that writes a batch's outcome only while this worker holds its lease.

        A worker stalled past its lease may find the batch taken over; then nothing it would
        write is kept (``LeaseLost``), and the worker that took over settles the batch.
        """
        with self.store.engine.begin() as conn:
            if not ledger.hold(conn, batch_id, self.owner, at=self.store.now()):
                raise LeaseLost(batch_id)
            yield conn

    def record(
        self,
        prepared: PreparedIssue,
        batch: OutgoingBatch,
        claimed: ledger.ClaimedBatch,
        result: BatchResult,
        report: SendReport,
        *,
        claim_next: bool = False,
    ) -> ledger.ClaimedBatch | None:
        """Write a batch's outcome; with ``claim_next``, also claim the next batch."""
        now = self.store.now()
        batch_wide_id = result.provider_batch_id
        self.health.succeeded()
        with self._owned(claimed.id) as conn:
            if result.uniformly_sent(batch):
                # The common case: the rows stay ``queued`` and read as the batch (sent).
                message_id = result.results[0].message_id
                batch_wide_id = batch_wide_id or message_id
                if message_id != batch_wide_id:  # an id per message after all: on each row
                    ledger.mark_rows(
                        conn, claimed.id, DeliveryStatus.SENT, at=now, message_id=message_id
                    )
                sent, failed = len(batch.recipients), 0
            else:
                sent, failed = self._record_each(conn, prepared, batch, claimed, result, report)
            ledger.finish_batch(
                conn, claimed.id, BatchState.SENT, at=now, provider_batch_id=batch_wide_id
            )
            following = self._claim_in(conn, prepared.issue_id) if claim_next else None
        with self._lock:
            report.batches_sent += 1
            report.recipients_sent += sent
            report.recipients_failed += failed
        return following

    def _record_each(
        self,
        conn: Connection,
        prepared: PreparedIssue,
        batch: OutgoingBatch,
        claimed: ledger.ClaimedBatch,
        result: BatchResult,
        report: SendReport,
    ) -> tuple[int, int]:
        """Per-recipient outcomes: failures, suppressions, retries of some recipients."""
        by_email = {r.email.lower(): r for r in batch.recipients}
        updates: list[dict[str, object]] = []
        retry_ids: list[int] = []
        now = self.store.now()
        for item in result.results:
            row = by_email.get(item.email.lower())
            if row is None:
                continue
            if item.status == DeliveryStatus.FAILED and item.retryable:
                retry_ids.append(row.recipient_id)
                continue
            updates.append(
                {
                    "rid": row.recipient_id,
                    "status": str(item.status),
                    "message_id": item.message_id,
                    "error": item.error[:1000],
                }
            )
            if item.suppress is not None:
                suppressions.add(
                    conn,
                    row.email,
                    item.suppress,
                    source=self.provider.name,
                    detail=item.error,
                    at=now,
                )
        unmentioned = "the provider's answer did not mention this recipient"
        updates += ledger.outcomes(result.unreported(batch), DeliveryStatus.UNKNOWN, unmentioned)
        if retry_ids:  # before any recipient row is written: see ``ledger.lock_issue``
            ledger.lock_issue(conn, prepared.issue_id)
        ledger.mark_each(conn, updates, now)
        if retry_ids:
            self._rebatch(conn, prepared.issue_id, retry_ids, claimed, report)
        sent = sum(u["status"] == DeliveryStatus.SENT for u in updates)
        failed = sum(u["status"] == DeliveryStatus.FAILED for u in updates)
        return sent, failed

    def _rebatch(
        self,
        conn: Connection,
        issue_id: int,
        ids: list[int],
        claimed: ledger.ClaimedBatch,
        report: SendReport,
    ) -> None:
        if claimed.attempts >= self.settings.max_attempts:
            given_up = "gave up after repeated temporary failures"
            failed = ledger.outcomes(ids, DeliveryStatus.FAILED, given_up)
            ledger.mark_each(conn, failed, self.store.now())
            return
        not_before = self.clock() + backoff.delay(claimed.attempts)
        ledger.rebatch(conn, issue_id, ids, at=self.store.now(), not_before=not_before)
        with self._lock:
            report.retries += 1

    def _retry_or_fail(
        self, claimed: ledger.ClaimedBatch, exc: ProviderError, report: SendReport
    ) -> None:
        in_a_row, quiet = self.health.failed(exc.retry_after)
        if in_a_row >= self.settings.max_attempts:  # nothing got through meanwhile
            reason = f"{UNAVAILABLE}, {in_a_row} attempts in a row failed: {exc}"
            self._pause(claimed, reason, report, outage=True)
            return
        if claimed.attempts >= self.settings.max_attempts:
            log.warning("batch %s failed for good after %s attempts: %s",
                        claimed.seq, claimed.attempts, exc)
            self._fail(claimed.id, f"gave up after {claimed.attempts} attempts: {exc}", report, 0)
            return
        wait = max(quiet, backoff.delay(claimed.attempts, exc.retry_after))
        log.info("batch %s: %s; retrying in %.1fs", claimed.seq, exc, wait)
        with self._owned(claimed.id) as conn:
            ledger.retry_later(conn, claimed.id, not_before=self.clock() + wait,
                               at=self.store.now(), error=str(exc))
        with self._lock:
            report.retries += 1

    def _fail(self, batch_id: int, error: str, report: SendReport, count: int) -> None:
        now = self.store.now()
        with self._owned(batch_id) as conn:
            ledger.mark_rows(conn, batch_id, DeliveryStatus.FAILED, at=now, error=error)
            ledger.finish_batch(conn, batch_id, BatchState.FAILED, at=now, error=error)
        with self._lock:
            report.recipients_failed += count

    def _finish(self, batch_id: int, state: BatchState) -> None:
        with self._owned(batch_id) as conn:
            ledger.finish_batch(conn, batch_id, state, at=self.store.now())

    def _pause(self, claimed: ledger.ClaimedBatch, reason: str, report: SendReport,
               *, outage: bool = False) -> None:
        """Credentials refused, or the provider down: every batch would fail alike, so stop.
        After an ``outage`` the batches get all their attempts again (the provider spent them)."""
        self._stop.set()
        now = self.store.now()
        with self._owned(claimed.id) as conn:
            ledger.retry_later(conn, claimed.id, not_before=0.0, at=now, error=reason)
            if outage:
                ledger.restart_attempts(conn, claimed.issue_id)
            paused = issue_store.pause_sending(conn, claimed.issue_id, now, reason)
        if paused or not report.paused:  # the report tells the reason the issue keeps
            report.paused = reason
        if paused:  # once per issue: the other senders met the same and found it paused
            log.error("issue %s paused: %s", claimed.issue_id, reason)

    def _unknown(
        self,
        prepared: PreparedIssue,
        batch: OutgoingBatch,
        claimed: ledger.ClaimedBatch,
        exc: ProviderError,
        report: SendReport,
    ) -> None:
        if self.provider.idempotent and claimed.attempts < self.settings.max_attempts:
            self._retry_or_fail(claimed, exc, report)  # same key: the provider drops a repeat
            return
        self.settle_unknown(prepared, batch, claimed, str(exc), report)

    def settle_unknown(
        self,
        prepared: PreparedIssue,
        batch: OutgoingBatch,
        claimed: ledger.ClaimedBatch,
        reason: str,
        report: SendReport,
    ) -> None:
        """Ask the provider what became of the batch; if it cannot say, hold it for a person."""
        try:
            found = self.provider.reconcile(prepared, batch)
        except NewsletterError as exc:
            log.warning("batch %s: reconciliation failed: %s", claimed.seq, exc)
            found = None
        if found is not None:
            self.record(prepared, batch, claimed, found, report)
            return
        now = self.store.now()
        with self._owned(claimed.id) as conn:
            ledger.mark_rows(conn, claimed.id, DeliveryStatus.UNKNOWN, at=now, error=reason)
            ledger.finish_batch(conn, claimed.id, BatchState.UNKNOWN, at=now, error=reason)
        with self._lock:
            report.unknown_batches += 1
        log.warning("batch %s: outcome unknown (%s); held for the operator", claimed.seq, reason)

    # -- after a crash ----------------------------------------------------------------------
    def recover(self, prepared: PreparedIssue, report: SendReport) -> None:
        """Batches left ``sending`` by a dead worker: pending again if their request never
        started, else resent if idempotent, else settled."""
        with self.store.engine.begin() as conn:
            stale = ledger.stale_batches(conn, prepared.issue_id, self.clock())
        for seen in stale:
            with self.store.engine.begin() as conn:
                claimed = ledger.take_over(conn, seen.id, self.owner, now=self.clock(),
                                           lease_seconds=self.settings.lease_seconds)
            if claimed is None:
                continue  # another live worker is recovering it
            log.warning("batch %s: taken over from a sender that stopped", claimed.seq)
            try:
                self._recover_one(prepared, claimed, report)
            except LeaseLost:
                log.warning("batch %s: taken over again by another worker", claimed.seq)

    def _recover_one(
        self, prepared: PreparedIssue, claimed: ledger.ClaimedBatch, report: SendReport
    ) -> None:
        if not claimed.request_started_at:  # it waited (rate limiter): nothing was sent
            with self._owned(claimed.id) as conn:
                ledger.release(conn, claimed.id, at=self.store.now())
            return
        if self.provider.idempotent:
            note, now = "resent after an interrupted send", self.store.now()
            with self._owned(claimed.id) as conn:
                ledger.retry_later(conn, claimed.id, not_before=0.0, at=now, error=note)
            return
        self.settle_unknown(
            prepared,
            self._outgoing(prepared, claimed),
            claimed,
            "the sender stopped while this batch was in flight",
            report,
        )
