"""``newsletter run``: the scheduler daemon, or with ``--once`` one cycle of it (``once``).

The daemon takes the scheduler lock (one scheduler per database), starts the jobs, and renews the
lock until SIGTERM or SIGINT. Then it stops gracefully: the sends in flight finish their
current batches and record them, no new work starts, the scheduler shuts down, the lock is
released and the process exits 0. What was left unsent is picked up by the next
``newsletter run`` or ``newsletter send``.
"""

from __future__ import annotations

import logging
import select
import signal
import socket
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType, TracebackType
from typing import Protocol

import click

from ..errors import LockError, StoreError
from ..readers.outbox import sending
from ..schedule.jobs import Runtime, installed
from ..schedule.lock import LeaseLock
from ..schedule.scheduler import job_specs, start_scheduler, stop_scheduler
from ..store import make_engine
from ..wording import counted
from . import cli
from .context import AppContext, json_option, pass_app

log = logging.getLogger(__name__)

#: The package's loggers under the daemon: each collection, draft, queue, send, pause and
#: resume is one line at INFO, whatever ``NEWSLETTER_LOG_LEVEL`` asks beyond that.
DAEMON_LOG_LEVEL = logging.INFO

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """SIGTERM and SIGINT as something the main thread can wait for, with a timeout.

    The handlers only note which signal came; ``signal.set_wakeup_fd`` writes a byte to a
    socket pair, which wakes ``wait`` at once. A handler that took a lock could deadlock
    against the code it interrupted; this one cannot.
    """

    def __init__(self, signals: Sequence[signal.Signals] = STOP_SIGNALS) -> None:
        self.signals = tuple(signals)
        self.received: signal.Signals | None = None
        self._reader, self._writer = socket.socketpair()
        for end in (self._reader, self._writer):
            end.setblocking(False)
        self._previous_fd = -1
        self._previous: dict[signal.Signals, object] = {}

    def __enter__(self) -> StopSignals:
        self._previous_fd = signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)
        self._previous = {s: signal.signal(s, self._note) for s in self.signals}
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)  # type: ignore[arg-type]
        signal.set_wakeup_fd(self._previous_fd)
        self._reader.close()
        self._writer.close()

    def _note(self, number: int, _frame: FrameType | None) -> None:
        self.received = signal.Signals(number)

    def wait(self, timeout: float) -> signal.Signals | None:
        """The stop signal received, waiting up to ``timeout`` seconds for one."""
        if self.received is None:
            select.select([self._reader], [], [], timeout)
            self._drain()
        return self.received

    def _drain(self) -> None:
        try:
            while self._reader.recv(64):
                pass
        except BlockingIOError:
            pass


@cli.command()
@click.option("--once", is_flag=True, help="One cycle (collect, draft, queue, send), then exit.")
@click.option(
    "--standby",
    is_flag=True,
    help="If another scheduler holds the lock, wait and take over when it stops.",
)
@json_option
@pass_app
def run(app: AppContext, once: bool, standby: bool, as_json: bool) -> None:
    """Run the publication: the scheduler daemon, or one full cycle with --once.

    Both take the scheduler lock: one scheduler per database. With --once, a digest list
    drafts only when one of its cron times has come since its last digest (within
    NEWSLETTER_MISFIRE_GRACE_SECONDS), as under the daemon, so cron may run it as often
    as it likes. --json prints the cycle's summary.

    \b
    Exit status of --once (several problems add up, e.g. 36 = 4 + 32):
      0   done; nothing needs a person (drafts waiting for an editor are fine)
      1   an error stopped it (configuration, database); the message says which
      2   wrong options
      4   a source could not be collected
      8   a draft was held back by a template or pre-send check error
      16  an issue ended paused
      32  an issue ended partially-failed
      75  another scheduler holds the lock; nothing was done
    """
    if once:
        if standby:
            raise click.UsageError("--standby is for the daemon; --once never waits for the lock")
        from .once import run_once

        run_once(app, as_json=as_json)
        return
    run_daemon(app, standby=standby)


def daemon_logging() -> None:
    """Let the package log at INFO at least (third-party libraries keep the set level)."""
    package = logging.getLogger("newsletter")
    if package.getEffectiveLevel() > DAEMON_LOG_LEVEL:
        package.setLevel(DAEMON_LOG_LEVEL)


def run_daemon(app: AppContext, *, standby: bool = False) -> None:
    """Run the scheduler in the foreground until SIGTERM or SIGINT.

    With ``standby``, a scheduler that finds the lock held waits and takes over when the
    leader stops renewing it (it died, or its host did), instead of exiting.
    """
    daemon_logging()
    settings = app.settings
    settings.require_provider_credentials()  # a daemon that could never send should not start
    specs = job_specs(settings, app.publisher.config)  # nor one with a broken publication file
    with StopSignals() as signals:
        lock = LeaseLock(app.store, lease_seconds=settings.lease_seconds)
        if standby and not wait_for_leadership(lock, signals):
            click.echo("Stopped while standing by; never took the scheduler lock.")
            return
        with (
            held(lock, taken=standby),
            installed(Runtime(settings, app.store)) as runtime,
            sending(settings, app.store),  # readers' confirmations queued by any process
        ):
            scheduler = start_scheduler(settings, make_engine(settings.database_url), specs)
            click.echo(
                f"Scheduler running as {lock.owner} with {counted(len(specs), 'job')}; "
                "stop it with SIGTERM or Ctrl+C."
            )
            try:
                received = keep_lease(lock, signals)
            finally:
                runtime.stop()
                click.echo("Stopping: finishing the batches in flight; nothing new starts.")
                stop_scheduler(scheduler)
    click.echo(f"Stopped on {received.name}; the scheduler lock is released.")


def wait_for_leadership(lock: LeaseLock, signals: SignalSource) -> bool:
    """Try for the lock a few times per lease until it is ours; False if told to stop first."""
    announced = False
    while True:
        try:
            lock.acquire()
            return True
        except LockError as exc:
            if not announced:
                click.echo(f"Standing by: {exc}", nl=True)
                sys.stdout.flush()
                announced = True
        if signals.wait(lock.lease_seconds / 3) is not None:
            return False


@contextmanager
def held(lock: LeaseLock, *, taken: bool) -> Iterator[LeaseLock]:
    """The lock for the ``with`` block: taken here, or already taken by a standby wait."""
    if not taken:
        lock.acquire()
    try:
        yield lock
    finally:
        lock.release()


class SignalSource(Protocol):
    def wait(self, timeout: float) -> signal.Signals | None: ...


def keep_lease(lock: LeaseLock, signals: SignalSource) -> signal.Signals:
    """Renew the lock a few times per lease until a stop signal comes; returns that signal.

    A renewal the database refuses is retried at the next beat; once a whole lease has gone
    by without one, another scheduler may have taken over, so this one gives up.
    """
    renewed_at = lock.clock()
    while (received := signals.wait(lock.lease_seconds / 3)) is None:
        try:
            lock.renew()
        except StoreError as exc:
            if lock.clock() - renewed_at >= lock.lease_seconds:
                raise LockError(
                    f"could not renew the scheduler lock for a whole lease: {exc}"
                ) from exc
            log.warning("could not renew the scheduler lock; trying again: %s", exc)
        else:
            renewed_at = lock.clock()
    return received
