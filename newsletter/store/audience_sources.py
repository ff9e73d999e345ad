"""What an issue's audience was frozen from, so that a later issue can copy it.

Reading a list of a million members and writing each through Python is most of a large
send's time, yet a weekly's list often reads the same from one issue to the next: the same
files, byte for byte, kept to the same columns, or the same but for the rows appended to its
sign-up file since. Each freeze that read a whole list records what it read (``SourceKey``:
the key of everything that shapes the audience but the files' bytes, and each file's name,
size and digest) with where its rows are. A later issue to the list with the same key and
the same files copies those rows in SQL (``audience_reuse``); with rows appended to the last
file since, it copies them and reads the appended rows alone (``Continued``). The
suppressions of the day are applied to the copy as to any freeze.

A record is written only by a freeze that wrote every row of its issue itself: one taken
over from a worker that died may hold rows read under another key. A source is used only
while it still holds the rows it recorded (``is_whole``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import Connection, func, insert, select

from ..models import Recipient
from .tables import audience_sources, issues, recipients

#: The most recent sources of a list a freeze considers (the newest usable one is taken).
CANDIDATES = 3


class FileMark(NamedTuple):
    """One member file as it was read: its name, its size in bytes, its SHA-256 in hex."""

    name: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class SourceKey:
    """What an audience is read from: ``rules``, the SHA-256 of everything but the files'
    bytes (the list, the files' names, the columns kept, the reading rules, the readers
    forgotten), and each file as it is now."""

    rules: str
    files: tuple[FileMark, ...]


@dataclass(frozen=True, slots=True)
class AudienceSource:
    """An issue whose audience a later one may copy, and where its ledger rows are."""

    issue_id: int
    first_row: int  # no row of the issue has a smaller id …
    last_row: int  # … or a larger one
    rows: int
    duplicates: int  # repeats its freeze dropped, reported again by a copy
    files: tuple[FileMark, ...] = ()  # what it was read from


@dataclass(frozen=True, slots=True)
class Continued:
    """An audience that is ``source``'s copied, then ``members`` (the rows appended to the
    list's last file since ``source`` read it), read as any list is."""

    source: AudienceSource
    members: Iterable[Recipient]
    appended_to: str = ""  # the file they come from, for editors to read (``audience_origins``)
    from_line: int = 0  # its first line they come from (1: the whole file)


def candidates(conn: Connection, list_id: str, rules: str) -> list[AudienceSource]:
    """The newest few issues to ``list_id`` whose audiences, frozen, were read under
    ``rules``: newest first."""
    stmt = (
        select(audience_sources)
        .join(issues, issues.c.id == audience_sources.c.issue_id)
        .where(
            audience_sources.c.list_id == list_id,
            audience_sources.c.key == rules,
            audience_sources.c.files.is_not(None),
            issues.c.audience_frozen == 1,
        )
        .order_by(audience_sources.c.issue_id.desc())
        .limit(CANDIDATES)
    )
    return [_source(row) for row in conn.execute(stmt)]


def find(conn: Connection, list_id: str, key: SourceKey) -> AudienceSource | None:
    """The newest whole source read from exactly ``key``'s files."""
    for source in candidates(conn, list_id, key.rules):
        if source.files == key.files and is_whole(conn, source):
            return source
    return None


def is_whole(conn: Connection, source: AudienceSource) -> bool:
    """Whether the source still holds every row it recorded (none was deleted since)."""
    return _row_count(conn, source.issue_id) == source.rows


def record(conn: Connection, issue_id: int, list_id: str, key: SourceKey,
           source: AudienceSource) -> None:
    conn.execute(insert(audience_sources).values(
        issue_id=issue_id, list_id=list_id, key=key.rules, first_row=source.first_row,
        last_row=source.last_row, rows=source.rows, duplicates=source.duplicates,
        files=[list(mark) for mark in key.files],
    ))


def has_rows(conn: Connection, issue_id: int) -> bool:
    """Whether any ledger row of the issue is written (a freeze that died left some)."""
    stmt = select(recipients.c.id).where(recipients.c.issue_id == issue_id).limit(1)
    return conn.execute(stmt).first() is not None


def _source(row: Any) -> AudienceSource:
    files = tuple(FileMark(str(name), int(size), str(digest)) for name, size, digest in row.files)
    return AudienceSource(row.issue_id, row.first_row, row.last_row, row.rows, row.duplicates,
                          files)


def _row_count(conn: Connection, issue_id: int) -> int:
    stmt = select(func.count()).where(recipients.c.issue_id == issue_id)
    return int(conn.execute(stmt).scalar() or 0)
