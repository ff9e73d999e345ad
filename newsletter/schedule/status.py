"""The publication's running state: who holds the scheduler lock, what runs next, what is
queued, sending or paused (and, for an issue the senders paused, why: the provider down,
which the senders resume by themselves, or credentials refused, which a person puts right),
when each source was last collected, and the database.

``newsletter status`` prints part of it; the desk's status page and the HTTP API show it
all. Each part is a frozen dataclass whose ``as_dict()`` is ready for JSON.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, text
from sqlalchemy.exc import SQLAlchemyError

from ..config import Settings
from ..delivery.outage import UNAVAILABLE, resumes_at
from ..errors import NewsletterError
from ..lists.config import load_config
from ..models import IssueState
from ..store import Store, tally
from ..store import issues as issue_store
from ..store.db import HEAD_REVISION, current_revision
from ..store.tables import collections, source_state
from .lock import current_holder
from .scheduler import ScheduledJob, read_schedule

IN_PROGRESS = (IssueState.QUEUED, IssueState.SENDING, IssueState.PAUSED)
#: How many past collections are searched for a source that never succeeded.
COLLECTIONS_SEARCHED = 20


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True, slots=True)
class LockStatus:
    """Who holds the scheduler lock, until when (UTC) unless renewed, and whether that
    time has passed (the holder stopped without letting go)."""

    owner: str
    until: datetime
    expired: bool

    def as_dict(self) -> dict[str, object]:
        return {"owner": self.owner, "until": self.until.isoformat(), "expired": self.expired}


@dataclass(frozen=True, slots=True)
class JobStatus:
    id: str
    name: str
    next_run: datetime | None  # in the job's own time zone; None while paused
    timezone: str

    @classmethod
    def of(cls, job: ScheduledJob) -> JobStatus:
        return cls(job.id, job.name, job.next_run, job.timezone)

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "name": self.name, "next_run": _iso(self.next_run),
                "timezone": self.timezone}


@dataclass(frozen=True, slots=True)
class IssueProgress:
    """An issue queued, sending or paused, and how far its send has got."""

    id: int
    list_id: str
    state: str
    subject: str
    send_at: datetime | None
    started_at: datetime | None
    pause_reason: str
    #: For a paused issue: "outage" (the provider did not answer), "provider" (it refused
    #: the credentials or the account) or "person" (someone paused it).
    paused_by: str
    #: When the senders queue it again by themselves (after an outage, if they will).
    resumes_at: datetime | None
    total: int
    recipients: Mapping[str, int]

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id, "list": self.list_id, "state": self.state, "subject": self.subject,
            "send_at": _iso(self.send_at), "started_at": _iso(self.started_at),
            "pause_reason": self.pause_reason, "paused_by": self.paused_by,
            "resumes_at": _iso(self.resumes_at), "total": self.total,
            "recipients": dict(self.recipients),
        }


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """A source's last collection: when, how it went, how many new articles."""

    source_id: str
    configured: bool  # False: the store remembers it, but publication.toml no longer names it
    checked_at: datetime | None  # None: never collected
    status: str
    error: str
    new: int

    def as_dict(self) -> dict[str, object]:
        return {"source": self.source_id, "configured": self.configured,
                "checked_at": _iso(self.checked_at), "status": self.status,
                "error": self.error, "new": self.new}


@dataclass(frozen=True, slots=True)
class DatabaseStatus:
    kind: str  # "sqlite" or "postgresql"
    reachable: bool
    revision: str | None  # the schema's migration; None before the first
    head: str  # the migration this version of the program expects
    error: str = ""

    @property
    def current(self) -> bool:
        return self.revision == self.head

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "reachable": self.reachable, "revision": self.revision,
                "head": self.head, "current": self.current, "error": self.error}


@dataclass(frozen=True, slots=True)
class StatusReport:
    database: DatabaseStatus
    provider: str
    lock: LockStatus | None
    schedule: tuple[JobStatus, ...]
    issues: tuple[IssueProgress, ...]
    sources: tuple[SourceStatus, ...]
    #: The newest collection's report as ``collect`` stored it, with its time as ``at``.
    last_collection: Mapping[str, Any] | None

    @property
    def held_by_provider(self) -> tuple[IssueProgress, ...]:
        """Issues the senders paused because of the provider."""
        return tuple(i for i in self.issues if i.paused_by in ("outage", "provider"))

    def summary(self) -> dict[str, Any]:
        """What ``newsletter status --json`` (and ``GET /api/v1/status``) shows: the lock, the
        jobs, the issues in progress and the last collection, times left as datetimes."""
        lock = self.lock
        return {
            "lock": None if lock is None else
            {"owner": lock.owner, "until": lock.until, "expired": lock.expired},
            "schedule": [
                {"id": j.id, "name": j.name, "next_run": j.next_run, "timezone": j.timezone}
                for j in self.schedule
            ],
            "issues": [
                {"id": i.id, "list": i.list_id, "state": i.state, "subject": i.subject,
                 "send_at": i.send_at, "started_at": i.started_at,
                 "pause_reason": i.pause_reason, "total": i.total,
                 "recipients": dict(i.recipients)}
                for i in self.issues
            ],
            "last_collection": dict(self.last_collection) if self.last_collection else None,
        }

    def as_dict(self) -> dict[str, object]:
        collection = self.last_collection
        return {
            "database": self.database.as_dict(),
            "provider": self.provider,
            "lock": self.lock.as_dict() if self.lock else None,
            "schedule": [j.as_dict() for j in self.schedule],
            "issues": [i.as_dict() for i in self.issues],
            "held_by_provider": [i.id for i in self.held_by_provider],
            "sources": [s.as_dict() for s in self.sources],
            "last_collection": (
                {**collection, "at": collection["at"].isoformat()} if collection else None
            ),
        }


def gather(settings: Settings, store: Store) -> StatusReport:
    """Everything above, read now. A database that cannot be reached is reported as such,
    with nothing else."""
    database = database_status(store)
    if not database.reachable:
        return StatusReport(database, settings.provider, None, (), (), (), None)
    with store.engine.connect() as conn:
        return StatusReport(
            database=database,
            provider=settings.provider,
            lock=lock_status(conn),
            schedule=tuple(JobStatus.of(job) for job in read_schedule(store.engine)),
            issues=issue_progress(conn, settings.outage_resume_minutes),
            sources=source_statuses(conn, _configured_sources(settings)),
            last_collection=last_collection(conn),
        )


def database_status(store: Store) -> DatabaseStatus:
    try:
        with store.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        revision = current_revision(store.engine)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return DatabaseStatus(store.dialect, False, None, HEAD_REVISION, reason)
    return DatabaseStatus(store.dialect, True, revision, HEAD_REVISION)


def lock_status(conn: Connection) -> LockStatus | None:
    holder = current_holder(conn)
    if holder is None:
        return None
    return LockStatus(holder.owner, holder.until_utc, holder.expired(time.time()))


def issue_progress(conn: Connection, outage_resume_minutes: int) -> tuple[IssueProgress, ...]:
    """Issues queued, sending or paused, oldest first."""
    records = reversed(issue_store.find(conn, states_in=IN_PROGRESS, limit=1000))
    return tuple(_progress(conn, r, outage_resume_minutes) for r in records)


def _progress(
    conn: Connection, record: issue_store.IssueRecord, outage_resume_minutes: int
) -> IssueProgress:
    counts = tally.status_counts(conn, record.id)
    return IssueProgress(
        id=record.id, list_id=record.list_id, state=str(record.state), subject=record.subject,
        send_at=record.send_at, started_at=record.started_at,
        pause_reason=record.pause_reason, paused_by=_paused_by(conn, record),
        resumes_at=resumes_at(record, outage_resume_minutes),
        total=sum(counts.values()), recipients=counts,
    )


def _paused_by(conn: Connection, record: issue_store.IssueRecord) -> str:
    """Who paused a paused issue: the senders record no actor, a person always does."""
    if record.state != IssueState.PAUSED:
        return ""
    if record.pause_reason.startswith(UNAVAILABLE):
        return "outage"
    paused = [e for e in issue_store.events(conn, record.id) if e["to"] == IssueState.PAUSED]
    return "person" if paused and paused[-1]["by"] else "provider"


def source_statuses(
    conn: Connection, configured: tuple[str, ...] | None
) -> tuple[SourceStatus, ...]:
    """Each source's last collection: the configured ones first, in their order, then
    any the store remembers that the publication no longer names. A source whose first
    fetch failed has no row of its own: its last try is found in the stored reports."""
    remembered = {row.source_id: row for row in conn.execute(select(source_state))}
    tried = _tries_reported(conn)
    names = list(configured or ()) + sorted(set(remembered) - set(configured or ()))
    found = []
    for name in names:
        is_configured = configured is None or name in configured
        row = remembered.get(name)
        if row is not None:
            found.append(SourceStatus(name, is_configured, row.last_checked_at,
                                      row.last_status, row.last_error, row.last_new))
        elif name in tried:
            at, report = tried[name]
            found.append(SourceStatus(name, is_configured, at, str(report.get("status", "")),
                                      str(report.get("error", "")), int(report.get("new", 0))))
        else:
            found.append(SourceStatus(name, is_configured, None, "", "", 0))
    return tuple(found)


def _tries_reported(conn: Connection) -> dict[str, tuple[datetime, Mapping[str, Any]]]:
    """Each source's newest entry in the last stored collection reports."""
    rows = conn.execute(
        select(collections.c.at, collections.c.report)
        .order_by(collections.c.id.desc()).limit(COLLECTIONS_SEARCHED)
    )
    found: dict[str, tuple[datetime, Mapping[str, Any]]] = {}
    for at, report in rows:
        for source in (report or {}).get("sources", []):
            found.setdefault(str(source.get("source_id", "")), (at, source))
    return found


def _configured_sources(settings: Settings) -> tuple[str, ...] | None:
    """The sources publication.toml names; None while it cannot be read."""
    try:
        return tuple(load_config(settings).sources)
    except NewsletterError:
        return None


def last_collection(conn: Connection) -> dict[str, Any] | None:
    row = conn.execute(
        select(collections.c.at, collections.c.report).order_by(collections.c.id.desc()).limit(1)
    ).first()
    if row is None:
        return None
    return {"at": row.at, **dict(row.report)}
