"""Where an address stands with a list by its suppressions, and the one change the readers'
operations make to them beyond adding a row: a reader who had left every list coming back
to some.

Three standings decide what may be sent (``readers.signup`` when a form is sent,
``readers.outbox`` again when the message goes out):

- ``clear``: no suppression for the list or for every list;
- ``unsubscribed``: only the reader's own choice to leave (the list, or every list): a
  confirmation may go, since confirming is how they come back; nothing else may;
- ``blocked``: a bounce, a complaint, an admin, or a forgotten reader: nothing goes.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Connection

from ..models import ALL_LISTS, SuppressionReason
from ..store import suppressions
from ..store.suppressions import Suppression


class Standing(StrEnum):
    CLEAR = "clear"
    UNSUBSCRIBED = "unsubscribed"
    BLOCKED = "blocked"


def relevant(conn: Connection, email: str, list_id: str) -> list[Suppression]:
    """The suppressions that apply to ``email`` on ``list_id`` (the list's and every
    list's, the row of a forgotten reader included)."""
    return [s for s in suppressions.of_address(conn, email) if s.scope in (ALL_LISTS, list_id)]


def standing(conn: Connection, email: str, list_id: str) -> Standing:
    return standing_of(relevant(conn, email, list_id))


def standing_of(found: list[Suppression]) -> Standing:
    if not found:
        return Standing.CLEAR
    if all(s.reason is SuppressionReason.UNSUBSCRIBED for s in found):
        return Standing.UNSUBSCRIBED
    return Standing.BLOCKED


def split_leave_all(
    conn: Connection,
    email: str,
    lists: Iterable[str],
    back_on: Collection[str],
    *,
    source: str,
    at: datetime,
    detail: str = "",
) -> bool:
    """The reader had left every list (an ``unsubscribed`` row for ``*``) and now comes back
    to ``back_on``: that row goes, and every other of ``lists`` gets a row of its own, so it
    stays off. False, changing nothing, when they had not left every list (a ``*`` row for
    any other reason is never lifted)."""
    if not suppressions.lift_unsubscribed(conn, email, ALL_LISTS):
        return False
    for list_id in lists:
        if list_id not in back_on:
            suppressions.add(conn, email, SuppressionReason.UNSUBSCRIBED, scope=list_id,
                             source=source, detail=detail, at=at)
    return True
