"""Helper processes that share one large send: every core for an issue big enough to need it.

One process sends batches as fast as one core computes them: its sender threads share
the interpreter lock, and each recipient's merge values, unsubscribe token and part of the
request body are computed in Python. A large issue is therefore shared with helper
processes: fresh interpreters (``python -m newsletter.delivery.fanout``) that inherit no
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
import site
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from ..config import Settings
from ..errors import NewsletterError
from ..models import IssueState
from ..store import Store, tally
from ..store import issues as issue_store
from ..store.db import database_failure
from .engine import AUDIENCE_POLL_SECONDS, Engine
from .report import Progress, SendReport

if TYPE_CHECKING:
    from ..publisher import Publisher

log = logging.getLogger(__name__)

#: A helper costs about a second of a core to start, in which one process sends some
#: 20,000 recipients through an HTTP provider: below this many each it is not worth it.
MIN_RECIPIENTS_PER_PROCESS = 10_000


#: ``auto`` stops here, since each process holds about 110 MB; a number set by hand is
#: taken as it is.
AUTO_MAX_PROCESSES = 4


def helper_count(settings: Settings, recipients: int) -> int:
    """How many helpers to start beside this process for about ``recipients``."""
    wanted = settings.processes or min(os.cpu_count() or 1, AUTO_MAX_PROCESSES)
    return max(0, min(wanted, recipients // MIN_RECIPIENTS_PER_PROCESS) - 1)


def helpers_for(
    publisher: Publisher, issue_id: int, progress: Progress | None, engine: Engine
) -> Helpers:
    """Helpers for what is left of the issue (none for a small one), beside ``engine``.
    They are started before the audience is frozen, so that they send its first chunks
    while the rest is read: sized then by the list's member files."""
    settings = publisher.settings
    count = helper_count(settings, _recipients_left(publisher, issue_id))
    return Helpers(settings, issue_id, count, progress, engine)


#: A member file's bytes per member, about (an address, a name, commas, a line break).
BYTES_PER_MEMBER = 40


def _recipients_left(publisher: Publisher, issue_id: int) -> int:
    """About how many: the open batches when frozen, else what the member files hold."""
    with publisher.store.engine.connect() as conn:
        record = issue_store.get(conn, issue_id)
        if record.audience_frozen:
            return tally.open_work(conn, issue_id) * publisher.batch_size()
    try:
        paths = publisher.config.member_paths(record.list_id)
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
            [sys.executable, "-m", __name__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=_helper_environment(),
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


def _helper_environment() -> dict[str, str]:
    """The parent's environment; when this package is not installed in a site directory
    (a checkout run in place), its folder goes on the helper's import path."""
    package_root = str(Path(__file__).resolve().parents[2])
    if package_root in {str(Path(p).resolve()) for p in site.getsitepackages()}:
        return dict(os.environ)
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, path]))}


def send_share(settings: Settings, issue_id: int, channel: IO[str]) -> None:
    """A helper's work: send batches of the issue until none is due, then report."""
    from ..publisher import Publisher  # not at the top: the publisher imports this module

    store = Store.open(settings.database_url)
    try:
        share = _Share(Publisher(settings, store), issue_id, channel)
        signal.signal(signal.SIGTERM, share.stop)
        watch = threading.Thread(target=_stop_when_orphaned, args=(os.getppid(), share.stop))
        watch.daemon = True
        watch.start()
        share.run()
    finally:
        store.close()


class _Share:
    """One helper's run: its engine, how it stops, what it tells the parent."""

    def __init__(self, publisher: Publisher, issue_id: int, channel: IO[str]) -> None:
        self.publisher = publisher
        self.issue_id = issue_id
        self.engine = publisher.engine()
        self.stopped = threading.Event()
        self._channel = channel
        self._lock = threading.Lock()  # sender threads report at the same time

    def run(self) -> None:
        if not _wait_for_audience(self.publisher.store, self.issue_id, self.stopped):
            return
        report = SendReport(self.issue_id)
        self.engine.send_round(self.publisher.prepared(self.issue_id), report, self.progress)
        self.tell(f"share {json.dumps(asdict(HelperShare.of(report)))}")

    def stop(self, *_: object) -> None:
        """SIGTERM, or the parent gone: the batches in flight finish, no other starts."""
        self.stopped.set()
        self.engine.stop()

    def progress(self, count: int) -> None:
        if count:  # the parent counts what is left itself
            self.tell(f"progress {count}")

    def tell(self, line: str) -> None:
        try:
            with self._lock:
                self._channel.write(line + "\n")
        except BrokenPipeError:  # the parent is gone: what was sent is in the ledger
            self.stop()


def _stop_when_orphaned(parent: int, stop: Callable[[], None]) -> None:
    """A helper whose parent died (even by SIGKILL) takes no new batch: the send goes on
    when ``newsletter send`` runs again, not unseen in the background."""
    while os.getppid() == parent:
        time.sleep(ORPHAN_POLL_SECONDS)
    log.warning("the sending process is gone: finishing the batches in flight, then exiting")
    stop()


#: How often a helper looks whether its parent is still there.
ORPHAN_POLL_SECONDS = 0.5


def _wait_for_audience(store: Store, issue_id: int, stopped: threading.Event) -> bool:
    """Until the parent has frozen the issue's first chunk of recipients; False if there is
    nothing to send (the issue moved on, or this helper was asked to stop)."""
    while not stopped.is_set():
        with store.engine.connect() as conn:
            record = issue_store.get(conn, issue_id)
            started = record.audience_frozen or tally.open_work(conn, issue_id) > 0
        if record.state not in (IssueState.QUEUED, IssueState.SENDING):
            return False
        if started:
            return record.state == IssueState.SENDING
        stopped.wait(AUDIENCE_POLL_SECONDS)
    return False


def main() -> None:
    """``python -m newsletter.delivery.fanout``: a helper, told its task on standard input."""
    # Ctrl-C reaches the whole process group; the parent decides, and asks with SIGTERM.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        settings, issue_id, log_level = pickle.load(sys.stdin.buffer)  # from our own parent
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        sys.exit(f"no task on standard input ({exc}): `newsletter send` starts helpers itself")
    # Standard output is the channel to the parent; anything else printed goes to stderr.
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with channel:
        try:
            send_share(settings, issue_id, channel)
        except Exception as exc:
            failure = str(exc) if isinstance(exc, NewsletterError) else database_failure(exc)
            if failure is None:
                raise
            log.error("helper of issue %s stopped: %s", issue_id, failure)
            logging.shutdown()
            sys.exit(1)  # the parent logs the exit status and says what to do
    # Its share is told and its store closed: nothing is left to clean up but the
    # interpreter, whose orderly teardown of a 100 MB heap kept the parent (and the send's
    # end) waiting 0.1 s. Worker processes end this way in multiprocessing too.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
