"""``newsletter send``: deliver what is due (``run --once`` shows its sends the same way)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import click
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from ..delivery.outage import UNAVAILABLE
from ..delivery.report import SendReport
from ..store import tally
from ..wording import counted
from . import cli
from .context import AppContext, echo_json, json_option, pass_app


class CountColumn(ProgressColumn):
    """``done/total``; the total is known once the audience has been frozen."""

    def render(self, task: Task) -> Text:
        total = f"{task.total:,.0f}" if task.total is not None else "?"
        return Text(f"{task.completed:,.0f}/{total}")


class RateColumn(ProgressColumn):
    """Recipients per second over the last few updates."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} recipients/s" if speed else "… recipients/s")


class ProgressBars:
    """One bar per issue with rate and ETA; silent when output is not a terminal."""

    def __init__(self, app: AppContext) -> None:
        self.app = app
        self.progress = Progress(
            TextColumn("issue {task.fields[issue]}"),
            BarColumn(),
            TaskProgressColumn(),
            CountColumn(),
            RateColumn(),
            TimeRemainingColumn(),
            console=app.console,
            disable=not app.console.is_terminal,
        )

    def __enter__(self) -> ProgressBars:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def for_issue(self, issue_id: int) -> Callable[[int], None]:
        task = self.progress.add_task("send", total=None, issue=issue_id)
        done = 0  # sent in this run, over every round of the issue
        lock = threading.Lock()  # sender threads and helper processes' readers report

        def advance(count: int) -> None:
            nonlocal done
            if count == 0:  # sending starts (again, after a retry): count what is left
                left = self._open_recipients(issue_id)
                with lock:
                    self.progress.update(task, total=None if left is None else done + left)
            with lock:
                done += count
            self.progress.advance(task, count)

        return advance

    def _open_recipients(self, issue_id: int) -> int | None:
        """Recipients still to send (none counted before the audience is frozen)."""
        with self.app.store.engine.connect() as conn:
            return tally.open_recipients(conn, issue_id) or None


def describe(report: SendReport, outage_resume_minutes: int = 0) -> str:
    counts = ", ".join(f"{n} {s}" for s, n in sorted(report.counts.items())) or "no recipients"
    line = f"Issue {report.issue_id}: {report.final_state} — {counts}"
    if report.by_helpers:
        helpers = counted(len(report.by_helpers), "helper process", "helper processes")
        line += f"; shared with {helpers}"
    if report.retries:
        line += f"; {counted(report.retries, 'retried batch', 'retried batches')}"
    if report.unknown_batches:
        line += (f"; {counted(report.unknown_batches, 'batch', 'batches')} of unknown outcome "
                 "held for you")
    if report.paused:
        line += f"\n  paused: {report.paused}"
    if report.paused.startswith(UNAVAILABLE):
        by_itself = (f"the first send {outage_resume_minutes} minutes from now resumes it, or "
                     if outage_resume_minutes else "")
        resume = f"`newsletter issue resume {report.issue_id}`"
        line += f"\n  {by_itself}{resume} once the provider answers"
    return line


def report_dict(report: SendReport) -> dict[str, object]:
    return {
        "issue": report.issue_id,
        "state": report.final_state,
        "recipients": report.counts,
        "retries": report.retries,
        "unknown_batches": report.unknown_batches,
        "paused": report.paused,
        "helper_processes": len(report.by_helpers),
    }


@cli.command()
@json_option
@pass_app
def send(app: AppContext, as_json: bool) -> None:
    """Send every queued issue that is due, and resume interrupted sends."""
    publisher = app.publisher
    with ProgressBars(app) as bars:
        reports = publisher.send_due(bars.for_issue if not as_json else None)
    if as_json:
        echo_json([report_dict(r) for r in reports])
        return
    if not reports:
        click.echo("Nothing to send: no queued issue is due.")
    for report in reports:
        click.echo(describe(report, app.settings.outage_resume_minutes))
