"""Where a confirmed sign-up lands on this host: the journal entry, copied into the list's
sign-up file (``lists.signups.apply_journal``)."""

from __future__ import annotations

import logging

from ..errors import NewsletterError
from ..lists.config import PublicationConfig
from ..lists.member_keys import MemberKeys
from ..lists.signups import apply_journal
from ..store import Store

log = logging.getLogger(__name__)


def apply_on_this_host(
    config: PublicationConfig, store: Store, list_id: str, members: MemberKeys
) -> None:
    """Copy the list's journal entries this host has not applied yet into its files, so the
    reader just confirmed is in this host's files at once (every host applies the journal
    before its next send anyway). A failure here loses nothing: the entry is recorded, and
    the next send, ``newsletter lists sync`` or confirmation applies it. ``members``: the
    process's index of the member files, so that a join costs a look-up, not a reading of
    every file of the list."""
    try:
        apply_journal(config, store, list_id, members=members)
    except (NewsletterError, OSError) as exc:
        log.warning("the sign-up journal of %s could not be applied to this host's files "
                    "now; the next send applies it: %s", list_id, exc)
