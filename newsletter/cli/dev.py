"""``newsletter dev …``: tools for development and demos, never needed to publish."""

from __future__ import annotations

from ..devtools.fakeprovider.command import fake_provider
from . import cli


@cli.group()
def dev() -> None:
    """Development helpers (fake delivery providers, …)."""


dev.add_command(fake_provider)
