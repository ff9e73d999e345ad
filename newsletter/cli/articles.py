"""``newsletter articles …``: the collected articles, their ids, and the issues that carry them."""

from __future__ import annotations

from typing import Any

import click

from ..editor.articles import ArticleEntry, article_entries, article_entry
from . import cli
from .context import AppContext, echo_json, json_option, pass_app


@cli.group()
def articles() -> None:
    """List the collected articles and the issues that carried them."""


@articles.command("list")
@click.option("--source", "source_id", help="Only this source's articles.")
@click.option(
    "--unsent-to", "list_id", help="Only articles no issue of this list carries (cancelled aside)."
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many.")
@json_option
@pass_app
def list_command(
    app: AppContext, source_id: str | None, list_id: str | None, limit: int | None, as_json: bool
) -> None:
    """List articles, newest first: id, source, date, title and the issues that carry them."""
    entries = article_entries(app.publisher, source_id=source_id, unsent_to=list_id, limit=limit)
    if as_json:
        echo_json([e.as_dict() for e in entries])
        return
    if not entries:
        click.echo("No articles.")
    for entry in entries:
        click.echo(_line(entry))


def _line(entry: ArticleEntry) -> str:
    when = f"{entry.published:%Y-%m-%d}" if entry.published else "undated   "
    carried = ", ".join(f"#{c.issue_id} {c.list_id} {c.state}" for c in entry.issues)
    return f"{entry.id:>5}  {entry.source:<16} {when}  {entry.title}" + (
        f"  [{carried}]" if carried else ""
    )


@articles.command("show")
@click.argument("article_id", type=int)
@json_option
@pass_app
def show_command(app: AppContext, article_id: int, as_json: bool) -> None:
    """Show one article: source, link, dates and every issue it is in."""
    entry = article_entry(app.publisher, article_id)
    data: dict[str, Any] = entry.as_dict()
    if as_json:
        echo_json(data)
        return
    click.echo(f"Article {entry.id}: {entry.title}")
    click.echo(f"  Source:    {entry.source} ({entry.uid})")
    click.echo(f"  Link:      {entry.url or '(none)'}")
    if entry.author:
        click.echo(f"  Author:    {entry.author}")
    click.echo(f"  Published: {entry.published or 'undated'}")
    click.echo(f"  Collected: {entry.first_seen}")
    if entry.archived:
        click.echo("  Archived:  yes (older than the source's look-back when first collected)")
    if not entry.issues:
        click.echo("  Issues:    none yet")
    for carrier in entry.issues:
        click.echo(
            f"  Issue {carrier.issue_id} of {carrier.list_id}: {carrier.state}, "
            f"position {carrier.position + 1}"
        )
