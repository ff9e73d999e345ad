"""``newsletter lists …`` (placeholder group, filled in by the lists module's owner)."""

from __future__ import annotations

import click

from . import cli


@cli.group()
def lists() -> None:
    """Check and administer mailing lists (subscribers/*.toml + *.csv)."""
