"""What ``newsletter status --json`` shows, for ``GET /api/v1/status``.

An adapter for now: the command gathers it in ``cli/status.py``, above the web layer, so
this reads the same parts (the scheduler's lock and jobs, the issues in progress, the last
collection) through the layers below. Once that gathering lives below the web layer, this
module becomes one call to it.
"""

from __future__ import annotations

import time
from datetime import UTC
from typing import Any

from sqlalchemy import Connection, select

from ...models import IssueState
from ...schedule.lock import current_holder
from ...schedule.scheduler import read_schedule
from ...store import Store, tally
from ...store import issues as issue_store
from ...store.tables import collections

IN_PROGRESS = (IssueState.QUEUED, IssueState.SENDING, IssueState.PAUSED)


def gather(store: Store) -> dict[str, Any]:
    with store.engine.connect() as conn:
        return {
            "lock": _lock(conn),
            "schedule": [
                {"id": j.id, "name": j.name, "next_run": j.next_run, "timezone": j.timezone}
                for j in read_schedule(store.engine)
            ],
            "issues": [_progress(conn, r) for r in reversed(
                issue_store.find(conn, states_in=IN_PROGRESS, limit=1000))],
            "last_collection": _last_collection(conn),
        }


def _lock(conn: Connection) -> dict[str, Any] | None:
    holder = current_holder(conn)
    if holder is None:
        return None
    return {"owner": holder.owner, "until": holder.until_utc,
            "expired": holder.expired(time.time())}


def _progress(conn: Connection, record: issue_store.IssueRecord) -> dict[str, Any]:
    counts = tally.status_counts(conn, record.id)
    return {
        "id": record.id, "list": record.list_id, "state": str(record.state),
        "subject": record.subject, "send_at": record.send_at, "started_at": record.started_at,
        "pause_reason": record.pause_reason, "total": sum(counts.values()),
        "recipients": counts,
    }


def _last_collection(conn: Connection) -> dict[str, Any] | None:
    row = conn.execute(
        select(collections.c.at, collections.c.report).order_by(collections.c.id.desc()).limit(1)
    ).first()
    if row is None:
        return None
    at = row.at if row.at.tzinfo is not None else row.at.replace(tzinfo=UTC)
    return {"at": at, **dict(row.report)}
