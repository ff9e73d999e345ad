"""``newsletter collect``: fetch every source and report what is new."""

from __future__ import annotations

import click

from ..lists.config import load_config
from ..sources.collect import CollectReport
from ..sources.collect import collect as collect_sources
from ..wording import counted
from . import cli
from .context import AppContext, echo_json, json_option, pass_app, reported_below


def print_collect(report: CollectReport) -> None:
    for source in report.sources:
        if source.status == "error":
            click.echo(f"  {source.source_id}: ERROR {source.error}")
            continue
        detail = f"{source.new} new, {source.edited} edited, {source.unchanged} unchanged"
        if source.archived:
            detail += f", {source.archived} older than the look-back window (not sent)"
        if source.status == "not-modified":
            detail = "not modified since last time"
        click.echo(f"  {source.source_id}: {detail}")
        for problem in source.problems:
            click.echo(f"    warning: {problem}")


@cli.command()
@json_option
@pass_app
def collect(app: AppContext, as_json: bool) -> None:
    """Fetch every source; remember new and edited articles."""
    # Not app.publisher.collect(): the publisher's module loads the whole send path, which
    # would double what a collect that finds nothing new costs.
    with reported_below("newsletter.sources.collect"):
        report = collect_sources(app.settings, app.store, load_config(app.settings).sources)
    if as_json:
        echo_json(report.as_dict())
        return
    click.echo(f"Collected {counted(report.new, 'new article')} from "
               f"{counted(len(report.sources), 'source')}:")
    print_collect(report)
    if report.errors:
        raise click.ClickException(f"{counted(len(report.errors), 'source')} could not be read")
