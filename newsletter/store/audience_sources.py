"""What an issue's audience was frozen from, so that a later issue can copy it.

Reading a list of a million members and writing each through Python is most of a large
send's time, yet a weekly's list often reads the same from one issue to the next: the same
files, byte for byte, kept to the same columns. Each freeze that read a whole list records
its key (``lists.audience_key``: the files' digests and everything else that shapes the
audience read from them) with where its rows are. A later issue to the list with the same
key copies those rows in SQL (``audience.copy_audience``), and the suppressions of the
day are applied to the copy as to any freeze.

A record is written only by a freeze that wrote every row of its issue itself: one taken
over from a worker that died may hold rows read under another key. A source is used only
while it still holds the rows it recorded (``find``).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, func, insert, select

from .tables import audience_sources, issues, recipients


@dataclass(frozen=True, slots=True)
class AudienceSource:
    """An issue whose audience a later one may copy, and where its ledger rows are."""

    issue_id: int
    first_row: int  # no row of the issue has a smaller id …
    last_row: int  # … or a larger one
    rows: int
    duplicates: int  # repeats its freeze dropped, reported again by a copy


def find(conn: Connection, list_id: str, key: str) -> AudienceSource | None:
    """The newest issue to ``list_id`` frozen from ``key`` whose rows are all there."""
    stmt = (
        select(audience_sources)
        .join(issues, issues.c.id == audience_sources.c.issue_id)
        .where(
            audience_sources.c.list_id == list_id,
            audience_sources.c.key == key,
            issues.c.audience_frozen == 1,
        )
        .order_by(audience_sources.c.issue_id.desc())
        .limit(1)
    )
    found = conn.execute(stmt).first()
    if found is None:
        return None
    source = AudienceSource(found.issue_id, found.first_row, found.last_row, found.rows,
                            found.duplicates)
    return source if _row_count(conn, source.issue_id) == source.rows else None


def record(conn: Connection, issue_id: int, list_id: str, key: str,
           source: AudienceSource) -> None:
    conn.execute(insert(audience_sources).values(
        issue_id=issue_id, list_id=list_id, key=key, first_row=source.first_row,
        last_row=source.last_row, rows=source.rows, duplicates=source.duplicates,
    ))


def has_rows(conn: Connection, issue_id: int) -> bool:
    """Whether any ledger row of the issue is written (a freeze that died left some)."""
    stmt = select(recipients.c.id).where(recipients.c.issue_id == issue_id).limit(1)
    return conn.execute(stmt).first() is not None


def _row_count(conn: Connection, issue_id: int) -> int:
    stmt = select(func.count()).where(recipients.c.issue_id == issue_id)
    return int(conn.execute(stmt).scalar() or 0)
