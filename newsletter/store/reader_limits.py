"""Fixed-window counters for the public forms (``reader_limits``), shared by every process.

A key (``client:…``, ``address:…``) counts hits from the start of its window; the first hit
after the window has ended starts a new one at 1. Counting is one upsert that returns the
count, so processes counting the same key at once never lose a hit.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import Connection, bindparam, case, delete
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .tables import reader_limits


class Hits(NamedTuple):
    hits: int  # in the current window, this one included
    window_start: datetime


def _hit_statement(dialect: str) -> Any:
    """The upsert that counts a hit, built once per dialect: a form's every submission
    runs it, and building a statement costs more than running this one."""
    table = reader_limits.c
    expired = table.window_start <= bindparam("cutoff")
    new = (postgresql_insert if dialect == "postgresql" else sqlite_insert)(reader_limits)
    return new.values(
        key=bindparam("key"), window_start=bindparam("at"), count=1
    ).on_conflict_do_update(
        index_elements=["key"],
        set_={
            "count": case((expired, 1), else_=table.count + 1),
            "window_start": case((expired, new.excluded.window_start),
                                 else_=table.window_start),
        },
    ).returning(table.count, table.window_start)


_HIT = {dialect: _hit_statement(dialect) for dialect in ("postgresql", "sqlite")}


def hit(conn: Connection, key: str, *, at: datetime, window: timedelta) -> Hits:
    """Count one hit of ``key`` at ``at``."""
    params = {"key": key[:400], "at": at, "cutoff": at - window}
    row = conn.execute(_HIT[conn.dialect.name], params).one()
    return Hits(int(row[0]), row[1])


def prune(conn: Connection, *, before: datetime) -> int:
    """Delete counters whose window started before ``before`` (they count nothing now)."""
    return int(conn.execute(delete(reader_limits).where(reader_limits.c.window_start < before))
               .rowcount)
