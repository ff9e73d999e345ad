"""Issues and articles a page at a time, newest first, for a reader that walks them all.

Each page starts after the last row of the one before (a keyset, not an offset), so a walk
sees every row that existed when it began exactly once, however many are added meanwhile,
and a page costs the same at the end of the table as at its start.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, func, or_, select

from ..models import IssueState
from .articles import CATALOGUE_COLUMNS
from .tables import articles, issues

#: An article's place in the newest-first order: its publication date, else when it was
#: first seen (the order ``newsletter articles`` prints).
ARTICLE_SORT = func.coalesce(articles.c.published_at, articles.c.first_seen_at)


def issue_ids(
    conn: Connection,
    *,
    before_id: int | None,
    limit: int,
    list_id: str | None = None,
    states: Sequence[IssueState] = (),
) -> list[int]:
    """Up to ``limit`` issue ids below ``before_id`` (None: from the newest), newest first."""
    stmt = select(issues.c.id).order_by(issues.c.id.desc()).limit(limit)
    if before_id is not None:
        stmt = stmt.where(issues.c.id < before_id)
    if list_id is not None:
        stmt = stmt.where(issues.c.list_id == list_id)
    if states:
        stmt = stmt.where(issues.c.state.in_([str(s) for s in states]))
    return list(conn.execute(stmt).scalars())


def article_rows(
    conn: Connection, *, after: tuple[datetime, int] | None, limit: int,
    source_id: str | None = None,
) -> list[Row[Any]]:
    """Up to ``limit`` articles newest first (of one source, if given), after the one whose
    sort time and id are ``after`` (None: from the newest). Each row has the columns of
    ``articles.catalogue`` and ``sort_at``, its place in the order."""
    stmt = (
        select(*CATALOGUE_COLUMNS, ARTICLE_SORT.label("sort_at"))
        .order_by(ARTICLE_SORT.desc(), articles.c.id.desc())
        .limit(limit)
    )
    if after is not None:
        at, article_id = after
        sort_at = ARTICLE_SORT
        stmt = stmt.where(or_(sort_at < at, and_(sort_at == at, articles.c.id < article_id)))
    if source_id is not None:
        stmt = stmt.where(articles.c.source_id == source_id)
    return list(conn.execute(stmt))
