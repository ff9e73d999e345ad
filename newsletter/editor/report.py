"""What an editor reads about an issue's send: its progress while it runs, a report after,
and every recipient, searchable. The desk's pages and the HTTP API read these same
answers; each is a frozen dataclass whose ``as_dict()`` is ready for JSON.

``progress`` is asked every couple of seconds while an issue sends: it counts from the
batches and the rows recorded otherwise (``store.watch``), live or not; only the report
counts every row, by status.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from ..errors import ConfigError
from ..models import DeliveryStatus, IssueState
from ..store import Store, audience_origins, tally, watch
from ..store import issues as issue_store
from ..store.audience_origins import FrozenAudience
from ..store.issues import IssueRecord
from ..store.recipient_search import FoundRecipient, Search, page

#: The recent window the send's rate is measured over.
RATE_WINDOW = timedelta(seconds=60)
#: The provider events a report counts, in the order it shows them.
EVENT_TYPES = tuple(
    str(s) for s in (
        DeliveryStatus.DELIVERED, DeliveryStatus.BOUNCED_SOFT, DeliveryStatus.BOUNCED_HARD,
        DeliveryStatus.COMPLAINED, DeliveryStatus.UNSUBSCRIBED, DeliveryStatus.OPENED,
        DeliveryStatus.CLICKED,
    )
)
#: A recipient's statuses as a report and a search show them (``tally.recipient_status``).
STATUSES = tuple(str(s) for s in DeliveryStatus)
#: Bucket widths a report's timeline may use: the narrowest giving at most ``MAX_BUCKETS``.
BUCKET_WIDTHS = tuple(timedelta(hours=h) for h in (1, 3, 6, 12, 24, 24 * 7))
MAX_BUCKETS = 48
PAGE_SIZE, MAX_PAGE_SIZE, MAX_QUERY = 50, 200, 320


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


# -- progress --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Progress:
    """How far an issue's send has gone. ``total`` grows while the audience is still being
    frozen (``audience_frozen`` false). ``rate``: recipients a second over the last minute;
    ``seconds_left`` at that rate (None when unknown). ``exact``: the send is not live, so
    the numbers stay as they are until a provider event or a retry moves them (they are
    exact either way: see ``store.watch``). ``live``: worth asking again soon."""

    issue_id: int
    state: str
    total: int
    sent: int
    failed: int
    unknown: int
    suppressed: int
    pending: int
    rate: float
    seconds_left: int | None
    audience_frozen: bool
    exact: bool
    live: bool
    at: datetime

    @property
    def done(self) -> int:
        return self.total - self.pending

    @property
    def percent(self) -> int:
        """Whole percent done, rounded down: 100 only when nothing is left."""
        return 100 * self.done // self.total if self.total else 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "issue_id": self.issue_id, "state": self.state, "total": self.total,
            "done": self.done, "percent": self.percent, "sent": self.sent,
            "failed": self.failed, "unknown": self.unknown, "suppressed": self.suppressed,
            "pending": self.pending, "rate": round(self.rate, 1),
            "seconds_left": self.seconds_left, "audience_frozen": self.audience_frozen,
            "exact": self.exact, "live": self.live, "at": _iso(self.at),
        }


def progress(store: Store, issue_id: int) -> Progress:
    """The issue's progress now; ``NotFoundError`` when there is no such issue."""
    with store.engine.connect() as conn:
        return progress_of(conn, issue_store.get(conn, issue_id), store.now())


def is_live(record: IssueRecord, now: datetime) -> bool:
    """Sending, or queued and due: its numbers are about to move."""
    if record.state == IssueState.SENDING:
        return True
    due = record.send_at is None or record.send_at <= now
    return record.state == IssueState.QUEUED and due


def progress_of(
    conn: Connection, record: IssueRecord, now: datetime,
    outcomes: Mapping[str, int] | None = None,
) -> Progress:
    """``progress`` for a record already read, on the caller's connection. A caller that
    has just counted the issue's outcomes (``watch.outcome_counts``, as the issue's page
    does) passes them, rather than have them counted again."""
    live = is_live(record, now)
    since = max(now - RATE_WINDOW, record.started_at or now)
    if outcomes is not None:
        counts = outcomes
        recent = watch.recently_done(conn, record.id, since) if live else 0
    elif live:
        snapshot = watch.outcome_snapshot(conn, record.id, since)
        counts, recent = snapshot.counts, snapshot.recent
    else:
        counts, recent = watch.outcome_counts(conn, record.id), 0
    rate = recent / max((now - since).total_seconds(), 1.0)
    pending = counts[watch.PENDING]
    return Progress(
        issue_id=record.id, state=str(record.state), total=sum(counts.values()),
        sent=counts[watch.SENT], failed=counts[watch.FAILED], unknown=counts[watch.UNKNOWN],
        suppressed=counts[watch.SUPPRESSED], pending=pending, rate=rate,
        seconds_left=_seconds_left(pending, rate, live), audience_frozen=record.audience_frozen,
        exact=not live, live=live, at=now,
    )


def _seconds_left(pending: int, rate: float, live: bool) -> int | None:
    if not pending:
        return 0
    if not live or rate <= 0:
        return None
    return round(pending / rate)


# -- the report ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class EventBucket:
    """The provider events of one stretch of time, by type (every type of ``EVENT_TYPES``)."""

    start: datetime
    counts: tuple[tuple[str, int], ...]

    def as_dict(self) -> dict[str, Any]:
        return {"start": _iso(self.start), "counts": dict(self.counts)}


@dataclass(frozen=True, slots=True)
class Report:
    """An issue's outcomes by recipient status (as read), its provider events by type, and
    those events over time in buckets of ``bucket_seconds`` from the first bucket's start."""

    issue_id: int
    state: str
    subject: str
    list_id: str
    started_at: datetime | None
    finished_at: datetime | None
    outcomes: tuple[tuple[str, int], ...]
    events: tuple[tuple[str, int], ...]
    bucket_seconds: int
    timeline: tuple[EventBucket, ...]
    #: How the audience was frozen (None before it was, or for an issue frozen before this
    #: was kept).
    audience: FrozenAudience | None = None

    @property
    def recipients(self) -> int:
        return sum(n for _, n in self.outcomes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "issue_id": self.issue_id, "state": self.state, "subject": self.subject,
            "list_id": self.list_id, "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at), "recipients": self.recipients,
            "outcomes": dict(self.outcomes), "events": dict(self.events),
            "bucket_seconds": self.bucket_seconds,
            "timeline": [b.as_dict() for b in self.timeline],
            "audience": self.audience.as_dict() if self.audience is not None else None,
        }


def report(store: Store, issue_id: int) -> Report:
    """The issue's report, counted from every row; ``NotFoundError`` without the issue."""
    with store.engine.connect() as conn:
        record = issue_store.get(conn, issue_id)
        by_status = tally.status_counts(conn, issue_id)
        by_type = watch.event_counts(conn, issue_id)
        width, timeline = _timeline(conn, record)
        audience = audience_origins.of(conn, issue_id)
    return Report(
        issue_id=record.id, state=str(record.state), subject=record.subject,
        list_id=record.list_id, started_at=record.started_at, finished_at=record.finished_at,
        outcomes=tuple((s, by_status[s]) for s in STATUSES if by_status.get(s)),
        events=tuple((t, by_type.get(t, 0)) for t in EVENT_TYPES),
        bucket_seconds=int(width.total_seconds()), timeline=timeline, audience=audience,
    )


def _timeline(
    conn: Connection, record: IssueRecord
) -> tuple[timedelta, tuple[EventBucket, ...]]:
    """Every bucket from the send's start (or the first event, if earlier) to the last
    event, empty ones too, starting on the hour."""
    span = watch.event_span(conn, record.id)
    if span is None:
        return BUCKET_WIDTHS[0], ()
    first, last = span
    start = min(first, record.started_at or first).replace(minute=0, second=0, microsecond=0)
    width = bucket_width(last - start)
    found: dict[int, dict[str, int]] = {}
    for number, kind, n in watch.event_buckets(conn, record.id, start, width):
        found.setdefault(number, {})[kind] = n
    count = int((last - start) / width) + 1
    return width, tuple(
        EventBucket(start + i * width,
                    tuple((t, found.get(i, {}).get(t, 0)) for t in EVENT_TYPES))
        for i in range(count)
    )


def bucket_width(span: timedelta) -> timedelta:
    """The narrowest of ``BUCKET_WIDTHS`` that covers ``span`` in ``MAX_BUCKETS`` buckets."""
    for width in BUCKET_WIDTHS:
        if span < width * MAX_BUCKETS:
            return width
    return BUCKET_WIDTHS[-1]


# -- recipients ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RecipientPage:
    """A page of an issue's recipients in address order; ``next_after`` is what to pass as
    ``after`` for the next page (None on the last one). ``searched_to``: set when the page
    is not full because the search stopped at that address, to go on from there on the next
    page (a common status asked for, whose rows gather elsewhere in the alphabet)."""

    issue_id: int
    query: str
    status: str
    after: str
    rows: tuple[FoundRecipient, ...]
    next_after: str | None
    searched_to: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "issue_id": self.issue_id, "query": self.query, "status": self.status,
            "after": self.after, "next_after": self.next_after,
            "searched_to": self.searched_to,
            "recipients": [
                {"address": r.address, "status": r.status, "error": r.error,
                 "message_id": r.message_id, "at": _iso(r.at)}
                for r in self.rows
            ],
        }


def recipients(
    store: Store, issue_id: int, *, query: str = "", status: str = "", after: str = "",
    limit: int = PAGE_SIZE,
) -> RecipientPage:
    """A page of the issue's recipients whose address starts with ``query`` (any case), in
    ``status`` (as ``tally.recipient_status`` reads it; empty for any), after the address
    ``after``. Bad values raise ``ConfigError`` naming the field."""
    search = _search(query, status, after, limit)
    with store.engine.connect() as conn:
        issue_store.get(conn, issue_id)  # NotFoundError first
        found = page(conn, issue_id, search)
    rows = tuple(found.rows[:search.limit])
    if len(found.rows) > search.limit:
        return RecipientPage(issue_id, query.strip(), status, after, rows, rows[-1].key)
    return RecipientPage(issue_id, query.strip(), status, after, rows, found.walked_to,
                         found.walked_to)


def check_status(status: str) -> None:
    """ConfigError naming ``status`` unless it is empty (any) or one of ``STATUSES``."""
    if status and status not in STATUSES:
        raise ConfigError(f"status: {status[:40]!r} is not a status; give one of "
                          + ", ".join(STATUSES))


def _search(query: str, status: str, after: str, limit: int) -> Search:
    check_status(status)
    for field, value in (("query", query), ("after", after)):
        if len(value) > MAX_QUERY:
            raise ConfigError(f"{field}: at most {MAX_QUERY} characters")
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ConfigError(f"limit: give 1 to {MAX_PAGE_SIZE}")
    return Search(prefix=query.strip().lower(), status=status, after=after.lower(), limit=limit)
