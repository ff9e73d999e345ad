"""``newsletter lists …``: check, show and administer the mailing lists.

``check`` treats invalid rows, unreadable files and bad headers as errors (exit status 1)
and duplicates or empty lists as warnings (reported, exit status 0), so a publication whose
check passes has nothing in its CSV files that would be silently skipped except repeats.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

import click

from ..errors import ConfigError
from ..lists import (
    ExportReport,
    ListStats,
    Problem,
    PublicationConfig,
    Severity,
    add_member,
    export_members,
    import_members,
    list_stats,
    load_config,
    normalise_address,
    remove_address,
)
from ..lists.addresscache import opened_cache
from ..lists.check import ListCheck, PublicationCheck
from ..lists.csvfile import EMAIL, FIELD_NAME, NAME
from ..lists.signups import ApplyReport, apply_journal
from ..models import Cadence, MailingList, Subscriber
from ..wording import counted
from . import cli
from .context import AppContext, echo_json, json_option, pass_app


@cli.group()
def lists() -> None:
    """Check and administer mailing lists (subscribers/publication.toml + member CSVs)."""


def shown(path: Path) -> str:
    """A path as the user would type it: relative to the current folder when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def problem_line(problem: Problem) -> str:
    where = shown(problem.path) + (f":{problem.line}" if problem.line is not None else "")
    return f"{where}: {problem.severity}: {problem.reason}"


@lists.command("check")
@json_option
@pass_app
def check(app: AppContext, as_json: bool) -> None:
    """Validate publication.toml and every members CSV.

    Prints each problem as FILE:LINE: SEVERITY: REASON, then a summary per list. Invalid
    rows are errors (exit status 1); duplicate addresses are warnings.
    """
    run = PublicationCheck(app.settings, on_problem=None if as_json else _print_problem)
    config = run.load()
    summaries: dict[str, dict[str, Any]] = {}
    if config is not None:
        with opened_cache(app.settings.var_dir) as cache:
            for list_id in config.lists:
                checked = run.check_list(config, list_id, cache)
                if not as_json:
                    _print_summary(checked)
                summaries[list_id] = checked.summary()
    if not _verdict(run, summaries, as_json):
        raise click.exceptions.Exit(1)


def _print_problem(problem: Problem) -> None:
    click.echo(problem_line(problem))


def _print_summary(checked: ListCheck) -> None:
    counts = checked.counts
    files = ", ".join(shown(p) for p in checked.files)
    click.echo(
        f"{checked.list_id}: {counted(counts.members, 'member')} in {files}; "
        f"{counted(counts.invalid, 'invalid row')}, "
        f"{counted(counts.duplicates, 'duplicate')}"
    )


def _verdict(run: PublicationCheck, summaries: dict[str, dict[str, Any]], as_json: bool) -> bool:
    """Print the outcome of a check; whether it passed (warnings alone do not fail it)."""
    errors, warnings = run.tally(Severity.ERROR), run.tally(Severity.WARNING)
    if as_json:
        echo_json(
            {
                "ok": not errors,
                "errors": errors,
                "warnings": warnings,
                "problems": [p.to_json() for p in run.problems],
                "lists": summaries,
            }
        )
    else:
        click.echo(
            f"{'FAILED' if errors else 'OK'}: {counted(len(summaries), 'list')} checked, "
            f"{counted(errors, 'error')}, {counted(warnings, 'warning')}"
        )
    return not errors


@lists.command("show")
@click.argument("list_id", metavar="[LIST]", required=False)
@json_option
@pass_app
def show(app: AppContext, list_id: str | None, as_json: bool) -> None:
    """Describe the lists, or just LIST.

    Shows delivery settings, sources and counts: members, suppressed, invalid rows.
    """
    config = load_config(app.settings)
    chosen = [config.list(list_id)] if list_id else list(config.lists.values())
    deliverability = app.settings.check_deliverability
    with app.store.engine.begin() as conn, opened_cache(app.settings.var_dir) as cache:
        stats = [
            list_stats(config, m.id, conn, check_deliverability=deliverability, cache=cache)
            for m in chosen
        ]
    if as_json:
        echo_json(
            {
                "publication": {"name": config.publication.name},
                "lists": [_list_json(config, m, s) for m, s in zip(chosen, stats, strict=True)],
            }
        )
        return
    for mailing_list, numbers in zip(chosen, stats, strict=True):
        _print_list(config, mailing_list, numbers)


def _sender(config: PublicationConfig, mailing_list: MailingList) -> dict[str, str]:
    publication = config.publication
    return {
        "from_name": mailing_list.from_name or publication.from_name,
        "from_email": mailing_list.from_email or publication.from_email,
        "reply_to": mailing_list.reply_to or publication.reply_to,
    }


def _list_json(config: PublicationConfig, m: MailingList, stats: ListStats) -> dict[str, Any]:
    digest = m.cadence == Cadence.DIGEST
    return {
        "id": m.id,
        "title": m.title,
        "description": m.description,
        "cadence": str(m.cadence),
        "schedule": m.schedule if digest else None,
        "timezone": m.timezone,
        "approval": str(m.approval),
        "template": m.template,
        "max_articles": m.max_articles,
        "sources": list(m.sources),
        "members_files": [str(p) for p in stats.files],
        "signups_file": str(signups) if (signups := config.signup_path(m.id)) else None,
        **_sender(config, m),
        "members": stats.counts.members,
        "suppressed": stats.suppressed,
        "recipients": stats.recipients,
        "invalid": stats.counts.invalid,
        "duplicates": stats.counts.duplicates,
    }


def _print_list(config: PublicationConfig, m: MailingList, stats: ListStats) -> None:
    sender = _sender(config, m)
    when = f"{m.schedule} ({m.timezone})" if m.cadence == Cadence.DIGEST else "as published"
    rows = [
        ("cadence", f"{m.cadence}, {when}"),
        ("approval", str(m.approval)),
        ("template", f"{m.template}, up to {m.max_articles} articles"),
        ("sources", ", ".join(m.sources)),
        ("from", f"{sender['from_name']} <{sender['from_email']}>"),
        ("members", f"{stats.counts.members} in {', '.join(shown(p) for p in stats.files)}"),
        ("sign-ups", _signups_line(config, m)),
        ("suppressed", f"{stats.suppressed} (recipients: {stats.recipients})"),
        (
            "invalid",
            f"{counted(stats.counts.invalid, 'row')}; "
            f"{counted(stats.counts.duplicates, 'duplicate')}",
        ),
    ]
    click.echo(f"{m.id}: {m.title}")
    if m.description:
        click.echo(f"  {m.description}")
    for label, value in rows:
        click.echo(f"  {label + ':':<12}{value}")
    click.echo()


def _signups_line(config: PublicationConfig, m: MailingList) -> str:
    path = config.signup_path(m.id)
    if path is None:
        return "not taken (no signups key)"
    return shown(path) + ("" if path.exists() else " (made by the first confirmed reader)")


def _parse_fields(
    _ctx: click.Context, _param: click.Parameter, values: Sequence[str]
) -> dict[str, str]:
    fields: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep or not FIELD_NAME.fullmatch(key) or key in (EMAIL, NAME):
            raise click.BadParameter(
                f"{item!r}: expected KEY=VALUE with KEY a column name such as city "
                "(use --name for the name)"
            )
        fields[key] = value.strip()
    return fields


@lists.command("add")
@click.argument("list_id", metavar="LIST")
@click.argument("email")
@click.option("--name", default="", help="The subscriber's name.")
@click.option(
    "--field",
    "fields",
    multiple=True,
    metavar="KEY=VALUE",
    callback=_parse_fields,
    help="Another column's value, e.g. --field city=Kellmouth (repeatable).",
)
@pass_app
def add(app: AppContext, list_id: str, email: str, name: str, fields: dict[str, str]) -> None:
    """Add EMAIL to LIST.

    The row is appended to the list's first members file, in that file's column order.
    """
    config = load_config(app.settings)
    config.list(list_id)
    address = normalise_address(email, check_deliverability=app.settings.check_deliverability)
    subscriber = Subscriber(address, name.strip(), fields)
    with app.store.engine.begin() as conn, opened_cache(app.settings.var_dir) as cache:
        added = add_member(config, list_id, subscriber, conn, cache)
    if added.existing is not None:
        where = f"{shown(added.path)}:{added.existing.line}"
        click.echo(f"{address} is already in {list_id} ({where}); nothing changed.")
    else:
        click.echo(f"Added {address} to {list_id} ({shown(added.path)}).")


@lists.command("remove")
@click.argument("list_id", metavar="LIST")
@click.argument("email")
@pass_app
def remove(app: AppContext, list_id: str, email: str) -> None:
    """Remove EMAIL from LIST.

    Its rows leave every members file of the list; all other lines stay as they are.
    """
    config = load_config(app.settings)
    config.list(list_id)
    removed = remove_address(config, list_id, email)
    for path, lines in removed.items():
        line_words = ", ".join(str(n) for n in lines)
        click.echo(f"Removed {email} from {list_id}: {shown(path)} line {line_words}.")
        _note_shared(config, path, list_id)


def _note_shared(config: PublicationConfig, path: Path, list_id: str) -> None:
    others = [other for other in config.lists_reading(path) if other != list_id]
    if others:
        click.echo(
            f"Note: {shown(path)} is also read by {', '.join(others)}; "
            "the address has left those lists too."
        )


@lists.command("import")
@click.argument("list_id", metavar="LIST")
@click.argument(
    "source", metavar="FILE.csv", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--dry-run", is_flag=True, help="Report what would happen; change nothing.")
@pass_app
def import_(app: AppContext, list_id: str, source: Path, dry_run: bool) -> None:
    """Add the new rows of FILE.csv to LIST.

    Valid rows that are not members yet and not suppressed are appended to the list's
    first members file; every other row is reported with its line number.
    """
    config = load_config(app.settings)
    config.list(list_id)
    with app.store.engine.begin() as conn:
        report = import_members(
            config,
            list_id,
            source.resolve(),
            conn,
            dry_run=dry_run,
            check_deliverability=app.settings.check_deliverability,
        )
    for problem in sorted(report.problems, key=lambda p: p.line or 0):
        click.echo(problem_line(problem))
    click.echo(
        f"new: {report.new}, duplicate: {report.duplicate}, "
        f"invalid: {report.invalid}, suppressed: {report.suppressed}"
    )
    if dry_run:
        click.echo(f"Dry run: nothing was written ({shown(report.target)} is unchanged).")
    else:
        click.echo(f"Added {counted(report.new, 'member')} to {shown(report.target)}.")


@lists.command("sync")
@click.argument("list_id", metavar="[LIST]", required=False)
@json_option
@pass_app
def sync(app: AppContext, list_id: str | None, as_json: bool) -> None:
    """Copy the sign-up journal into this host's member files (every list, or LIST).

    Readers who confirmed a sign-up or changed their name, on any host sharing the
    database, are written to the files. A send does this itself before it reads a list.
    """
    config = load_config(app.settings)
    chosen = [config.list(list_id).id] if list_id else list(config.lists)
    reports = [apply_journal(config, app.store, chosen_id) for chosen_id in chosen]
    if as_json:
        echo_json({r.list_id: _sync_json(r) for r in reports})
        return
    for report in reports:
        click.echo(f"{report.list_id}: {counted(len(report.joined), 'sign-up')} added, "
                   f"{counted(len(report.renamed), 'row')} renamed, "
                   f"{report.already_members} already members (journal position "
                   f"{report.position})")
        for address in report.joined:
            click.echo(f"  + {address}")
        if report.no_signup_file:
            click.echo(f"  {counted(report.no_signup_file, 'sign-up')} skipped: the list has "
                       "no signups key any more")


def _sync_json(report: ApplyReport) -> dict[str, Any]:
    return {"position": report.position, "entries": report.entries, "joined": report.joined,
            "already_members": report.already_members, "renamed": report.renamed,
            "skipped_no_signups_file": report.no_signup_file}


@lists.command("export")
@click.argument("list_id", metavar="LIST")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of standard output.",
)
@pass_app
def export(app: AppContext, list_id: str, out: Path | None) -> None:
    """Write the members of LIST, minus suppressed addresses, as CSV."""
    config = load_config(app.settings)
    _refuse_member_file(out, config.declared_member_paths(list_id))
    # atomic: a file given with --out appears complete or not at all, never half-written
    target = "-" if out is None else str(out)
    with click.open_file(target, "w", encoding="utf-8", atomic=out is not None) as stream:
        report = _export(app, config, list_id, stream)
    click.echo(
        f"Exported {counted(report.written, 'member')} of {list_id} "
        f"({report.suppressed} suppressed and {report.invalid} invalid left out).",
        err=True,
    )


def _export(app: AppContext, config: PublicationConfig, list_id: str, out: IO[str]) -> ExportReport:
    with app.store.engine.begin() as conn:
        return export_members(
            config, list_id, conn, out, check_deliverability=app.settings.check_deliverability
        )


def _refuse_member_file(out: Path | None, members: Iterable[Path]) -> None:
    if out is not None and out.resolve() in {p.resolve() for p in members}:
        raise ConfigError(f"{out} is one of the list's own members files; choose another --out")


from . import lists_form  # noqa: E402, F401 - ``lists form`` attaches itself to the group
