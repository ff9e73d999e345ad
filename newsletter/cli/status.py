"""``newsletter status``: what the scheduler will do next, what is sending, what came in last.

The gathering is ``schedule.status``'s, which the desk's status page and the HTTP API show.
"""

from __future__ import annotations

from typing import Any

import click

from ..schedule.status import gather as status_report
from ..wording import counted
from . import cli
from .context import AppContext, echo_json, json_option, pass_app


@cli.command()
@json_option
@pass_app
def status(app: AppContext, as_json: bool) -> None:
    """Show the schedule, issues queued or sending, the last collection and the lock."""
    data = gather(app)
    if as_json:
        echo_json(data)
        return
    print_lock(data["lock"])
    print_schedule(data["schedule"])
    print_issues(data["issues"])
    print_collection(data["last_collection"])


def gather(app: AppContext) -> dict[str, Any]:
    """The parts of ``schedule.status.gather`` this command shows, as it always has."""
    return status_report(app.settings, app.store).summary()


# -- text output ------------------------------------------------------------------------------
def print_lock(lock: dict[str, Any] | None) -> None:
    if lock is None:
        click.echo("Scheduler: not running (nobody holds the scheduler lock).")
    elif lock["expired"]:
        click.echo(
            f"Scheduler: not running; the last one, {lock['owner']}, stopped renewing "
            f"its lock (expired {lock['until']:%Y-%m-%d %H:%M:%S} UTC)."
        )
    else:
        click.echo(
            f"Scheduler: running as {lock['owner']} "
            f"(lock renewed until {lock['until']:%Y-%m-%d %H:%M:%S} UTC)."
        )


def print_schedule(jobs: list[dict[str, Any]]) -> None:
    if not jobs:
        click.echo("Schedule: no jobs yet (they are created when `newsletter run` starts).")
        return
    click.echo("Schedule:")
    for job in jobs:
        when = job["next_run"]
        shown = f"{when:%Y-%m-%d %H:%M %Z (UTC%z)}" if when is not None else "paused"
        click.echo(f"  {job['id']:<24} next {shown}  [{job['timezone']}]  {job['name']}")


def print_issues(issues: list[dict[str, Any]]) -> None:
    if not issues:
        click.echo("Issues: none queued, sending or paused.")
        return
    click.echo("Issues:")
    for item in issues:
        click.echo(
            f"  {item['id']:>5}  {item['state']:<8} {item['list']:<16} "
            f"{_progress_text(item)}  {item['subject']}"
        )


def _progress_text(item: dict[str, Any]) -> str:
    counts: dict[str, int] = item["recipients"]
    if not counts:
        when = item["send_at"]
        return f"send at {when:%Y-%m-%d %H:%M %Z}" if when else "audience not frozen yet"
    done = counts.get("sent", 0)
    others = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()) if s != "sent")
    return f"{done}/{item['total']} sent" + (f" ({others})" if others else "")


def print_collection(collection: dict[str, Any] | None) -> None:
    if collection is None:
        click.echo("Last collection: never.")
        return
    click.echo(
        f"Last collection: {collection['at']:%Y-%m-%d %H:%M:%S %Z}, "
        f"{counted(collection.get('new', 0), 'new article')}"
    )
    for source in collection.get("sources", []):
        detail = f"error: {source['error']}" if source.get("error") else f"{source['new']} new"
        click.echo(f"  {source['source_id']:<24} {source['status']:<12} {detail}")
