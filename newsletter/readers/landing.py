"""Where a confirmed sign-up lands on this host: the journal entry, copied into the list's
sign-up file (``lists.signups.apply_journal``)."""

from __future__ import annotations

from ..lists.config import PublicationConfig
from ..store import Store


def apply_on_this_host(config: PublicationConfig, store: Store, list_id: str) -> None:
    """Copy the list's journal entries this host has not applied yet into its files, so the
    reader just confirmed is in the next send from here (other hosts apply it before their
    next send)."""
