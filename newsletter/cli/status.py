"""``newsletter status``: what the scheduler will do next, what is sending, what came in last."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import click
from sqlalchemy import Connection, select

from ..models import IssueState
from ..schedule.lock import current_holder
from ..schedule.scheduler import ScheduledJob, read_schedule
from ..store import issues as issue_store
from ..store import tally
from ..store.tables import collections
from . import cli
from .context import AppContext, echo_json, json_option, pass_app

IN_PROGRESS = (IssueState.QUEUED, IssueState.SENDING, IssueState.PAUSED)


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
    with app.store.engine.connect() as conn:
        return {
            "lock": lock_status(conn),
            "schedule": [job_status(job) for job in read_schedule(app.store.engine)],
            "issues": issue_progress(conn),
            "last_collection": last_collection(conn),
        }


def lock_status(conn: Connection) -> dict[str, Any] | None:
    holder = current_holder(conn)
    if holder is None:
        return None
    return {
        "owner": holder.owner,
        "until": holder.until_utc,
        "expired": holder.expired(time.time()),
    }


def job_status(job: ScheduledJob) -> dict[str, Any]:
    return {"id": job.id, "name": job.name, "next_run": job.next_run, "timezone": job.timezone}


def issue_progress(conn: Connection) -> list[dict[str, Any]]:
    records = reversed(issue_store.find(conn, states_in=IN_PROGRESS, limit=1000))
    return [_progress(conn, record) for record in records]


def _progress(conn: Connection, record: issue_store.IssueRecord) -> dict[str, Any]:
    counts = tally.status_counts(conn, record.id)
    return {
        "id": record.id,
        "list": record.list_id,
        "state": str(record.state),
        "subject": record.subject,
        "send_at": record.send_at,
        "started_at": record.started_at,
        "pause_reason": record.pause_reason,
        "total": sum(counts.values()),
        "recipients": counts,
    }


def last_collection(conn: Connection) -> dict[str, Any] | None:
    row = conn.execute(
        select(collections.c.at, collections.c.report).order_by(collections.c.id.desc()).limit(1)
    ).first()
    if row is None:
        return None
    return {"at": _utc(row.at), **dict(row.report)}


def _utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


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
        f"{collection.get('new', 0)} new article(s)"
    )
    for source in collection.get("sources", []):
        detail = f"error: {source['error']}" if source.get("error") else f"{source['new']} new"
        click.echo(f"  {source['source_id']:<24} {source['status']:<12} {detail}")
