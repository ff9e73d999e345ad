"""A send's helper process: one more core for a large issue (``delivery.fanout`` starts it).

It is started as ``python -m newsletter.runners.helper``, told its task (the settings and
the issue) on standard input, and sends batches of that issue as an ordinary worker on the
ledger until none is due. It tells the parent what it sent in lines on standard output
(``HelperShare``); its log goes to stderr. A helper whose parent died, even by SIGKILL,
finishes its batches in flight and takes no other.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import IO

from ..config import Settings
from ..delivery.engine import AUDIENCE_POLL_SECONDS
from ..delivery.fanout import HelperShare
from ..delivery.report import SendReport
from ..errors import NewsletterError
from ..models import IssueState
from ..publisher import Publisher
from ..store import Store, tally
from ..store import issues as issue_store
from ..store.db import database_failure

log = logging.getLogger(__name__)


def send_share(settings: Settings, issue_id: int, channel: IO[str]) -> None:
    """A helper's work: send batches of the issue until none is due, then report."""
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
    """``python -m newsletter.runners.helper``: a helper, told its task on standard input."""
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
