"""The rows the store keeps about one reader's address: found for an export, made anonymous
when the reader is forgotten.

Addresses are compared lower-cased, as the ledger, suppressions, soft bounces and events
store them (``key`` below is such an address). The ledger has no index on the address
alone but one on (issue, address), so a reader's rows are found with one look-up per issue,
not a scan of every row ever sent; events have no index on the address and are scanned,
which an export or a forgetting, both rare, can afford.

Forgetting keeps the counts true: a ledger row stays, as the recipient it was (its issue's
numbers do not change), with its address, name, columns, message id and error wiped; an
event stays with its type, time and issue. A row that failed, or whose outcome is unknown,
becomes ``suppressed``, so that ``issue retry`` has nobody to send it to.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Select, and_, delete, exists, or_, select, update

from ..models import DeliveryStatus, IssueState, SuppressionReason
from .events import forgotten_event_id
from .suppressions import Suppression
from .tables import batches, events, issues, recipients, soft_bounces, suppressions
from .tally import recipient_status

#: What a forgotten reader's ledger row holds instead of the address (never an address: no @).
LEDGER_PLACEHOLDER = "forgotten-reader-{id}"
#: Rows ``issue retry`` would send again: they become ``suppressed`` when forgotten.
RETRIED = (str(DeliveryStatus.FAILED), str(DeliveryStatus.UNKNOWN))


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """One issue's record of the reader: what was sent to them, and what became of it."""

    id: int
    issue_id: int
    list_id: str
    subject: str
    issue_state: str
    status: str  # as the ledger means it (``tally.recipient_status``)
    recorded_status: str  # as the row holds it
    email_as_written: str | None
    name: str
    fields: Mapping[str, str]
    provider_message_id: str
    batch_message_id: str
    error: str
    updated_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "issue": self.issue_id,
            "list": self.list_id,
            "subject": self.subject,
            "issue_state": self.issue_state,
            "status": self.status,
            "address_as_written": self.email_as_written,
            "name": self.name,
            "fields": dict(self.fields),
            "provider_message_id": self.provider_message_id,
            "batch_message_id": self.batch_message_id,
            "error": self.error,
            "updated_at": _iso(self.updated_at),
            "issue_started_at": _iso(self.started_at),
            "issue_finished_at": _iso(self.finished_at),
        }


@dataclass(frozen=True, slots=True)
class EventRow:
    """A provider's event about the reader (a delivery, an open, a bounce…)."""

    id: int
    provider: str
    event_id: str
    type: str
    email: str
    provider_message_id: str
    issue_id: int | None
    at: datetime
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "event_id": self.event_id,
            "type": self.type,
            "address": self.email,
            "provider_message_id": self.provider_message_id,
            "issue": self.issue_id,
            "at": _iso(self.at),
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class SoftBounces:
    count: int
    last_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count, "last_at": _iso(self.last_at)}


@dataclass(frozen=True, slots=True)
class InFlight:
    """An issue that may still mail the reader, which a forgetting must wait for."""

    issue_id: int
    list_id: str
    state: IssueState
    audience_frozen: bool

    def __str__(self) -> str:
        if self.state == IssueState.SENDING and not self.audience_frozen:
            doing = "is reading its list to start sending"
        elif self.state == IssueState.QUEUED:
            doing = "is queued to send again to recipients already in its ledger"
        else:
            doing = f"is {self.state}"
        return f"issue {self.issue_id} ({self.list_id}) {doing}"


@dataclass(frozen=True, slots=True)
class Erased:
    """What a forgetting did to the store."""

    ledger_rows: int
    issues: tuple[int, ...]
    not_retried: int  # failed or unknown rows now suppressed, which no retry sends
    events: int
    suppressions: int
    soft_bounces: int


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _fields(stored: str | Mapping[str, str] | None) -> Mapping[str, str]:
    if not stored:
        return {}
    if isinstance(stored, str):
        loaded: dict[str, str] = orjson.loads(stored)
        return loaded
    return stored


def ledger_rows(conn: Connection, key: str) -> list[LedgerRow]:
    """Every ledger row of the address, oldest issue first. (``issue_id IN (every issue)``
    leads SQLite to the (issue, address) index, a look-up per issue; without it SQLite
    scanned the whole ledger.)"""
    stmt = (
        select(
            recipients.c.id, recipients.c.issue_id, recipients.c.list_id, issues.c.subject,
            issues.c.state, recipient_status, recipients.c.status, recipients.c.email_as_written,
            recipients.c.name, recipients.c.fields, recipients.c.provider_message_id,
            batches.c.provider_batch_id, recipients.c.error, recipients.c.updated_at,
            issues.c.started_at, issues.c.finished_at,
        )
        .select_from(recipients.join(issues, issues.c.id == recipients.c.issue_id).outerjoin(
            batches, batches.c.id == recipients.c.batch_id))
        .where(recipients.c.issue_id.in_(select(issues.c.id)), recipients.c.email == key)
        .order_by(recipients.c.issue_id)
    )
    rows = []
    for r in conn.execute(stmt):
        values = list(r)
        values[9] = _fields(values[9])
        values[11] = values[11] or ""
        rows.append(LedgerRow(*values))
    return rows


def event_rows(conn: Connection, key: str, message_ids: Iterable[str]) -> list[EventRow]:
    """The address's events, and the events without an address that name one of its own
    messages (``message_ids``: its ledger rows' provider ids)."""
    return [EventRow(*r) for r in conn.execute(events_of(key, message_ids))]


def events_of(key: str, message_ids: Iterable[str]) -> Select[Any]:
    """The query ``event_rows`` runs: both of its terms are answered from the index on
    address and message id (``ix_events_email_message``), not by reading every event."""
    bare = {stripped for given in message_ids if (stripped := given.strip().strip("<>"))}
    ids = bare | {f"<{b}>" for b in bare}
    matches = events.c.email == key
    if ids:
        matches = or_(matches, and_(events.c.email == "", events.c.provider_message_id.in_(ids)))
    return select(
        events.c.id, events.c.provider, events.c.event_id, events.c.type, events.c.email,
        events.c.provider_message_id, events.c.issue_id, events.c.at, events.c.detail,
    ).where(matches).order_by(events.c.at, events.c.id)


def suppression_rows(conn: Connection, key: str) -> list[Suppression]:
    stmt = select(suppressions).where(suppressions.c.email == key).order_by(suppressions.c.scope)
    return [
        Suppression(r.email, r.scope, SuppressionReason(r.reason), r.source, r.detail,
                    r.created_at)
        for r in conn.execute(stmt)
    ]


def soft_bounces_of(conn: Connection, key: str) -> SoftBounces | None:
    stmt = select(soft_bounces.c.count, soft_bounces.c.last_at).where(soft_bounces.c.email == key)
    found = conn.execute(stmt).first()
    return None if found is None else SoftBounces(int(found[0]), found[1])


def issues_in_flight(conn: Connection, key: str, list_ids: Iterable[str]) -> list[InFlight]:
    """The issues that may still mail the address: sending, paused or queued again with it
    in their ledger or its list, and any issue whose list is being read to start a send
    (which may be reading a file the forgetting is about to change)."""
    has_row = exists().where(recipients.c.issue_id == issues.c.id, recipients.c.email == key)
    resumable = or_(
        issues.c.state.in_([str(IssueState.SENDING), str(IssueState.PAUSED)]),
        and_(issues.c.state == str(IssueState.QUEUED), issues.c.audience_frozen == 1),
    )
    freezing = and_(issues.c.state == str(IssueState.SENDING), issues.c.audience_frozen == 0)
    stmt = (
        select(issues.c.id, issues.c.list_id, issues.c.state, issues.c.audience_frozen)
        .where(or_(and_(resumable, or_(issues.c.list_id.in_(list(list_ids)), has_row)), freezing))
        .order_by(issues.c.id)
    )
    return [InFlight(r[0], r[1], IssueState(r[2]), bool(r[3])) for r in conn.execute(stmt)]


def erase(conn: Connection, key: str) -> Erased:
    """Make the address's ledger rows and events anonymous, and delete its suppressions and
    soft-bounce count, in the caller's transaction."""
    rows = ledger_rows(conn, key)
    anonymised_events = _anonymise_events(
        conn, key, event_rows(conn, key, (r.provider_message_id for r in rows))
    )
    not_retried = _anonymise_ledger(conn, rows)
    lifted = conn.execute(delete(suppressions).where(suppressions.c.email == key)).rowcount
    bounces = conn.execute(delete(soft_bounces).where(soft_bounces.c.email == key)).rowcount
    issue_ids = tuple(dict.fromkeys(r.issue_id for r in rows))
    return Erased(len(rows), issue_ids, not_retried, anonymised_events, int(lifted), int(bounces))


def _anonymise_ledger(conn: Connection, rows: list[LedgerRow]) -> int:
    """Wipe what names the reader from each row; how many rows will no longer be retried."""
    not_retried = 0
    for row in rows:
        values: dict[str, Any] = {
            "email": LEDGER_PLACEHOLDER.format(id=row.id), "email_as_written": None, "name": "",
            "fields": {}, "provider_message_id": "", "error": "",
        }
        if row.recorded_status in RETRIED:
            values["status"] = str(DeliveryStatus.SUPPRESSED)
            not_retried += 1
        conn.execute(update(recipients).where(recipients.c.id == row.id).values(**values))
    return not_retried


def _anonymise_events(conn: Connection, key: str, rows: list[EventRow]) -> int:
    """Wipe the address, message id and detail of each event; an event id that held the
    address holds its forgotten key instead, as a redelivery of the event will (if that
    redelivery came first, this copy of it is deleted rather than kept twice)."""
    for row in rows:
        event_id = forgotten_event_id(row.event_id, key)
        if event_id != row.event_id and _event_exists(conn, row.provider, event_id):
            conn.execute(delete(events).where(events.c.id == row.id))
            continue
        conn.execute(
            update(events).where(events.c.id == row.id).values(
                email="", provider_message_id="", detail="", event_id=event_id
            )
        )
    return len(rows)


def _event_exists(conn: Connection, provider: str, event_id: str) -> bool:
    stmt = select(events.c.id).where(events.c.provider == provider, events.c.event_id == event_id)
    return conn.execute(stmt.limit(1)).first() is not None
