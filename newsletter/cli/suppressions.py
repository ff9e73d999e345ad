"""``newsletter suppressions list|add|remove|export``: who must not receive mail, and why."""

from __future__ import annotations

import csv
from typing import TextIO

import click
from email_validator import EmailNotValidError
from rich.table import Table

from ..errors import NotFoundError
from ..lists.address import sendable_address
from ..models import ALL_LISTS, SuppressionReason
from ..store import events, suppressions
from ..store.suppressions import Suppression
from . import cli
from .context import AppContext, echo_json, json_option, pass_app

EXPORT_COLUMNS = ("email", "scope", "reason", "source", "detail", "created_at")

scope_option = click.option(
    "--list", "scope", metavar="LIST_ID",
    help=f"Only this list's suppressions ('{ALL_LISTS}' means those for every list).",
)


def as_dict(row: Suppression) -> dict[str, str]:
    return {
        "email": row.email, "scope": row.scope, "reason": str(row.reason), "source": row.source,
        "detail": row.detail, "created_at": row.created_at.isoformat(),
    }


def scope_words(scope: str) -> str:
    return "every list" if scope == ALL_LISTS else f"list {scope!r}"


def checked_address(email: str) -> str:
    try:
        return sendable_address(email)
    except EmailNotValidError as exc:
        raise click.BadParameter(str(exc), param_hint="EMAIL") from exc


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
        echo_json([as_dict(r) for r in rows])
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
    address = checked_address(email)
    with app.store.engine.begin() as conn:
        added = suppressions.add(conn, address, SuppressionReason(reason), scope=scope,
                                 source="cli", detail=note, at=app.store.now())
    if added:
        click.echo(f"Suppressed {address.lower()} for {scope_words(scope)} ({reason}).")
    else:
        where = scope_words(scope)
        click.echo(f"{address.lower()} was already suppressed for {where}; kept as is.")


@suppressions_group.command(name="remove")
@click.argument("email")
@scope_option
@pass_app
def remove_suppression(app: AppContext, email: str, scope: str | None) -> None:
    """Send to EMAIL again (for one list with --list, else for every list)."""
    with app.store.engine.begin() as conn:
        lifted = suppressions.remove(conn, email, scope)
        if scope in (None, ALL_LISTS):
            events.reset_soft_bounces(conn, email)  # else the next soft bounce suppresses again
    if not lifted:
        where = f" for {scope_words(scope)}" if scope is not None else ""
        raise NotFoundError(f"{email} is not suppressed{where}")
    click.echo(f"Lifted {lifted} suppression(s) of {suppressions.normalise(email)}.")


@suppressions_group.command(name="export")
@scope_option
@click.option("-o", "--output", type=click.File("w", encoding="utf-8"), default="-",
              help="CSV file to write (default: standard output).")
@pass_app
def export_suppressions(app: AppContext, scope: str | None, output: TextIO) -> None:
    """Write suppressions as CSV (email, scope, reason, source, detail, created_at)."""
    writer = csv.DictWriter(output, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    with app.store.engine.connect() as conn:
        for row in suppressions.iter_all(conn, scope):
            writer.writerow(as_dict(row))
