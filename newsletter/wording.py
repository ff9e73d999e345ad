"""Counts in words, as every message to an editor, an admin or a reader puts them."""

from __future__ import annotations


def counted(count: int, noun: str, plural: str = "") -> str:
    """``count`` with the noun in the number it needs: "1 source", "2 sources", and
    ``counted(3, "batch", "batches")`` for a noun that does not just take an ``s``."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"
