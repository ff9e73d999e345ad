"""A worker's own senders at work while it freezes the audience, on PostgreSQL.

A worker is one process (``newsletter worker`` starts no helpers). Freezing a large
audience on PostgreSQL is mostly the server's work: the worker formats rows and waits
while the server writes them. Before, the worker's sender threads waited for the last
chunk, and one worker took the freeze's time plus the send's. Here the freeze runs in a
thread of its own while the senders take each chunk's batches as it commits, as other
workers' senders already do (``store.audience``): the server writes the ledger on one
core while the worker sends on the other.

On SQLite a chunk holds the only write lock, and the senders would wait for it anyway:
there the freeze comes first, as before.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .base import PreparedIssue
from .engine import Engine
from .report import Progress, SendReport

#: What freezes an audience, given what to call once it holds the freeze's lease.
Freeze = Callable[[Callable[[], None]], None]


class FreezeThread:
    """``freeze`` in a thread; what it raised, kept for the caller.

    ``settled`` is set once the freeze holds its lease, or has ended: senders that started
    before would find the audience neither frozen nor being frozen, and stop at once."""

    def __init__(self, freeze: Freeze, engine: Engine) -> None:
        self._freeze = freeze
        self._engine = engine
        self.failure: BaseException | None = None
        self.settled = threading.Event()
        self._thread = threading.Thread(target=self._run, name="freeze", daemon=True)

    def _run(self) -> None:
        try:
            self._freeze(self.settled.set)
        except BaseException as exc:  # handed to the caller, who raises it
            self.failure = exc
            # The senders would wait for chunks that are not coming until the lease ran out.
            self._engine.stop()
        finally:
            self.settled.set()

    def progress(self, progress: Progress | None) -> Progress:
        """``progress`` for the engine's run: its first call (the run begins, and has just
        cleared any stop) stops the engine again if the freeze failed before."""

        def report(count: int) -> None:
            if count == 0 and self.failure is not None:
                self._engine.stop()
            if progress is not None:
                progress(count)

        return report

    def start(self) -> None:
        self._thread.start()

    def join(self) -> None:
        self._thread.join()


@contextmanager
def freezing_beside(freeze: Freeze, engine: Engine) -> Iterator[FreezeThread]:
    """Run ``freeze`` in a thread while the body sends with ``engine`` (passing the engine
    the thread's ``progress``), from the moment it holds its lease; on leaving, wait for
    it, and raise what it raised (the engine was stopped then)."""
    thread = FreezeThread(freeze, engine)
    thread.start()
    try:
        thread.settled.wait()
        yield thread
    finally:
        thread.join()  # a freeze stops only between chunks; each chunk commits whole
    if thread.failure is not None:
        raise thread.failure


def send_beside(engine: Engine, prepared: PreparedIssue, freeze: Freeze | None,
                progress: Progress | None) -> SendReport:
    """Send ``prepared`` with ``engine`` while ``freeze`` (None: frozen already) runs."""
    if freeze is None:
        return engine.run(prepared, progress)
    with freezing_beside(freeze, engine) as freezing:
        return engine.run(prepared, freezing.progress(progress))
