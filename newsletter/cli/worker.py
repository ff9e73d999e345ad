"""``newsletter worker``: send due issues alongside other workers on the same database."""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor

import click

from ..publisher import Publisher
from ..runners import worker as worker_module
from ..runners.worker import Worker, WorkerReport
from . import cli
from .context import AppContext, pass_app
from .daemon import StopSignals
from .send import describe

#: How often the main thread looks up from waiting for a signal to see if the work is done.
WATCH_SECONDS = 0.2


@cli.command()
@click.option("--once", is_flag=True, help="Work until no issue has anything left, then exit.")
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    help="Sender threads in this process (default: NEWSLETTER_CONCURRENCY).",
)
@click.option(
    "--poll",
    "poll_seconds",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    help="Seconds between looks for new work while idle.",
)
@pass_app
def worker(app: AppContext, once: bool, concurrency: int | None, poll_seconds: float) -> None:
    """Send queued and interrupted issues; run several, on any hosts, on one database.

    SIGTERM or Ctrl+C: the batches in flight finish and are recorded, then it exits.
    """
    # A worker is one process (run more of them to use more cores or hosts): no helpers.
    settings = app.settings.with_changes(processes=1)
    if concurrency is not None:
        settings = settings.with_changes(concurrency=concurrency)
    # A daemon should say what it does even at the default WARNING level.
    logger = logging.getLogger(worker_module.__name__)
    logger.setLevel(min(logger.getEffectiveLevel(), logging.INFO))
    sender = Worker(Publisher(settings, app.store), once=once, poll_seconds=poll_seconds)
    report = run_until_signalled(sender)
    for sent in report.sent:
        click.echo(describe(sent))
    if report.failed:
        listed = "; ".join(f"issue {i}: {why}" for i, why in sorted(report.failed.items()))
        raise click.ClickException(f"not sent: {listed}")


def run_until_signalled(sender: Worker) -> WorkerReport:
    """Run the worker in a thread; the main thread waits for SIGTERM/SIGINT and stops it."""
    with StopSignals() as signals, ThreadPoolExecutor(1, "worker") as pool:
        running: Future[WorkerReport] = pool.submit(sender.run)
        while not running.done():
            received = signals.wait(WATCH_SECONDS)
            if received is not None and not sender.stopping.is_set():
                click.echo(f"{received.name}: finishing the batches in flight, then stopping.")
                sender.stop()
        return running.result()
