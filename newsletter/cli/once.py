"""``newsletter run --once``: one cycle under the scheduler lock, its summary, its exit status."""

from __future__ import annotations

import click

from ..errors import LockError
from ..schedule.lock import LeaseKeeper, LeaseLock
from ..schedule.once import LOCK_HELD_EXIT, CycleReport, run_cycle, summary
from ..wording import counted
from .collect import print_collect
from .context import AppContext, echo_json, reported_below
from .send import ProgressBars, describe, report_dict


class LockHeld(click.ClickException):
    """Another scheduler (a daemon, or a ``--once`` still running) holds the lock."""

    exit_code = LOCK_HELD_EXIT


def run_once(app: AppContext, *, as_json: bool) -> None:
    """One cycle, as the daemon would do it now; exits with the cycle's attention flags."""
    lock = LeaseLock(app.store, lease_seconds=app.settings.lease_seconds)
    try:
        lock.acquire()
    except LockError as exc:
        raise LockHeld(f"{exc}. Nothing was done.") from exc
    with (
        LeaseKeeper(lock) as keeper,
        ProgressBars(app) as bars,
        reported_below("newsletter.sources.collect"),  # the summary names each failing source
    ):
        cycle = run_cycle(app.publisher, bars.for_issue if not as_json else None)
    if as_json:
        echo_json(summary(cycle, [report_dict(r) for r in cycle.sent]))
    else:
        print_cycle(app, cycle)
    if keeper.lost:
        raise LockError(f"the scheduler lock was lost during the run: {keeper.lost}")
    if cycle.exit_code:
        raise click.exceptions.Exit(cycle.exit_code)


def print_cycle(app: AppContext, cycle: CycleReport) -> None:
    if cycle.collected is not None:
        click.echo(f"Collected {counted(cycle.collected.new, 'new article')}:")
        print_collect(cycle.collected)
    click.echo(f"Drafted {counted(len(cycle.drafted), 'issue')}, queued {len(cycle.queued)}.")
    for reason in cycle.skipped:
        click.echo(f"  skipped {reason}")
    written = sum(r.counts.get("sent", 0) for r in cycle.sent)
    for report in cycle.sent:
        click.echo(describe(report, app.settings.outage_resume_minutes))
    if not cycle.sent:
        click.echo("Nothing new to send.")
    elif app.settings.provider == "outbox":
        click.echo(f"{counted(written, 'message')} written under {app.settings.outbox_path}/")
    if cycle.exit_code:
        problems = ", ".join(cycle.problems)
        click.echo(f"Needs attention ({problems}): exit status {cycle.exit_code}.", err=True)
