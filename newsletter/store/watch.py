"""An issue's send as the desk and the API show it: its recipients counted by outcome, cheaply
enough to be asked every couple of seconds while a million-recipient issue sends, and the
provider events that came back about it.

Counting a million ledger rows (``tally.status_counts``) takes about a tenth of a second on
SQLite, which a page polling every two seconds would take from the send. ``outcome_snapshot``
counts from the batches instead, about a thousand rows: each batch's rows are taken to have
the outcome its state says (pending, sent, failed, unknown), and only the rows recorded
otherwise are counted, by a few seeks per batch in the ``(batch_id, status)`` index. That
is exact, not an estimate, because a batch's ``size`` is the number of rows it holds: the
freeze gives each batch its real size, and ``ledger.rebatch`` resizes the batches it takes
rows from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    CompoundSelect,
    Connection,
    Engine,
    Integer,
    Select,
    String,
    bindparam,
    cast,
    func,
    literal,
    select,
    union_all,
)

from ..models import BatchState, DeliveryStatus
from . import tally
from .shared import Shared
from .tables import UtcDateTime, batches, events, recipients

#: What the desk counts a recipient as: still to send, or what became of it.
PENDING, SENT, FAILED, UNKNOWN, SUPPRESSED = "pending", "sent", "failed", "unknown", "suppressed"
OUTCOMES = (SENT, FAILED, UNKNOWN, SUPPRESSED, PENDING)

#: A status as ``tally.recipient_status`` reads it → its outcome. What a provider reported
#: after taking a message (delivered, bounced, opened …) was sent.
_OUTCOME_OF = {
    str(DeliveryStatus.QUEUED): PENDING,
    str(DeliveryStatus.FAILED): FAILED,
    str(DeliveryStatus.UNKNOWN): UNKNOWN,
    str(DeliveryStatus.SUPPRESSED): SUPPRESSED,
}
_ALL_STATUSES = tuple(str(s) for s in DeliveryStatus)
_DONE_BATCHES = (str(BatchState.SENT), str(BatchState.FAILED), str(BatchState.UNKNOWN))


def outcome_of(status: str) -> str:
    return _OUTCOME_OF.get(status, SENT)


def outcomes(status_counts: Mapping[str, int]) -> dict[str, int]:
    """``tally.status_counts`` (statuses as read) folded into ``OUTCOMES``."""
    folded = dict.fromkeys(OUTCOMES, 0)
    for status, n in status_counts.items():
        folded[outcome_of(status)] += n
    return folded


def _except(*usual: DeliveryStatus) -> tuple[str, ...]:
    return tuple(s for s in _ALL_STATUSES if s not in usual)


@dataclass(frozen=True, slots=True)
class _Group:
    """Batches in ``states``: their rows count as ``usual`` unless their status is one of
    ``exceptions``, which are counted row by row (each as ``outcome_of`` it)."""

    states: tuple[str, ...]
    usual: str
    exceptions: tuple[str, ...]


_GROUPS = (
    _Group((str(BatchState.PENDING), str(BatchState.SENDING)), PENDING,
           _except(DeliveryStatus.QUEUED)),
    # A sent batch's rows are queued (sent whole), sent, or what the provider said since.
    _Group((str(BatchState.SENT),), SENT,
           (str(DeliveryStatus.FAILED), str(DeliveryStatus.UNKNOWN),
            str(DeliveryStatus.SUPPRESSED))),
    _Group((str(BatchState.FAILED),), FAILED, _except(DeliveryStatus.FAILED)),
    _Group((str(BatchState.UNKNOWN),), UNKNOWN, _except(DeliveryStatus.UNKNOWN)),
)


_NUMBERED_GROUPS = tuple((str(number), group) for number, group in enumerate(_GROUPS))


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The issue's recipients by outcome, and how many were done in the recent window."""

    counts: Mapping[str, int]
    recent: int


#: One row of ``outcome_snapshot``'s statement: which part, a batch state or a row status,
#: and a number.
_Part = Select[str, str, int]


class _Reading:
    """The rows of the statements below, added up into outcomes (see the module's docstring).
    Plain dicts: the issues list adds up two hundred of these per request."""

    __slots__ = ("counts", "otherwise", "recent", "sizes")

    def __init__(self) -> None:
        self.sizes: dict[str, int] = {}
        self.otherwise: dict[str, int] = {}  # per group, its rows recorded otherwise
        self.counts = dict.fromkeys(OUTCOMES, 0)
        self.recent = 0

    def add(self, part: str, key: str, n: int) -> None:
        if part == "size":
            self.sizes[key] = self.sizes.get(key, 0) + n
        elif part == "recent":
            self.recent = n
        else:  # a status counted row by row: in a group's batches, or in none
            outcome = outcome_of(key)
            self.counts[outcome] += n
            self.otherwise[part] = self.otherwise.get(part, 0) + n

    def outcomes(self) -> dict[str, int]:
        counts = dict(self.counts)
        for number, group in _NUMBERED_GROUPS:
            held = sum(self.sizes.get(state, 0) for state in group.states)
            counts[group.usual] += held - self.otherwise.get(number, 0)
        return counts


def outcome_snapshot(conn: Connection, issue_id: int, since: datetime) -> Snapshot:
    """Recipients by outcome from the batches and the rows recorded otherwise, and the rows
    of batches finished since ``since``: one statement, so one consistent reading."""
    reading = _Reading()
    for part, key, n in conn.execute(_SNAPSHOT, {"issue": issue_id, "since": since}):
        reading.add(part, key, n)
    return Snapshot(reading.outcomes(), reading.recent)


def outcome_counts(conn: Connection, issue_id: int) -> dict[str, int]:
    """The issue's recipients by outcome, as ``outcome_snapshot`` counts them (exact, live
    or not). Callers asking for the same issue at the same moment share one count
    (``shared.Shared``): each is given a count that started after it asked."""
    return dict(_SHARED((conn.engine, issue_id), lambda: _counted(conn, issue_id)))


def _counted(conn: Connection, issue_id: int) -> dict[str, int]:
    reading = _Reading()
    for part, key, n in conn.execute(_COUNTS, {"issue": issue_id}):
        reading.add(part, key, n)
    return reading.outcomes()


def recently_done(conn: Connection, issue_id: int, since: datetime) -> int:
    """``outcome_snapshot``'s ``recent`` alone: the rows of batches finished since ``since``."""
    found = conn.execute(_RECENT, {"issue": issue_id, "since": since}).one()
    return int(found[2])


def outcome_counts_of(conn: Connection, issue_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """``outcome_counts`` of each issue named (the issues list counts a page of issues at
    once), without sharing; an issue without recipients has every outcome 0."""
    readings = {issue_id: _Reading() for issue_id in issue_ids}
    for issue_id, part, key, n in conn.execute(_COUNTS_OF, {"issue_ids": list(issue_ids)}):
        readings[issue_id].add(part, key, n)
    ids = list(issue_ids)
    for start in range(0, len(ids), _UNBATCHED_CHUNK):
        chunk = ids[start:start + _UNBATCHED_CHUNK]
        chunk += [-1] * (_UNBATCHED_CHUNK - len(chunk))  # no issue: no rows
        for issue_id, status, n in conn.execute(_UNBATCHED_OF, _chunk_params(chunk)):
            readings[issue_id].add("none", status, n)
    return {issue_id: reading.outcomes() for issue_id, reading in readings.items()}


_ISSUE = bindparam("issue", type_=Integer)
_ISSUES: BindParameter[list[int]] = bindparam("issue_ids", expanding=True)
_SHARED: Shared[tuple[Engine, int], dict[str, int]] = Shared()


def _sizes() -> _Part:
    held = cast(func.coalesce(func.sum(batches.c.size), 0), Integer)
    return (
        select(literal("size", String), batches.c.state, held)
        .where(batches.c.issue_id == _ISSUE)
        .group_by(batches.c.state)
    )


def _recent() -> _Part:
    done = cast(func.coalesce(func.sum(batches.c.size), 0), Integer)
    return select(literal("recent", String), literal("", String), done).where(
        batches.c.issue_id == _ISSUE,
        batches.c.state.in_(_DONE_BATCHES),
        batches.c.updated_at >= bindparam("since", type_=UtcDateTime()),
    )


def _exceptions(number: int, group: _Group) -> _Part:
    """The group's rows recorded otherwise, counted by status, found by (batch, status)
    seeks: ``status IN (…)`` rather than ``!=``, which would read every row of the batch."""
    of_group = select(batches.c.id).where(
        batches.c.issue_id == _ISSUE, batches.c.state.in_(group.states)
    )
    return (
        select(literal(str(number), String), recipients.c.status, cast(func.count(), Integer))
        .where(recipients.c.batch_id.in_(of_group), recipients.c.status.in_(group.exceptions))
        .group_by(recipients.c.status)
    )


def _unbatched() -> _Part:
    """Rows kept out of every batch (suppressed when frozen), by their partial index."""
    return (
        select(literal("none", String), recipients.c.status, cast(func.count(), Integer))
        .where(recipients.c.issue_id == _ISSUE, recipients.c.batch_id.is_(None))
        .group_by(recipients.c.status)
    )


# -- the same for a page of issues --------------------------------------------------------
def _sizes_of() -> Select[int, str, str, int]:
    held = cast(func.coalesce(func.sum(batches.c.size), 0), Integer)
    return (
        select(batches.c.issue_id, literal("size", String), batches.c.state, held)
        .where(batches.c.issue_id.in_(_ISSUES))
        .group_by(batches.c.issue_id, batches.c.state)
    )


def _exceptions_of(number: int, group: _Group) -> Select[int, str, str, int]:
    """``_exceptions`` of each issue: its batches in the group's states, then their rows
    recorded otherwise by (batch, status) seeks."""
    return (
        select(batches.c.issue_id, literal(str(number), String), recipients.c.status,
               cast(func.count(), Integer))
        .join_from(batches, recipients, recipients.c.batch_id == batches.c.id)
        .where(batches.c.issue_id.in_(_ISSUES), batches.c.state.in_(group.states),
               recipients.c.status.in_(group.exceptions))
        .group_by(batches.c.issue_id, recipients.c.status)
    )


#: Issues whose unbatched rows one statement counts. Each issue has a part of its own: with
#: a list of issues in one IN, SQLite (without statistics) reads every unbatched row of
#: every issue through (batch_id, status) rather than each issue's own by its partial index.
_UNBATCHED_CHUNK = 50


def _chunk_params(chunk: Sequence[int]) -> dict[str, int]:
    return {f"issue_{n}": issue_id for n, issue_id in enumerate(chunk)}


def _unbatched_of(size: int) -> CompoundSelect[int, str, int]:
    parts = (
        select(recipients.c.issue_id, recipients.c.status, cast(func.count(), Integer))
        .where(recipients.c.issue_id == bindparam(f"issue_{n}", type_=Integer),
               recipients.c.batch_id.is_(None))
        .group_by(recipients.c.issue_id, recipients.c.status)
        for n in range(size)
    )
    return union_all(*parts)


#: Built once: building them per call cost more than running them on a small ledger.
_COUNTING = (_sizes(), _unbatched(), *(_exceptions(n, g) for n, g in enumerate(_GROUPS)))
_COUNTS = union_all(*_COUNTING)
_RECENT = _recent()
_SNAPSHOT = union_all(*_COUNTING, _RECENT)
_COUNTS_OF = union_all(_sizes_of(), *(_exceptions_of(n, g) for n, g in enumerate(_GROUPS)))
_UNBATCHED_OF = _unbatched_of(_UNBATCHED_CHUNK)


def exact_outcomes(conn: Connection, issue_id: int) -> dict[str, int]:
    """Recipients by outcome, counted from every row: for a send that is over."""
    return outcomes(tally.status_counts(conn, issue_id))


# -- provider events ----------------------------------------------------------------------
def event_counts(conn: Connection, issue_id: int) -> dict[str, int]:
    """The issue's provider events by type (each event once, as it was recorded)."""
    stmt = (
        select(events.c.type, func.count())
        .where(events.c.issue_id == issue_id)
        .group_by(events.c.type)
    )
    return {str(kind): int(n) for kind, n in conn.execute(stmt)}


def event_span(conn: Connection, issue_id: int) -> tuple[datetime, datetime] | None:
    """When the issue's first and last provider events happened, or None without any."""
    stmt = select(func.min(events.c.at), func.max(events.c.at)).where(
        events.c.issue_id == issue_id
    )
    first, last = conn.execute(stmt).one()
    if first is None or last is None:
        return None
    return first, last


def event_buckets(
    conn: Connection, issue_id: int, start: datetime, width: timedelta
) -> Sequence[tuple[int, str, int]]:
    """(bucket number, event type, count) for the issue's events from ``start`` on, in
    buckets of ``width``: bucket n holds the events of [start + n·width, start + (n+1)·width)."""
    seconds = int(width.total_seconds())
    # Grouped outside: PostgreSQL would not match the expression grouped by to the one
    # selected, each with bound values of its own.
    placed = (
        select(_bucket_number(conn, start, seconds).label("bucket"), events.c.type)
        .where(events.c.issue_id == issue_id, events.c.at >= start)
        .subquery()
    )
    stmt = (
        select(placed.c.bucket, placed.c.type, func.count())
        .group_by(placed.c.bucket, placed.c.type)
        .order_by(placed.c.bucket)
    )
    return [(int(b), str(kind), int(n)) for b, kind, n in conn.execute(stmt)]


def _bucket_number(conn: Connection, start: datetime, seconds: int) -> ColumnElement[Any]:
    """Whole seconds since ``start`` over the width, in integers on either database."""
    epoch = int(start.timestamp())
    if conn.dialect.name == "sqlite":
        since = cast(func.strftime("%s", events.c.at), Integer) - epoch
        return since // seconds
    since = func.extract("epoch", events.c.at) - epoch
    return cast(func.floor(since / seconds), Integer)
