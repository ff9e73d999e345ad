"""How each issue's audience was frozen, for editors to read (``issue show``, the report).

The log says it once, as the freeze ends; this keeps it with the issue: read from the list's
files, or copied from an earlier issue read from the same files, then perhaps the rows
appended to the list's last file since (or a file new since) read after the copy; and how
many rows the audience has and how many repeats were dropped, when one process froze it
all (a freeze taken over from a worker that died counts only its own part).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from .db import dialect_insert
from .tables import issue_audiences


@dataclass(frozen=True, slots=True)
class AudienceOrigin:
    """Where an audience came from: ``copied_from`` an issue (None: read from the files),
    then the rows of ``appended_to`` from line ``from_line`` on (1: the whole file)."""

    copied_from: int | None = None
    appended_to: str = ""
    from_line: int = 0

    def describe(self) -> str:
        if self.copied_from is None:
            return "read from the list's files"
        copied = f"copied from issue {self.copied_from}"
        if not self.appended_to:
            return f"{copied}, whose list files read the same"
        if self.from_line <= 1:
            return f"{copied}, then {self.appended_to}, new since, read"
        return f"{copied}, then the rows appended to {self.appended_to} since (from line " \
               f"{self.from_line:,}) read"


@dataclass(frozen=True, slots=True)
class FrozenAudience:
    """An issue's audience as frozen: where from, and its rows and repeats (None when the
    freeze was taken over)."""

    origin: AudienceOrigin
    rows: int | None
    duplicates: int | None

    def summary(self) -> str:
        """How it was frozen, and the repeats dropped, in words."""
        repeats = self.duplicates
        dropped = f"; {repeats:,} repeated address{'es' if repeats != 1 else ''} dropped" \
            if repeats else ""
        return self.origin.describe() + dropped

    def as_dict(self) -> dict[str, Any]:
        return {
            "summary": self.summary(), "copied_from": self.origin.copied_from,
            "appended_to": self.origin.appended_to or None,
            "from_line": self.origin.from_line or None,
            "rows": self.rows, "duplicates": self.duplicates,
        }


def record(conn: Connection, issue_id: int, frozen: FrozenAudience) -> None:
    """Keep it, in the transaction that ends the freeze (which happens once an issue)."""
    origin = frozen.origin
    conn.execute(dialect_insert(conn, issue_audiences).values(
        issue_id=issue_id, copied_from=origin.copied_from, appended_to=origin.appended_to,
        from_line=origin.from_line, rows=frozen.rows, duplicates=frozen.duplicates,
    ).on_conflict_do_nothing(index_elements=["issue_id"]))


def as_dict(conn: Connection, issue_id: int) -> dict[str, Any] | None:
    """``of``, as the JSON of ``issue show --json`` and the API give it."""
    frozen = of(conn, issue_id)
    return frozen.as_dict() if frozen is not None else None


def of(conn: Connection, issue_id: int) -> FrozenAudience | None:
    """How the issue's audience was frozen; None before it was (or for an issue frozen
    before this was kept)."""
    row = conn.execute(
        select(issue_audiences).where(issue_audiences.c.issue_id == issue_id)
    ).first()
    if row is None:
        return None
    origin = AudienceOrigin(row.copied_from, row.appended_to, row.from_line)
    return FrozenAudience(origin, row.rows, row.duplicates)
