"""``newsletter suppressions list|add|remove|export``: who must not receive mail, and why.

The operations are ``editor.suppressions``'s, which the desk and the HTTP API call too.
"""

from __future__ import annotations

from typing import TextIO

import click
from rich.table import Table

from ..editor import suppressions as suppressing
from ..editor.suppressions import InvalidAddressError, scope_words
from ..models import ALL_LISTS, SuppressionReason
from ..store import suppressions
from ..wording import counted
from . import cli
from .context import AppContext, echo_json, json_option, pass_app

scope_option = click.option(
    "--list", "scope", metavar="LIST_ID",
    help=f"Only this list's suppressions ('{ALL_LISTS}' means those for every list).",
)


@cli.group(name="suppressions")
def suppressions_group() -> None:
    """Addresses that get no mail whatever the list files say: bounces, complaints, unsubscribes."""


@suppressions_group.command(name="list")
@scope_option
@json_option
@pass_app
def list_suppressions(app: AppContext, scope: str | None, as_json: bool) -> None:
    """Show suppressed addresses."""
    with app.store.engine.connect() as conn:
        rows = list(suppressions.iter_all(conn, scope))
    if as_json:
        echo_json([r.as_dict() for r in rows])
        return
    if not rows:
        click.echo("No suppressed addresses.")
        return
    table = Table()
    table.add_column("Email", no_wrap=True)  # an address split over lines cannot be copied
    table.add_column("List")
    table.add_column("Reason")
    table.add_column("Source", overflow="fold")
    table.add_column("Since", no_wrap=True)
    for row in rows:
        table.add_row(row.email, row.scope, str(row.reason), row.source,
                      row.created_at.strftime("%Y-%m-%d %H:%M"))
    app.console.print(table)


@suppressions_group.command(name="add")
@click.argument("email")
@click.option("--list", "scope", metavar="LIST_ID", default=ALL_LISTS, show_default=True,
              help=f"The list to suppress the address for; '{ALL_LISTS}' is every list.")
@click.option("--reason", type=click.Choice([r.value for r in SuppressionReason]),
              default=SuppressionReason.MANUAL.value, show_default=True)
@click.option("--note", default="", help="Why, for whoever reads the list later.")
@pass_app
def add_suppression(app: AppContext, email: str, scope: str, reason: str, note: str) -> None:
    """Stop sending to EMAIL."""
    try:
        done = suppressing.suppress(app.store, email, reason=SuppressionReason(reason),
                                    scope=scope, source="cli", note=note)
    except InvalidAddressError as exc:
        raise click.BadParameter(exc.reason, param_hint="EMAIL") from exc
    if done.added:
        click.echo(f"Suppressed {done.email} for {scope_words(scope)} ({reason}).")
    else:
        click.echo(f"{done.email} was already suppressed for {scope_words(scope)}; kept as is.")


@suppressions_group.command(name="remove")
@click.argument("email")
@scope_option
@pass_app
def remove_suppression(app: AppContext, email: str, scope: str | None) -> None:
    """Send to EMAIL again (for one list with --list, else for every list)."""
    # The command itself is the acknowledgement a hard bounce or complaint needs.
    lifted = suppressing.lift(app.store, email, scope, acknowledged=True)
    click.echo(f"Lifted {counted(len(lifted.removed), 'suppression')} of {lifted.email}.")


@suppressions_group.command(name="export")
@scope_option
@click.option("-o", "--output", type=click.File("w", encoding="utf-8"), default="-",
              help="CSV file to write (default: standard output).")
@pass_app
def export_suppressions(app: AppContext, scope: str | None, output: TextIO) -> None:
    """Write suppressions as CSV (email, scope, reason, source, detail, created_at)."""
    for chunk in suppressing.csv_chunks(suppressing.export_rows(app.store, scope)):
        output.write(chunk)
