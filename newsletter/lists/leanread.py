"""The lean read of a member file the address cache vouches for: its rows become recipients
unchecked, since these very bytes were read before, and the rows that were refused or
corrected then are replayed from their notes (``addresscache.RowNote``).

About 1.5 µs a row against the 5.5 µs of checking each row (``members``), which makes a
later read of a large list several times cheaper than its first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Set
from pathlib import Path
from types import MappingProxyType

from ..models import Recipient
from .addresscache import RowNote
from .csvfile import EMAIL, NAME, Header
from .problems import Counts, Problem

NO_FIELDS: Mapping[str, str] = MappingProxyType({})
#: A named tuple made from a tuple in C, without its Python-level ``__new__``: the lean
#: path makes one per member, a million for a large list.
make_recipient = tuple.__new__


def lean_recipients(
    rows: Iterator[list[str]],
    header: Header,
    notes: Mapping[int, RowNote],
    path: Path,
    list_id: str,
    keep: Set[str] | None,
    report: Callable[[Problem], None],
    counts: Counts,
) -> Iterator[Recipient]:
    """The recipients of ``rows`` (the records after the header, as ``clean_rows`` splits
    them), with the ``keep`` columns (None: all); a noted row refused is reported to
    ``report``. ``counts`` grows by what was read, even when the read is left off."""
    email_at = header.email_index
    name_at = header.columns.index(NAME) if NAME in header.columns else None
    extra = [
        (column, at)
        for at, column in enumerate(header.columns)
        if column not in (EMAIL, NAME) and (keep is None or column in keep)
    ]
    made = refused = 0
    try:
        for record, fields in enumerate(rows):
            if record in notes:  # a row refused or corrected when these bytes were read
                note = notes[record]
                if note.normalised is None:
                    refused += 1
                    report(Problem(path, note.line, note.reason or "invalid row"))
                    continue
                email = note.normalised
            else:
                email = fields[email_at].strip()
                if not email:
                    continue  # in a file read clean, only a row of empty cells has none
            made += 1
            yield make_recipient(Recipient, (
                email,
                fields[name_at].strip() if name_at is not None else "",
                {column: fields[at].strip() for column, at in extra} if extra else NO_FIELDS,
                list_id,
            ))
    finally:
        counts.rows += made + refused
        counts.invalid += refused
        counts.members += made


def kept_fields(values: Mapping[str, str], names: Set[str] | None) -> Mapping[str, str]:
    """A member's extra columns, limited to ``names`` (None: all of them)."""
    if names is None:
        return values
    return {k: v for k, v in values.items() if k in names} if names and values else NO_FIELDS
