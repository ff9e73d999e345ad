"""``newsletter issue articles / add-article / move-article / remove-article`` on a draft's
articles, and ``issue reschedule / unqueue`` on a queued issue's time.

The work is ``editor.editing``'s; these commands read arguments and print the outcome."""

from __future__ import annotations

import click

from ..editor import editing
from ..issues import sendtime
from ..store import issues as issue_store
from .context import AppContext, echo_json, json_option, pass_app
from .issue import issue


@issue.command("reschedule")
@click.argument("issue_id", type=int)
@click.option("--at", "at_text", help="New local time in the list's timezone.")
@click.option("--now", "now", is_flag=True, help="Send at the next send instead.")
@pass_app
def reschedule_command(app: AppContext, issue_id: int, at_text: str | None, now: bool) -> None:
    """Give a queued issue a new send time (it stays queued)."""
    if bool(at_text) == now:
        raise click.UsageError("give --at TIME or --now (one of them)")
    with app.store.engine.connect() as conn:
        record = issue_store.get(conn, issue_id)
    timezone = app.publisher.config.list(record.list_id).timezone
    when = sendtime.parse(at_text, timezone) if at_text else None
    editing.reschedule(app.publisher, issue_id, when.at if when else None)
    if when is None:
        click.echo(f"Issue {issue_id} rescheduled to go out now (at the next send).")
        return
    if when.note:
        click.echo(when.note)
    click.echo(f"Issue {issue_id} rescheduled for {sendtime.describe(when.at, timezone)}.")


@issue.command("unqueue")
@click.argument("issue_id", type=int)
@pass_app
def unqueue_command(app: AppContext, issue_id: int) -> None:
    """Take a queued issue back to draft (to edit it, or to hold it)."""
    editing.unqueue(app.publisher, issue_id)
    click.echo(f"Issue {issue_id} is a draft again; `newsletter issue queue {issue_id}` queues it.")


@issue.command("articles")
@click.argument("issue_id", type=int)
@json_option
@pass_app
def articles_command(app: AppContext, issue_id: int, as_json: bool) -> None:
    """List an issue's articles in order: position, id, title, source."""
    with app.store.engine.connect() as conn:
        issue_store.get(conn, issue_id)  # an unknown issue is an error, not an empty list
        items = editing.articles_of(conn, issue_id)
    if as_json:
        echo_json([item.as_dict() for item in items])
        return
    if not items:
        click.echo(f"Issue {issue_id} has no articles.")
    for item in items:
        click.echo(f"{item.position:>3}. {item.id:>5}  {item.title}  ({item.source})")


@issue.command("add-article")
@click.argument("issue_id", type=int)
@click.argument("article_id", type=int)
@click.option("--position", type=int, help="Where, counting from 1 (default: last).")
@click.option("--again", is_flag=True, help="Even if the list already had this article.")
@pass_app
def add_article_command(
    app: AppContext, issue_id: int, article_id: int, position: int | None, again: bool
) -> None:
    """Put an article (`newsletter articles list` shows the ids) into a draft."""
    at, count = editing.add_article(
        app.publisher, issue_id, article_id, position=position, again=again
    )
    click.echo(f"Issue {issue_id}: article {article_id} added at position {at} of {count}.")


@issue.command("move-article")
@click.argument("issue_id", type=int)
@click.argument("article_id", type=int)
@click.option("--to", "position", type=int, required=True, help="New position, from 1.")
@pass_app
def move_article_command(app: AppContext, issue_id: int, article_id: int, position: int) -> None:
    """Move an article of a draft to another position."""
    at, count = editing.move_article(app.publisher, issue_id, article_id, position)
    click.echo(f"Issue {issue_id}: article {article_id} moved to position {at} of {count}.")


@issue.command("remove-article")
@click.argument("issue_id", type=int)
@click.argument("article_id", type=int)
@pass_app
def remove_article_command(app: AppContext, issue_id: int, article_id: int) -> None:
    """Take an article out of a draft; the list may offer it again in a later draft."""
    left = editing.remove_article(app.publisher, issue_id, article_id)
    click.echo(f"Issue {issue_id}: article {article_id} removed; {left} left.")
