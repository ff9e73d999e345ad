"""Issues, their articles and their recorded state changes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Insert, Table, bindparam, delete, func, insert, select, update

from ..errors import IssueMovedOnError, IssueStateError, NotFoundError
from ..models import EDITABLE_STATES, IssueKind, IssueState, check_transition
from .db import dialect_insert
from .tables import issue_articles, issue_events, issue_numbers, issues, list_articles


@dataclass(frozen=True, slots=True)
class IssueRecord:
    id: int
    list_id: str
    kind: IssueKind
    state: IssueState
    subject: str
    preheader: str
    intro_md: str
    created_at: datetime
    updated_at: datetime
    send_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    provider: str
    rendered: bool
    audience_frozen: bool
    pause_reason: str
    #: Who freezes the audience while it is being frozen (``audience.take_freeze``), and
    #: until when (epoch seconds) that holds unless renewed.
    freeze_owner: str = ""
    freeze_until: float = 0.0
    #: The issue's number in its list (1 for the first), None for rows made another way.
    number: int | None = None


def _record(row: object) -> IssueRecord:
    r = row._mapping  # type: ignore[attr-defined]
    return IssueRecord(
        id=r["id"],
        list_id=r["list_id"],
        kind=IssueKind(r["kind"]),
        state=IssueState(r["state"]),
        subject=r["subject"],
        preheader=r["preheader"],
        intro_md=r["intro_md"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
        send_at=r["send_at"],
        started_at=r["started_at"],
        finished_at=r["finished_at"],
        provider=r["provider"],
        rendered=r["rendered_at"] is not None,
        audience_frozen=bool(r["audience_frozen"]),
        pause_reason=r["pause_reason"],
        freeze_owner=r["freeze_owner"],
        freeze_until=r["freeze_until"],
        number=r["number"],
    )


#: Who the changes made in this context are recorded as (``issue_events.actor``). A context
#: variable rather than an argument: a state move is made several layers down from the
#: command or desk page that asked for it, and every one of them would have to pass it on.
_actor: ContextVar[str] = ContextVar("issue_actor", default="")


@contextmanager
def acting_as(actor: str) -> Iterator[None]:
    """Record the issue changes made inside the block as made by ``actor``."""
    token = _actor.set(actor[:100])
    try:
        yield
    finally:
        _actor.reset(token)


def insert_ignoring_duplicates(conn: Connection, table: Table) -> Insert:
    return dialect_insert(conn, table).on_conflict_do_nothing()


_SUMMARY_COLUMNS = [c for c in issues.c if c.name not in ("html", "text", "web_html")]


def create(
    conn: Connection,
    *,
    list_id: str,
    kind: IssueKind,
    subject: str,
    preheader: str,
    intro_md: str,
    article_ids: Sequence[int],
    at: datetime,
    claim: bool = False,
) -> int:
    """A new draft, numbered in its list; its articles are marked offered to the list in the
    same transaction.

    With ``claim``, the draft takes only the articles no other issue of the list has been
    offered, in one statement that the database serialises: two processes drafting the
    same new articles at once (the scheduler, and a publish hook over the API) cannot both
    take one. ``AlreadyOffered`` is raised when none is left; the caller's transaction
    should then be rolled back."""
    issue_id = conn.execute(
        insert(issues)
        .values(
            list_id=list_id,
            number=next_number(conn, list_id),
            kind=str(kind),
            state=str(IssueState.DRAFT),
            subject=subject,
            preheader=preheader,
            intro_md=intro_md,
            created_at=at,
            updated_at=at,
        )
        .returning(issues.c.id)
    ).scalar_one()
    if claim:
        article_ids = _claim(conn, list_id, int(issue_id), article_ids)
    if article_ids:
        conn.execute(
            insert(issue_articles),
            [
                {"issue_id": issue_id, "article_id": a, "position": i}
                for i, a in enumerate(article_ids)
            ],
        )
        # An editor may put an article in again on purpose; the first offer stays on record.
        offer_articles(conn, list_id, int(issue_id), article_ids)
    record_event(conn, issue_id, "", IssueState.DRAFT, at, "drafted")
    return int(issue_id)


class AlreadyOffered(Exception):
    """Every article a draft was to claim had been offered to its list by another issue."""


def _claim(
    conn: Connection, list_id: str, issue_id: int, article_ids: Sequence[int]
) -> list[int]:
    """Offer ``article_ids`` to the list as this issue's; the ones it got, in their order."""
    if not article_ids:
        return []
    rows = [{"list_id": list_id, "article_id": a, "issue_id": issue_id} for a in article_ids]
    taken = set(conn.execute(
        insert_ignoring_duplicates(conn, list_articles).values(rows)
        .returning(list_articles.c.article_id)
    ).scalars())
    if not taken:
        raise AlreadyOffered(list_id)
    return [a for a in article_ids if a in taken]


def next_number(conn: Connection, list_id: str) -> int:
    """The list's next issue number, taken for good even if the transaction's issue is later
    deleted. The upsert locks the list's counter row until commit (PostgreSQL), or runs under
    the database's write lock (SQLite), so drafts made at once get distinct numbers."""
    counter = issue_numbers.c.last_number
    taken = (
        dialect_insert(conn, issue_numbers)
        .values(list_id=list_id, last_number=1)
        .on_conflict_do_update(
            index_elements=[issue_numbers.c.list_id], set_={"last_number": counter + 1}
        )
        .returning(counter)
    )
    return int(conn.execute(taken).scalar_one())


def get(conn: Connection, issue_id: int) -> IssueRecord:
    row = conn.execute(select(*_SUMMARY_COLUMNS).where(issues.c.id == issue_id)).first()
    if row is None:
        raise NotFoundError(f"no issue {issue_id}")
    return _record(row)


_STATE_OF = select(issues.c.state).where(issues.c.id == bindparam("issue_id"))  # built once


def state_of(conn: Connection, issue_id: int) -> IssueState:
    """Only the issue's state: what a sender checks before each batch it claims (half the
    cost of reading the whole record)."""
    state = conn.execute(_STATE_OF, {"issue_id": issue_id}).scalar()
    if state is None:
        raise NotFoundError(f"no issue {issue_id}")
    return IssueState(state)


def find(
    conn: Connection,
    *,
    list_id: str | None = None,
    states_in: Sequence[IssueState] = (),
    limit: int = 100,
) -> list[IssueRecord]:
    stmt = select(*_SUMMARY_COLUMNS).order_by(issues.c.id.desc()).limit(limit)
    if list_id:
        stmt = stmt.where(issues.c.list_id == list_id)
    if states_in:
        stmt = stmt.where(issues.c.state.in_([str(s) for s in states_in]))
    return [_record(r) for r in conn.execute(stmt)]


def due(conn: Connection, now: datetime) -> list[IssueRecord]:
    """Queued issues whose time has come, plus issues left mid-send, oldest first."""
    stmt = (
        select(*_SUMMARY_COLUMNS)
        .where(
            (
                (issues.c.state == str(IssueState.QUEUED))
                & ((issues.c.send_at.is_(None)) | (issues.c.send_at <= now))
            )
            | (issues.c.state == str(IssueState.SENDING))
        )
        .order_by(issues.c.id)
    )
    return [_record(r) for r in conn.execute(stmt)]


def article_ids(conn: Connection, issue_id: int) -> list[int]:
    stmt = (
        select(issue_articles.c.article_id)
        .where(issue_articles.c.issue_id == issue_id)
        .order_by(issue_articles.c.position)
    )
    return [r[0] for r in conn.execute(stmt)]


def transition(
    conn: Connection,
    issue_id: int,
    target: IssueState,
    at: datetime,
    note: str = "",
    **values: object,
) -> IssueRecord:
    """Move the issue to ``target`` if the state machine allows it, atomically."""
    current = get(conn, issue_id)
    check_transition(issue_id, current.state, target)
    result = conn.execute(
        update(issues)
        .where(issues.c.id == issue_id, issues.c.state == str(current.state))
        .values(state=str(target), updated_at=at, **values)
    )
    if result.rowcount != 1:
        raise IssueStateError(f"issue {issue_id} changed state while being updated; try again")
    record_event(conn, issue_id, current.state, target, at, note)
    return get(conn, issue_id)


def paused_since(conn: Connection, reason_start: str, before: datetime) -> list[int]:
    """Issues paused, for a reason that starts so, and left alone since before ``before``."""
    found = conn.execute(
        select(issues.c.id)
        .where(
            issues.c.state == str(IssueState.PAUSED),
            issues.c.pause_reason.startswith(reason_start, autoescape=True),
            issues.c.updated_at <= before,
        )
        .order_by(issues.c.id)
    )
    return list(found.scalars())


def pause_sending(conn: Connection, issue_id: int, at: datetime, reason: str) -> bool:
    """Pause the issue with ``reason`` if it is sending; False when another sender paused or
    finished it first."""
    if get(conn, issue_id).state != IssueState.SENDING:
        return False
    try:
        transition(conn, issue_id, IssueState.PAUSED, at, reason, pause_reason=reason)
    except IssueStateError:
        return False
    return True


def record_event(
    conn: Connection,
    issue_id: int,
    from_state: str,
    to_state: str,
    at: datetime,
    note: str,
) -> None:
    conn.execute(
        insert(issue_events).values(
            issue_id=issue_id,
            at=at,
            from_state=str(from_state),
            to_state=str(to_state),
            note=note,
            actor=_actor.get(),
        )
    )


def events(conn: Connection, issue_id: int) -> list[dict[str, object]]:
    stmt = (
        select(issue_events).where(issue_events.c.issue_id == issue_id).order_by(issue_events.c.id)
    )
    return [
        {"at": r.at, "from": r.from_state, "to": r.to_state, "note": r.note, "by": r.actor}
        for r in conn.execute(stmt)
    ]


def edit(conn: Connection, issue_id: int, at: datetime, **values: object) -> None:
    """Change subject, preheader or introduction of a draft (its rendering is dropped)."""
    require_editable(conn, issue_id)
    conn.execute(
        update(issues)
        .where(issues.c.id == issue_id)
        .values(updated_at=at, rendered_at=None, html="", text="", **values)
    )


def require_editable(conn: Connection, issue_id: int) -> IssueRecord:
    """The issue, if its content may still change (a draft); else the reason it may not.

    The row stays locked (PostgreSQL) until the transaction ends, so the issue cannot be
    queued while its content changes."""
    conn.execute(select(issues.c.id).where(issues.c.id == issue_id).with_for_update())
    current = get(conn, issue_id)
    if current.state not in EDITABLE_STATES:
        back = (
            f" (`newsletter issue unqueue {issue_id}` makes it a draft again)"
            if current.state == IssueState.QUEUED
            else ""
        )
        raise IssueStateError(
            f"issue {issue_id} is {current.state}; only drafts can be edited{back}"
        )
    return current


def set_articles(conn: Connection, issue_id: int, article_ids: Sequence[int]) -> None:
    """Replace the issue's articles with ``article_ids``, in that order."""
    conn.execute(delete(issue_articles).where(issue_articles.c.issue_id == issue_id))
    if article_ids:
        conn.execute(
            insert(issue_articles),
            [
                {"issue_id": issue_id, "article_id": a, "position": i}
                for i, a in enumerate(article_ids)
            ],
        )


def offer_articles(
    conn: Connection, list_id: str, issue_id: int, article_ids: Sequence[int]
) -> None:
    """Mark articles offered to the list by this issue (a first offer stays on record)."""
    if article_ids:
        conn.execute(
            insert_ignoring_duplicates(conn, list_articles),
            [{"list_id": list_id, "article_id": a, "issue_id": issue_id} for a in article_ids],
        )


def withdraw_article(conn: Connection, issue_id: int, article_id: int) -> None:
    """Give an article taken out of a draft back to its list, if this issue offered it."""
    conn.execute(
        delete(list_articles).where(
            list_articles.c.issue_id == issue_id, list_articles.c.article_id == article_id
        )
    )


def reschedule(
    conn: Connection, issue_id: int, send_at: datetime | None, at: datetime, note: str
) -> IssueRecord:
    """Change a queued issue's send time (None: now), recorded as a queued → queued event.

    The update holds only while the issue is still queued, so a sender that has just
    started it is not given a new time behind its back."""
    current = get(conn, issue_id)
    if current.state != IssueState.QUEUED:
        raise IssueStateError(
            f"issue {issue_id} is {current.state}; only a queued issue can be rescheduled "
            f"(`newsletter issue queue {issue_id} --at …` queues a draft)"
        )
    result = conn.execute(
        update(issues)
        .where(issues.c.id == issue_id, issues.c.state == str(IssueState.QUEUED))
        .values(send_at=send_at, updated_at=at)
    )
    if result.rowcount != 1:
        raise IssueStateError(f"issue {issue_id} changed state while being updated; try again")
    record_event(conn, issue_id, IssueState.QUEUED, IssueState.QUEUED, at, note)
    return get(conn, issue_id)


def save_rendering(
    conn: Connection,
    issue_id: int,
    *,
    html: str,
    text: str,
    web_html: str,
    at: datetime,
) -> None:
    conn.execute(
        update(issues)
        .where(issues.c.id == issue_id)
        .values(html=html, text=text, web_html=web_html, rendered_at=at)
    )


def rendering(conn: Connection, issue_id: int) -> tuple[str, str, str] | None:
    row = conn.execute(
        select(issues.c.html, issues.c.text, issues.c.web_html, issues.c.rendered_at).where(
            issues.c.id == issue_id
        )
    ).first()
    if row is None or row.rendered_at is None:
        return None
    return row.html, row.text, row.web_html


def release_articles(conn: Connection, issue_id: int) -> int:
    """Give a cancelled issue's articles back to its list, so they can be offered again."""
    return int(
        conn.execute(delete(list_articles).where(list_articles.c.issue_id == issue_id)).rowcount
    )


def count_by_state(conn: Connection) -> dict[str, int]:
    stmt = select(issues.c.state, func.count()).group_by(issues.c.state)
    return {state: count for state, count in conn.execute(stmt)}


def begin_sending(conn: Connection, issue_id: int, provider: str, at: datetime) -> IssueRecord:
    """queued → sending through ``provider``; the issue as it is now. Several workers may
    start one issue at the same moment: one moves it, and the others join its send. A draft
    cannot be sent; an issue that moved on (sent, paused, cancelled) has nothing left to send
    (``IssueMovedOnError``)."""
    record = get(conn, issue_id)
    if record.state == IssueState.QUEUED:
        try:
            return transition(
                conn, issue_id, IssueState.SENDING, at, f"sending through {provider}",
                started_at=record.started_at or at, provider=provider,
            )
        except IssueStateError:  # another worker started it a moment ago
            record = get(conn, issue_id)
    if record.state == IssueState.DRAFT:
        raise IssueStateError(f"issue {issue_id} is a draft; queue it before sending")
    if record.state != IssueState.SENDING:
        raise IssueMovedOnError(f"issue {issue_id} is {record.state}: nothing left to send")
    return record
