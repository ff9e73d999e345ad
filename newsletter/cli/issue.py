"""``newsletter issue …``: the editor's commands, from draft to sent."""

from __future__ import annotations

import webbrowser
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

import click

from ..delivery.outage import resumes_at
from ..editor import editing, preview
from ..errors import NewsletterError
from ..issues import sendtime
from ..models import IssueState
from ..store import audience_origins, tally
from ..store import issues as issue_store
from ..wording import counted
from . import cli
from .context import AppContext, echo_json, json_option, pass_app


@cli.group()
def issue() -> None:
    """Draft, edit, preview, test, queue, reschedule, pause, cancel and retry issues."""


@issue.command("draft")
@click.argument("list_id")
@click.option("--article", "article_ids", type=int, multiple=True, help="Use these article ids.")
@click.option("--subject", default="", help="Subject (default: from the articles).")
@click.option("--preheader", default="", help="Preview text shown after the subject.")
@click.option("--intro", type=click.File("r", encoding="utf-8"), help="Markdown introduction.")
@click.option(
    "--again", is_flag=True, help="Use --article ids even if the list already had them."
)
@json_option
@pass_app
def draft_command(
    app: AppContext,
    list_id: str,
    article_ids: tuple[int, ...],
    subject: str,
    preheader: str,
    intro: IO[str] | None,
    again: bool,
    as_json: bool,
) -> None:
    """Draft an issue of LIST from its unsent articles (or the ones named)."""
    ids = editing.draft(
        app.publisher,
        list_id,
        article_ids=list(article_ids) or None,
        again=again,
        subject=subject,
        preheader=preheader,
        intro_md=intro.read() if intro else "",
    )
    if as_json:
        echo_json({"drafted": ids})
    elif not ids:
        click.echo(f"Nothing to draft: {list_id} has no unsent articles.")
    else:
        for issue_id in ids:
            click.echo(f"Drafted issue {issue_id} for {list_id}.")


def _summary(record: issue_store.IssueRecord) -> dict[str, object]:
    return {
        "id": record.id,
        "list": record.list_id,
        "number": record.number,
        "kind": str(record.kind),
        "state": str(record.state),
        "subject": record.subject,
        "created_at": record.created_at,
        "send_at": record.send_at,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "pause_reason": record.pause_reason,
    }


@issue.command("list")
@click.option("--list", "list_id", help="Only this list.")
@click.option("--state", type=click.Choice([s.value for s in IssueState]), help="Only this state.")
@json_option
@pass_app
def list_command(app: AppContext, list_id: str | None, state: str | None, as_json: bool) -> None:
    """List issues, newest first."""
    with app.store.engine.connect() as conn:
        records = issue_store.find(
            conn, list_id=list_id, states_in=[IssueState(state)] if state else ()
        )
    if as_json:
        echo_json([_summary(r) for r in records])
        return
    if not records:
        click.echo("No issues.")
    for r in records:  # the send time (else when drafted) as the list's readers see it
        when = (r.send_at or r.created_at).astimezone(ZoneInfo(list_timezone(app, r.list_id)))
        click.echo(
            f"{r.id:>5}  {r.state:<16} {r.list_id:<16} {when:%Y-%m-%d %H:%M %Z}  {r.subject}"
        )


@issue.command("show")
@click.argument("issue_id", type=int)
@json_option
@pass_app
def show_command(app: AppContext, issue_id: int, as_json: bool) -> None:
    """Show an issue: state, delivery counts, failures and its history."""
    with app.store.engine.connect() as conn:
        record = issue_store.get(conn, issue_id)
        data: dict[str, Any] = _summary(record) | {
            "articles": [a.as_dict() for a in editing.articles_of(conn, issue_id)],
            "recipients": tally.status_counts(conn, issue_id),
            "batches": tally.batch_counts(conn, issue_id),
            **recipients.problem_report(conn, issue_id),
            "history": issue_store.events(conn, issue_id),
            "audience": audience_origins.as_dict(conn, issue_id),
            "resumes_at": resumes_at(record, app.settings.outage_resume_minutes),
            "timezone": list_timezone(app, record.list_id),
        }
    if as_json:
        echo_json(data)
        return
    _print_show(data)


def list_timezone(app: AppContext, list_id: str) -> str:
    """The list's timezone; UTC (and labelled so) for an issue whose list has left the
    configuration, or while the configuration cannot be read: a listing still works."""
    try:
        lists = app.publisher.config.lists
    except NewsletterError:
        return "UTC"
    return lists[list_id].timezone if list_id in lists else "UTC"


def _tally(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))


def _print_show(data: dict[str, Any]) -> None:
    click.echo(f"Issue {data['id']} ({data['kind']}) for {data['list']}: {data['state']}")
    click.echo(f"  Subject:  {data['subject']}")
    if data["number"]:
        click.echo(f"  Number:   {data['number']} in {data['list']} (the masthead's)")
    if data["send_at"]:
        click.echo(f"  Send at:  {sendtime.describe(data['send_at'], data['timezone'])}")
    if data["pause_reason"]:
        click.echo(f"  Paused:   {data['pause_reason']}")
    if data["resumes_at"]:
        click.echo(f"  Resumes:  {data['resumes_at']:%Y-%m-%d %H:%M %Z}, by itself at the next "
                   "send (or `newsletter issue resume` now)")
    click.echo(f"  Articles: {len(data['articles'])}")
    for item in data["articles"]:
        line = f"{item['position']:>3}. {item['id']:>4}  {item['title']}  ({item['source']})"
        click.echo(f"  {line}")  # aligned up to 999 articles
    counts = data["recipients"]
    if counts:
        click.echo("  Recipients: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
        click.echo(
            "  Batches:    " + ", ".join(f"{n} {s}" for s, n in sorted(data["batches"].items()))
        )
    if data["audience"] is not None:
        click.echo(f"  Audience:   {data['audience']['summary']}")
    recipients.print_problems(data)
    click.echo("  History:")
    for event in data["history"]:
        note = f" — {event['note']}" if event["note"] else ""
        by = f" ({event['by']})" if event["by"] else ""
        click.echo(
            f"    {event['at']:%Y-%m-%d %H:%M:%S} {event['from'] or '·'} → {event['to']}{note}{by}"
        )


@issue.command("preview")
@click.argument("issue_id", type=int)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the HTML here (default var/preview/issue-ID.html).",
)
@click.option("--to", "email", help="Merge as this address (default: a sample reader).")
@click.option("--open", "open_browser", is_flag=True, help="Open the HTML in a browser.")
@click.option("--png", is_flag=True, help="Also screenshot it with headless Chromium.")
@pass_app
def preview_command(
    app: AppContext,
    issue_id: int,
    out: Path | None,
    email: str | None,
    open_browser: bool,
    png: bool,
) -> None:
    """Write the HTML and text of an issue as a subscriber would get them."""
    files = preview.write(app.publisher, issue_id, out=out, email=email)
    click.echo(f"Subject: {files.subject}")
    click.echo(f"HTML:    {files.html_path} ({files.html_bytes // 1024} KB)")
    click.echo(f"Text:    {files.text_path}")
    if png:
        for target in preview.screenshots(files):
            click.echo(f"PNG:     {target}")
    if open_browser and not webbrowser.open(files.html_path.resolve().as_uri()):
        raise click.ClickException(
            "no web browser to open the preview with (set BROWSER to one); the files are "
            f"{files.html_path} and {files.text_path}"
        )


@issue.command("edit")
@click.argument("issue_id", type=int)
@click.option("--subject")
@click.option("--preheader")
@click.option("--intro", type=click.File("r", encoding="utf-8"), help="Markdown introduction.")
@pass_app
def edit_command(
    app: AppContext,
    issue_id: int,
    subject: str | None,
    preheader: str | None,
    intro: IO[str] | None,
) -> None:
    """Change a draft's subject, preheader or introduction."""
    if subject is None and preheader is None and intro is None:
        raise click.UsageError("nothing to change: give --subject, --preheader or --intro")
    changed = editing.edit(
        app.publisher, issue_id, subject=subject, preheader=preheader,
        intro_md=intro.read() if intro else None,
    )
    if changed:
        click.echo(f"Issue {issue_id} updated: {', '.join(changed)}.")
    else:
        click.echo(f"Issue {issue_id} unchanged: it already says that.")


@issue.command("queue")
@click.argument("issue_id", type=int)
@click.option("--at", "at_text", help="Local time in the list's timezone, e.g. '2026-12-01 08:00'.")
@click.option("--force", is_flag=True, help="Queue despite warnings (never despite errors).")
@pass_app
def queue_command(app: AppContext, issue_id: int, at_text: str | None, force: bool) -> None:
    """Queue an issue to be sent now or at a time."""
    publisher = app.publisher
    report, when = editing.queue_local(publisher, issue_id, at_text, force=force)
    for warning in report.warnings:
        click.echo(f"Queued despite a warning (--force): {warning}")
    if when:
        if when.note:
            click.echo(when.note)
        with app.store.engine.connect() as conn:
            timezone = publisher.config.list(issue_store.get(conn, issue_id).list_id).timezone
        click.echo(f"Issue {issue_id} queued for {sendtime.describe(when.at, timezone)}.")
    else:
        click.echo(f"Issue {issue_id} queued; `newsletter send` (or the scheduler) sends it.")


def _simple(name: str, method: str, done: str, help_text: str) -> None:
    @issue.command(name, help=help_text)
    @click.argument("issue_id", type=int)
    @pass_app
    def command(app: AppContext, issue_id: int) -> None:
        getattr(app.publisher, method)(issue_id)
        click.echo(f"Issue {issue_id} {done}.")


_simple("cancel", "cancel", "cancelled", "Cancel an issue; batches not yet sent never will be.")
_simple("pause", "pause", "paused", "Pause a queued or sending issue after the batches in flight.")
_simple("resume", "resume", "queued again", "Resume a paused issue.")


@issue.command("retry")
@click.argument("issue_id", type=int)
@click.option(
    "--unknown",
    is_flag=True,
    help="Resend recipients whose outcome is unknown (they may get a duplicate).",
)
@pass_app
def retry_command(app: AppContext, issue_id: int, unknown: bool) -> None:
    """Send again to the recipients that failed (only those)."""
    count = app.publisher.retry(issue_id, unknown=unknown)
    what = "unknown-outcome" if unknown else "failed"
    if count:
        click.echo(f"Issue {issue_id}: {counted(count, what + ' recipient')} queued again.")
    else:
        click.echo(f"Issue {issue_id}: no {what} recipients to retry.")


@issue.command("test")
@click.argument("issue_id", type=int)
@click.option(
    "--to",
    "addresses",
    multiple=True,
    help="Test address (repeatable; default NEWSLETTER_TEST_RECIPIENTS).",
)
@pass_app
def test_command(app: AppContext, issue_id: int, addresses: tuple[str, ...]) -> None:
    """Send the real message, marked [TEST], to test addresses (not to the list)."""
    targets = list(addresses) or list(app.settings.test_recipients)
    if not targets:
        raise click.UsageError("give --to ADDRESS or set NEWSLETTER_TEST_RECIPIENTS in .env")
    for line in app.publisher.test_send(issue_id, targets):
        click.echo(f"  {line}")


@issue.command("check")
@click.argument("issue_id", type=int)
@json_option
@pass_app
def check_command(app: AppContext, issue_id: int, as_json: bool) -> None:
    """Run the pre-send checks on an issue; exit status 1 if any error is found."""
    report = app.publisher.check(issue_id)
    if as_json:
        echo_json({"issue": issue_id, **report.as_dict()})
    else:
        _print_findings(issue_id, report.errors, report.warnings)
    if report.errors:
        raise click.exceptions.Exit(1)


def _print_findings(issue_id: int, errors: tuple[str, ...], warnings: tuple[str, ...]) -> None:
    if not errors and not warnings:
        click.echo(f"Issue {issue_id}: no problems found.")
        return
    for title, findings in (("Errors", errors), ("Warnings", warnings)):
        click.echo(f"{title} ({len(findings)}):")
        for finding in findings:
            click.echo(f"  - {finding}")
    if errors:
        click.echo("Errors block queueing; fix them, then run `newsletter issue check` again.")
    else:
        click.echo("Warnings block queueing unless you pass --force to `newsletter issue queue`.")


from . import (  # noqa: E402
    issue_edit,  # noqa: F401  (the commands on a draft's articles and a queued time)
    recipients,  # `issue recipients`, and what show says of the recipients not delivered
)
