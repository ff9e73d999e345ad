"""What the public archive reads: issues that went out, and their web edition.

Only issues that were (or are being) sent count, and only those with a web edition, which
is rendered without any recipient's data. Drafts, queued, paused and cancelled issues are
not published: the archive answers for them exactly as for issues that do not exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Select, func, select

from ..models import IssueState
from .tables import issues

VISIBLE_STATES = (IssueState.SENT, IssueState.PARTIALLY_FAILED, IssueState.SENDING)
_VISIBLE = [str(state) for state in VISIBLE_STATES]


@dataclass(frozen=True, slots=True)
class ArchivedIssue:
    """One published issue as the archive lists it: no body, nothing about its readers."""

    id: int
    list_id: str
    subject: str
    preheader: str
    sent_at: datetime


def _published() -> Select[Any]:
    # When it went out; an issue shown while sending has no finish yet, and created_at is
    # never empty, so every published issue has a date.
    when = func.coalesce(issues.c.started_at, issues.c.finished_at, issues.c.created_at)
    return (
        select(issues.c.id, issues.c.list_id, issues.c.subject, issues.c.preheader,
               when.label("sent_at"))
        .where(issues.c.state.in_(_VISIBLE), issues.c.web_html != "")
        .order_by(when.desc(), issues.c.id.desc())
    )


def _aware(value: datetime) -> datetime:
    """SQLite hands datetimes back naive; they were stored as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def published_issues(conn: Connection, list_id: str | None = None) -> list[ArchivedIssue]:
    """The published issues of ``list_id`` (of every list: None), newest first."""
    stmt = _published()
    if list_id is not None:
        stmt = stmt.where(issues.c.list_id == list_id)
    return [
        ArchivedIssue(row.id, row.list_id, row.subject, row.preheader, _aware(row.sent_at))
        for row in conn.execute(stmt)
    ]


def published_html(conn: Connection, list_id: str, issue_id: int) -> str | None:
    """The web edition of a published issue of ``list_id``; None for any other id."""
    found = published_pages(conn, list_id, [issue_id])
    return found.get(issue_id)


def published_pages(conn: Connection, list_id: str, issue_ids: Sequence[int]) -> dict[int, str]:
    """The web editions of those of ``issue_ids`` that are published issues of ``list_id``."""
    if not issue_ids:
        return {}
    stmt = select(issues.c.id, issues.c.web_html).where(
        issues.c.id.in_(list(issue_ids)),
        issues.c.list_id == list_id,
        issues.c.state.in_(_VISIBLE),
        issues.c.web_html != "",
    )
    return {row.id: row.web_html for row in conn.execute(stmt)}
