"""Helper processes that share one large send: every core for an issue big enough to need it.

One process sends batches as fast as one core computes them: its sender threads share
the interpreter lock, and each recipient's merge values, unsubscribe token and part of the
request body are computed in Python. A large issue is therefore shared with helper
processes: fresh interpreters (``python -m newsletter.runners.helper``) that inherit no
connection, lock or thread of the parent's, nor re-run its main script, and are handed the
parent's settings on their standard input. Each helper is an ordinary worker on the
ledger: it claims batches under a lease, records every outcome, and shares the provider's
rate limits through the database, so nothing here changes what is sent or how it is
recorded. A helper that dies leaves its lease to the engine's recovery, exactly as a dead
``newsletter worker`` would.

Helpers send until no batch is due, then report and exit; retries that come due later are
the parent's, whose engine stays until the issue is done. Each helper tells the parent
what it sent, batch by batch, in lines on its standard output; its log goes to stderr.
A parent that stops (SIGTERM, Ctrl-C) stops its helpers; a helper whose parent died, even
by SIGKILL, finishes its batches in flight and takes no other: the send goes on when
``newsletter send`` runs again, as after any crash.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..config import Settings
from ..errors import NewsletterError
from ..processes import child_environment
from ..store import Store, tally
from ..store import issues as issue_store
from .engine import Engine
from .report import Progress, SendReport

log = logging.getLogger(__name__)

#: A helper costs about a second of a core to start, in which one process sends some
#: 20,000 recipients through an HTTP provider: below this many each it is not worth it.
MIN_RECIPIENTS_PER_PROCESS = 10_000


#: ``auto`` stops here, since each process holds about 110 MB; a number set by hand is
#: taken as it is.
AUTO_MAX_PROCESSES = 4
#: What a helper runs: named, not imported, since it drives the publisher from above.
HELPER_MODULE = "newsletter.runners.helper"


def helper_count(settings: Settings, recipients: int) -> int:
    """How many helpers to start beside this process for about ``recipients``."""
    wanted = settings.processes or min(os.cpu_count() or 1, AUTO_MAX_PROCESSES)
    return max(0, min(wanted, recipients // MIN_RECIPIENTS_PER_PROCESS) - 1)


def helpers_for(
    settings: Settings, store: Store, issue_id: int, progress: Progress | None, engine: Engine,
    *, batch_size: int, member_paths: Callable[[str], Sequence[Path]],
) -> Helpers:
    """Helpers for what is left of the issue (none for a small one), beside ``engine``.
    They are started before the audience is frozen, so that they send its first chunks
    while the rest is read: sized then by the list's member files (``member_paths`` of a
    list id)."""
    left = _recipients_left(store, issue_id, batch_size, member_paths)
    return Helpers(settings, issue_id, helper_count(settings, left), progress, engine)


#: A member file's bytes per member, about (an address, a name, commas, a line break).
BYTES_PER_MEMBER = 40


def _recipients_left(
    store: Store, issue_id: int, batch_size: int, member_paths: Callable[[str], Sequence[Path]]
) -> int:
    """About how many: the open batches when frozen, else what the member files hold."""
    with store.engine.connect() as conn:
        record = issue_store.get(conn, issue_id)
        if record.audience_frozen:
            return tally.open_work(conn, issue_id) * batch_size
    try:
        paths = member_paths(record.list_id)
    except NewsletterError:  # starting the issue will say what is wrong
        return 0
    return sum(path.stat().st_size for path in paths if path.is_file()) // BYTES_PER_MEMBER


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
    """``with Helpers(settings, issue_id, count, progress, engine) as helpers:`` — the
    parent sends with ``engine`` meanwhile; on leaving, the helpers are waited for (asked
    to stop first if the parent's engine was stopped or failed) and
    ``helpers.add_to(report)`` adds their shares."""

    def __init__(
        self,
        settings: Settings,
        issue_id: int,
        count: int,
        progress: Progress | None,
        engine: Engine,
    ) -> None:
        self.settings = settings
        self.issue_id = issue_id
        self.count = count
        self.progress = progress
        self.engine = engine
        self.shares: list[HelperShare] = []
        self._processes: list[subprocess.Popen[bytes]] = []
        self._readers: list[threading.Thread] = []
        self._lock = threading.Lock()

    def __enter__(self) -> Helpers:
        level = logging.getLogger().getEffectiveLevel()
        task = pickle.dumps((self.settings, self.issue_id, level))
        for n in range(self.count):
            self._start(n + 1, task)
        if self.count:
            log.info("issue %s: %s helper process(es) share the send", self.issue_id, self.count)
        return self

    def _start(self, number: int, task: bytes) -> None:
        process = subprocess.Popen(
            [sys.executable, "-m", HELPER_MODULE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=child_environment(),
        )
        assert process.stdin is not None and process.stdout is not None
        try:
            with process.stdin:
                process.stdin.write(task)
        except BrokenPipeError:  # it died at once: its exit code is logged on leaving
            pass
        self._processes.append(process)
        reader = threading.Thread(target=self._read, args=(process.stdout,), daemon=True)
        reader.name = f"helper-{number}"
        reader.start()
        self._readers.append(reader)

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        stopping = kind is not None or self.engine.stopped
        if stopping:  # the helpers finish their batches in flight, and take no other
            for process in self._processes:
                process.send_signal(signal.SIGTERM)
        for process, reader in zip(self._processes, self._readers, strict=True):
            code = process.wait()
            reader.join()
            if code != 0 and not stopping:
                log.warning(
                    "helper process %s exited with %s; the ledger recovers its batches in "
                    "flight",
                    process.pid,
                    code,
                )

    def add_to(self, report: SendReport) -> None:
        for share in self.shares:
            share.add_to(report)

    def _read(self, stream: IO[bytes]) -> None:
        with stream:
            for line in stream:
                kind, _, value = line.decode().partition(" ")
                if kind == "progress" and self.progress is not None:
                    self.progress(int(value))
                elif kind == "share":
                    with self._lock:
                        self.shares.append(HelperShare(**json.loads(value)))

