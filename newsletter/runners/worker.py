"""A long-running sender: start several, on one host or many, against one database.

Each worker looks for issues with work — queued ones that are due, and ones already
sending — and runs each through the same ``Engine`` as ``newsletter send``. Workers share
an issue batch by batch: a batch is claimed with ``FOR UPDATE SKIP LOCKED`` and a lease,
so no two workers send it; a worker that dies leaves its lease to run out (at once, for a
dead process on the same host), and the engine's recovery takes the batch over by the
ledger's rules. Rate limits are shared through the database, so adding workers never
raises the rate a provider sees.

An issue whose remaining batches all wait for a retry (a provider answered 429 or 5xx) is
set aside until then, and the worker sends other issues meanwhile instead of sleeping.

``stop()`` (SIGTERM) lets the batches in flight finish and be recorded; nothing new starts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.exc import SQLAlchemyError

from ..delivery.engine import Engine
from ..delivery.report import SendReport
from ..errors import IssueMovedOnError, NewsletterError, StoreError
from ..publisher import Publisher

log = logging.getLogger(__name__)

#: How long an issue that failed to start waits before this worker tries it again.
RETRY_FAILED_SECONDS = 60.0


@dataclass
class WorkerReport:
    """What one worker did: its share of each issue, and the issues it could not send."""

    sent: list[SendReport] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)

    @property
    def recipients_sent(self) -> int:
        return sum(r.recipients_sent for r in self.sent)


class Worker:
    """Sends whatever is due until stopped (or, with ``once``, until nothing is left)."""

    def __init__(
        self,
        publisher: Publisher,
        *,
        once: bool = False,
        poll_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.publisher = publisher
        self.settings = publisher.settings
        self.once = once
        self.poll_seconds = poll_seconds
        self.clock = clock
        self.stopping = threading.Event()
        self.engine = Engine(
            self.settings,
            publisher.store,
            publisher.provider,
            publisher.sending_values(),
            sleep=self._pause,
            hand_back_after=poll_seconds,
        )
        #: Issues set aside until this time on ``clock``: a retry not yet due, or a failure.
        self._not_before: dict[int, float] = {}

    @property
    def owner(self) -> str:
        return self.engine.owner

    def stop(self) -> None:
        """Finish the batches in flight, record them, take nothing new."""
        self.stopping.set()
        self.engine.stop()

    def run(self) -> WorkerReport:
        report = WorkerReport()
        self._announce()
        while not self.stopping.is_set():
            work = self._work()
            if not work:
                waiting = self._next_retry_in()
                if self.once and waiting is None:
                    break
                self.stopping.wait(self.poll_seconds if waiting is None else waiting)
                continue
            for issue_id in work:
                if self.stopping.is_set():
                    break
                self._send(issue_id, report)
        log.info(
            "worker %s: stopped; sent %s recipient(s) for %s issue(s)",
            self.owner,
            report.recipients_sent,
            len(report.sent),
        )
        return report

    def _announce(self) -> None:
        log.info(
            "worker %s: started with %s sender thread(s)%s",
            self.owner,
            self.settings.concurrency,
            " until nothing is left to send" if self.once else "",
        )
        if self.settings.lease_seconds <= self.settings.http_timeout:
            log.warning(
                "NEWSLETTER_LEASE_SECONDS (%s) is not above NEWSLETTER_HTTP_TIMEOUT (%s): a slow "
                "batch may be taken over by another worker while its request is still open",
                self.settings.lease_seconds,
                self.settings.http_timeout,
            )

    def _work(self) -> list[int]:
        """Due issues, less the ones that failed to start a moment ago."""
        try:
            due = self.publisher.due_issues()
        except SQLAlchemyError as exc:
            if self.once:
                raise StoreError(f"cannot read the issues to send: {exc}") from exc
            log.error("cannot read the issues to send (trying again): %s", exc)
            return []
        now = self.clock()
        return [i for i in due if self._not_before.get(i, 0.0) <= now]

    def _next_retry_in(self) -> float | None:
        """Seconds (at most a poll) until the soonest issue set aside for a retry may go on;
        None when no issue is waiting for one."""
        now = self.clock()
        ahead = [t - now for t in self._not_before.values() if now < t < float("inf")]
        return min([*ahead, self.poll_seconds]) if ahead else None

    def _send(self, issue_id: int, report: WorkerReport) -> None:
        log.info("issue %s: sending", issue_id)
        started = self.clock()
        try:
            sent = self.publisher.send_issue(issue_id, self._progress, self.engine,
                                             send_while_freezing=True)
        except IssueMovedOnError as exc:  # found due, then finished by another worker
            log.info("%s", exc)
            return
        except (NewsletterError, SQLAlchemyError) as exc:
            # One issue's trouble must not stop the others; a run with --once gives it up.
            log.error("issue %s: not sent: %s", issue_id, exc)
            report.failed[issue_id] = str(exc)
            wait = float("inf") if self.once else RETRY_FAILED_SECONDS
            self._not_before[issue_id] = self.clock() + wait
            return
        report.sent.append(sent)
        if sent.retry_at is not None:
            self._set_aside(issue_id, sent.retry_at)
            return
        log.info(
            "issue %s: %s; this worker sent %s recipient(s) in %s batch(es) in %.1fs; ledger: %s",
            issue_id,
            sent.final_state,
            sent.recipients_sent,
            sent.batches_sent,
            self.clock() - started,
            _describe(sent.counts),
        )

    def _set_aside(self, issue_id: int, retry_at: float) -> None:
        wait = max(0.0, retry_at - time.time())
        self._not_before[issue_id] = self.clock() + wait
        log.info("issue %s: every batch left waits for a retry; back in %.0fs", issue_id, wait)

    def _progress(self, _count: int) -> None:
        if self.stopping.is_set():  # a stop that came before the engine began its run
            self.engine.stop()

    def _pause(self, seconds: float) -> None:
        """The engine's waits between retries: cut short by a stop."""
        if self.stopping.wait(seconds):
            self.engine.stop()


def _describe(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no recipients"


__all__ = ["Worker", "WorkerReport"]
