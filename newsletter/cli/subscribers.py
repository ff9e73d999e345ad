"""``newsletter subscribers export|forget``: everything held about one reader, and forgetting
them at their request. The work is ``lists.reader_data`` and ``lists.forget``'s."""

from __future__ import annotations

import click

from ..lists import load_config
from ..lists.forget import ForgetReport, forget, plan_forget
from ..lists.reader_data import reader_data
from ..wording import counted
from . import cli
from .context import AppContext, echo_json, json_option, pass_app
from .lists import shown


@cli.group()
def subscribers() -> None:
    """One reader's data: everything held about an address, or forgetting it."""


@subscribers.command("export")
@click.argument("email")
@pass_app
def export(app: AppContext, email: str) -> None:
    """Print everything held about EMAIL as JSON.

    Its rows in every list's member files (file, line and columns), its suppressions, the
    ledger rows of every issue sent to it, provider events, and the address cache's entries.
    Any spelling of the address finds the same reader.
    """
    data = reader_data(load_config(app.settings), app.store, app.settings.var_dir, email)
    echo_json(data.to_json())


@subscribers.command("forget")
@click.argument("email")
@click.option("--dry-run", is_flag=True, help="Say what would be done; change nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@pass_app
def forget_command(app: AppContext, email: str, dry_run: bool, yes: bool, as_json: bool) -> None:
    """Remove EMAIL from every member file and erase what the store holds about it.

    Ledger rows and provider events are made anonymous (issue counts stay true); its
    suppressions, soft bounces and address-cache entries are deleted. Only a suppression
    keyed by a one-way hash of the address is kept, so that an old copy of a member file
    never mails it again. Refused (exit status 1) while a send that may mail it is under way.
    """
    config, settings = load_config(app.settings), app.settings
    plan = plan_forget(config, app.store, settings.var_dir, email)
    if dry_run:
        _show(plan, as_json)
        return
    if not yes:
        _print(plan, err=as_json, asking=True)  # what will happen, before the question
        click.confirm(f"Forget {plan.address}? This cannot be undone", abort=True, err=True)
    _show(forget(config, app.store, settings.var_dir, email), as_json)


def _show(report: ForgetReport, as_json: bool) -> None:
    if as_json:
        echo_json(report.to_json())
    else:
        _print(report)


def _print(report: ForgetReport, *, err: bool = False, asking: bool = False) -> None:
    """``asking``: the plan shown before the question, not a dry run's outcome."""
    lines = _lines(report)
    for line in lines[:-1] if asking and report.dry_run else lines:
        click.echo(line, err=err)


def _lines(report: ForgetReport) -> list[str]:
    done = "would be " if report.dry_run else ""
    lines = [f"{'Would forget' if report.dry_run else 'Forgot'} {report.address}:"]
    for edit in report.files:
        numbers = ", ".join(str(n) for n in edit.lines)
        lists = ", ".join(edit.lists)
        line = "lines" if len(edit.lines) > 1 else "line"
        read_by = f"list{'s' if len(edit.lists) > 1 else ''} {lists}"
        lines.append(f"  {shown(edit.path)}: {line} {numbers} {done}removed ({read_by})")
    lines += [f"  {item}" for item in _store_items(report, done)]
    if not report.anything_held:
        lines.append("  nothing else was held about this address")
    lines.append(_kept(report))
    for row in report.left_alone:
        lines.append(f"Note: {shown(row.path)}:{row.line} holds the address too; no list "
                     "reads that file, so it is left as it is (delete it, or edit it yourself).")
    if report.dry_run:
        lines.append("Dry run: nothing was changed.")
    return lines


def _store_items(report: ForgetReport, done: str) -> list[str]:
    items = []
    if report.ledger_rows:
        issues = ", ".join(str(i) for i in report.issues)
        which = f"issue{'s' if len(report.issues) > 1 else ''} {issues}"
        item = f"ledger: {counted(report.ledger_rows, 'row')} {done}made anonymous ({which})"
        if report.not_retried:
            item += (f"; {report.not_retried} failed or unknown {done}marked suppressed, "
                     "so no retry sends to it")
        items.append(item)
    counts = [
        (report.events, f"provider events: {report.events} {done}made anonymous"),
        (report.suppressions, f"suppressions: {report.suppressions} {done}removed"),
        (report.soft_bounces, f"soft-bounce count: {done}removed"),
        (report.cache_entries,
         f"address cache: {counted(report.cache_entries, 'spelling')} {done}removed"),
        (report.signups.journal_entries,
         f"sign-up journal: {counted(report.signups.journal_entries, 'entry', 'entries')} "
         f"{done}removed"),
        (report.signups.requests, f"sign-up requests: {report.signups.requests} {done}removed"),
        (report.signups.messages,
         f"messages to them (confirmations, welcomes): {report.signups.messages} {done}removed"),
    ]
    return items + [text for count, text in counts if count]


def _kept(report: ForgetReport) -> str:
    verb = "Would keep" if report.dry_run else "Kept"
    if report.already_forgotten:
        verb += " (already there)"
    return (
        f"{verb}: the suppression {report.kept} for every list, a one-way hash of the address "
        "rather than the address, so that an old copy of a member file never mails it again. "
        f"If they subscribe again, `newsletter suppressions remove {report.address}` lifts it."
    )
