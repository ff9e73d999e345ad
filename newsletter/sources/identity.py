"""How an article is recognised from one fetch to the next, and how an edit is noticed.

``uid`` must survive edits (a fixed typo is the same article), so it comes from what the
publisher declares stable: the feed's guid/id, else the link. Only an entry with neither
falls back to hashing its text, and such an entry becomes a new article when edited:
there is nothing else to recognise it by. ``content_hash`` changes with every edit of the
title or body, which lets the store tell "edited" apart from "new".
"""

from __future__ import annotations

import hashlib

# Joins the parts so that ("ab", "c") and ("a", "bc") hash differently.
_SEPARATOR = "\x1f"


def content_hash(title: str, content: str) -> str:
    """Hex sha256 of the title and the body as the source published them."""
    digest = hashlib.sha256(_SEPARATOR.join((title, content)).encode("utf-8"))
    return digest.hexdigest()


def article_uid(guid: str, link: str, title: str, content: str) -> str:
    """The first stable identifier the entry has: guid, link, else a hash of its text."""
    for candidate in (guid, link):
        if candidate.strip():
            return candidate.strip()
    return "sha256:" + content_hash(title, content)
