"""Helper processes that share one large send: every core for an issue big enough to need it.

One process sends batches as fast as one core computes them: its sender threads share
the interpreter lock, and each recipient's merge values, unsubscribe token and part of the
request body are computed in Python. A large issue is therefore shared with helper
processes, started with ``spawn`` (no state inherited: no connection, lock or thread of the
parent's). Each helper is an ordinary worker on the ledger: it claims batches under a
lease, records every outcome, and shares the provider's rate limits through the database,
so nothing here changes what is sent or how it is recorded. A helper that dies leaves its
lease to the engine's recovery, exactly as a dead ``newsletter worker`` would.

Helpers send until no batch is due, then report and exit; retries that come due later are
the parent's, whose engine stays until the issue is done. Their progress reaches the
parent's progress display through a queue.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from multiprocessing.queues import SimpleQueue
from types import TracebackType
from typing import Any

from ..config import Settings
from ..store import Store, ledger
from .engine import Progress, SendReport

log = logging.getLogger(__name__)

#: A helper costs about a second to start; below this many batches each it is not worth it.
MIN_BATCHES_PER_PROCESS = 8


def helper_count(settings: Settings, pending_batches: int) -> int:
    """How many helpers to start beside this process for ``pending_batches``."""
    wanted = settings.processes or os.cpu_count() or 1
    return max(0, min(wanted, pending_batches // MIN_BATCHES_PER_PROCESS) - 1)


def helpers_for(
    settings: Settings, store: Store, issue_id: int, progress: Progress | None
) -> Helpers:
    """Helpers for what is left of the issue (none for a small one)."""
    with store.engine.connect() as conn:
        pending = ledger.open_work(conn, issue_id)
    return Helpers(settings, issue_id, helper_count(settings, pending), progress)


@dataclass(frozen=True, slots=True)
class HelperShare:
    """What one helper did, sent back to the parent when it is done."""

    recipients_sent: int
    batches_sent: int
    retries: int
    unknown_batches: int
    paused: str

    @classmethod
    def of(cls, report: SendReport) -> HelperShare:
        return cls(
            report.recipients_sent,
            report.batches_sent,
            report.retries,
            report.unknown_batches,
            report.paused,
        )

    def add_to(self, report: SendReport) -> None:
        report.by_helpers.append(self.recipients_sent)
        report.recipients_sent += self.recipients_sent
        report.batches_sent += self.batches_sent
        report.retries += self.retries
        report.unknown_batches += self.unknown_batches
        report.paused = report.paused or self.paused


class Helpers:
    """``with Helpers(settings, issue_id, count, progress) as helpers:`` — the parent sends
    meanwhile; on leaving, the helpers are waited for and ``helpers.add_to(report)`` adds
    their shares. The issue must be sending, its audience frozen."""

    def __init__(
        self, settings: Settings, issue_id: int, count: int, progress: Progress | None
    ) -> None:
        self.settings = settings
        self.issue_id = issue_id
        self.count = count
        self.progress = progress
        self.shares: list[HelperShare] = []
        self._context = multiprocessing.get_context("spawn")
        self._queue: SimpleQueue[tuple[str, Any]] = self._context.SimpleQueue()
        self._processes: list[BaseProcess] = []
        self._reader = threading.Thread(target=self._read, name="helper-progress", daemon=True)

    def __enter__(self) -> Helpers:
        if self.count:
            self._reader.start()
        level = logging.getLogger().getEffectiveLevel()
        for n in range(self.count):
            process = self._context.Process(
                target=send_share,
                args=(self.settings, self.issue_id, self._queue, level),
                name=f"newsletter-helper-{n + 1}",
                daemon=True,  # a parent that exits normally takes its helpers along
            )
            process.start()
            self._processes.append(process)
        if self.count:
            log.info("issue %s: %s helper process(es) share the send", self.issue_id, self.count)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if kind is not None:  # the parent stops: the helpers finish their batches in flight
            for process in self._processes:
                if process.pid is not None:
                    os.kill(process.pid, signal.SIGTERM)
        for process in self._processes:
            process.join()
            if process.exitcode != 0:
                log.warning(
                    "%s exited with %s; its batches in flight are recovered by the ledger",
                    process.name,
                    process.exitcode,
                )
        if self.count:
            self._queue.put(("done", None))
            self._reader.join()
        self._queue.close()

    def add_to(self, report: SendReport) -> None:
        for share in self.shares:
            share.add_to(report)

    def _read(self) -> None:
        while True:
            kind, value = self._queue.get()
            if kind == "done":
                return
            if kind == "share":
                self.shares.append(value)
            elif kind == "progress" and self.progress is not None:
                self.progress(value)


def send_share(
    settings: Settings, issue_id: int, queue: SimpleQueue[tuple[str, Any]], log_level: int
) -> None:
    """A helper's whole life: send batches of the issue until none is due, then report."""
    # Ctrl-C reaches the whole process group; the parent decides, and asks with SIGTERM.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from ..publisher import Publisher  # not at the top: the publisher imports this module

    store = Store.open(settings.database_url)
    try:
        publisher = Publisher(settings, store)
        engine = publisher.engine()
        signal.signal(signal.SIGTERM, lambda *_: engine.stop())
        report = SendReport(issue_id)
        engine.send_round(publisher.prepared(issue_id), report, _forward(queue))
        queue.put(("share", HelperShare.of(report)))
    finally:
        store.close()


def _forward(queue: SimpleQueue[tuple[str, Any]]) -> Callable[[int], None]:
    def progress(count: int) -> None:
        if count:  # the parent counts what is left itself
            queue.put(("progress", count))

    return progress
