"""Every recipient of an issue by status: ``newsletter issue recipients``, and the part of
``newsletter issue show`` that lists who was not delivered.

The list is streamed from the ledger (a server-side cursor on PostgreSQL) and written a row at
a time, so a million recipients take no more memory than ten.
"""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from typing import Any, TextIO

import click
import orjson
from sqlalchemy import Connection

from ..editor.recipients_export import COLUMNS, csv_values
from ..models import DeliveryStatus
from ..store import issues as issue_store
from ..store import tally
from ..store.tally import RecipientRow
from ..wording import counted
from .context import AppContext, pass_app
from .issue import issue

SHOWN_PROBLEMS = 50


@issue.command("recipients")
@click.argument("issue_id", type=int)
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice([s.value for s in DeliveryStatus]),
    help="Only recipients with this status (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="JSON Lines: one object per recipient.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV with a header line.")
@pass_app
def recipients_command(
    app: AppContext, issue_id: int, statuses: tuple[str, ...], as_json: bool, as_csv: bool
) -> None:
    """List every recipient of an issue with its status, in the order they were frozen.

    Streamed from the database: a million recipients start printing at once and take no more
    memory than ten. A recipient of a batch sent whole shows as "sent" until a webhook says
    more (delivered, bounced-hard, …).

    \b
    Default: one line per recipient: address, status, batch, error.
    --json:  JSON Lines, one object per line, with the keys email, status, batch (null if
             it was kept out of every batch, e.g. suppressed), error, message_id and
             updated_at (ISO 8601); e.g. `… --json | jq -r 'select(.error != "") | .email'`.
    --csv:   the same six columns, with a header line.
    """
    if as_json and as_csv:
        raise click.UsageError("give --json or --csv, not both")
    out = sys.stdout
    with app.store.engine.connect() as conn:
        issue_store.get(conn, issue_id)  # "no issue N" before any output
        # The rows' cursor is closed before its connection, however the writing ends.
        with closing(tally.recipient_rows(conn, issue_id, statuses)) as rows, \
                _stops_quietly_at_a_closed_pipe():
            write = _json_writer(out) if as_json else (
                _csv_writer(out) if as_csv else _text_writer(out)
            )
            written = _write_all(rows, write)
            out.flush()
    if not written and not (as_json or as_csv):
        only = f" with status {' or '.join(statuses)}" if statuses else ""
        click.echo(f"Issue {issue_id} has no recipients{only}.", err=True)


def _write_all(rows: Iterator[RecipientRow], write: Callable[[RecipientRow], None]) -> int:
    written = 0
    for row in rows:
        write(row)
        written += 1
    return written


def _text_writer(out: TextIO) -> Callable[[RecipientRow], None]:
    def write(row: RecipientRow) -> None:
        batch = f"  (batch {row.batch})" if row.batch is not None else ""
        error = f"  {row.error}" if row.error else ""
        out.write(f"{row.email}  {row.status}{batch}{error}\n")

    return write


def _csv_writer(out: TextIO) -> Callable[[RecipientRow], None]:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)

    def write(row: RecipientRow) -> None:
        writer.writerow(csv_values(row))

    return write


def _json_writer(out: TextIO) -> Callable[[RecipientRow], None]:
    def write(row: RecipientRow) -> None:
        out.write(orjson.dumps(dict(zip(COLUMNS, row, strict=True))).decode())
        out.write("\n")

    return write


@contextmanager
def _stops_quietly_at_a_closed_pipe() -> Iterator[None]:
    """``… | head`` closes the pipe early: stop with status 1 instead of a traceback."""
    try:
        yield
    except BrokenPipeError:
        try:  # Python flushes stdout again at exit, which would fail the same way
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass  # not a real file (a test's capture): nothing will be flushed at exit
        raise click.exceptions.Exit(1) from None


# -- issue show's "Not delivered" -------------------------------------------------------


def problem_report(conn: Connection, issue_id: int) -> dict[str, Any]:
    """What ``issue show`` says of the recipients that failed or whose outcome is unknown:
    up to ``SHOWN_PROBLEMS`` of them, spread over the batches, and how many there are."""
    shown = tally.problems(conn, issue_id, limit=SHOWN_PROBLEMS)
    counts = tally.problem_counts(conn, issue_id)
    total = sum(c["recipients"] for c in counts.values())
    return {"problems": shown, "problem_counts": counts, "problems_not_shown": total - len(shown)}


def print_problems(data: dict[str, Any]) -> None:
    problems: Sequence[dict[str, Any]] = data["problems"]
    if not problems:
        return
    counts: dict[str, dict[str, int]] = data["problem_counts"]
    click.echo("  Not delivered: " + ", ".join(
        f"{c['recipients']} {status} in {_batches(c['batches'])}"
        for status, c in sorted(counts.items())
    ))
    for p in problems:
        batch = f"(batch {p['batch']})" if p["batch"] is not None else "(no batch)"
        click.echo(f"    {p['email']}  {p['status']}  {batch} {p['error']}")
    if data["problems_not_shown"]:
        statuses = " ".join(f"--status {status}" for status in sorted(counts))
        click.echo(
            f"    … and {data['problems_not_shown']} more; all of them: "
            f"`newsletter issue recipients {data['id']} {statuses}`"
        )
    if "unknown" in counts:
        click.echo(
            f"  Unknown outcomes may have been delivered; resend them with "
            f"`newsletter issue retry {data['id']} --unknown` if you accept duplicates."
        )


def _batches(n: int) -> str:
    if n == 0:
        return "no batch"
    return counted(n, "batch", "batches")
