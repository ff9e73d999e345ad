"""Cursors: where the next page starts, handed to the caller as an opaque string.

A cursor is the last item's place in the order (an id; for articles their time and id; an
address for recipients, and an address and scope for suppressions),
as JSON in URL-safe base64. It is not signed: one made up only moves where a page starts,
which the caller may do anyway. One that is not a cursor at all is a 400 naming it.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ...editor.report import MAX_QUERY
from .problems import invalid
from .schemas import NO_NUL, Id


class Cursor(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class IssueCursor(Cursor):
    """Issues come newest (highest id) first: the next page is below this id."""

    before: Id


class ArticleCursor(Cursor):
    """Articles come newest first by date, then by id: the next page is after these."""

    at: datetime
    id: Id


class RecipientCursor(Cursor):
    """An issue's recipients come by address: the next page is after this one (as
    ``editor.report.recipients`` takes it, ``after``)."""

    after: str = Field(min_length=1, max_length=MAX_QUERY, pattern=NO_NUL)


class SuppressionsCursor(Cursor):
    """Suppressions come by address, then scope: the next page is after these."""

    email: str = Field(max_length=MAX_QUERY, pattern=NO_NUL)
    scope: str = Field(max_length=MAX_QUERY, pattern=NO_NUL)


C = TypeVar("C", bound=Cursor)


def encode(cursor: Cursor) -> str:
    return base64.urlsafe_b64encode(cursor.model_dump_json().encode()).decode().rstrip("=")


def decode(kind: type[C], text: str | None) -> C | None:
    if text is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(text.encode("ascii") + b"=" * (-len(text) % 4))
        return kind.model_validate_json(raw)
    except (ValueError, ValidationError) as exc:  # binascii.Error and UnicodeError are too
        raise invalid(
            "cursor", "not a cursor this API gave out; leave it out to start from the first page",
            where="query", status=400,
        ) from exc
