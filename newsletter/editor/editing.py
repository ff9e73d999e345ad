"""The editor's operations on one issue beyond the state moves the publisher makes: drafting
from named articles, a draft's articles added, moved and removed, a queued issue
rescheduled or sent back to draft.

The command line, the desk and an HTTP API call these; each is one transaction, and each
is recorded in the issue's history like a state move. Editing a draft's articles drops its
stored rendering, as editing its subject does, so it is rendered and checked again when it
is previewed, tested or queued.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import Connection

from ..errors import ConfigError, IssueStateError, NotFoundError
from ..issues import draft as drafting
from ..issues import sendtime
from ..models import IssueKind, IssueState
from ..store import articles as article_store
from ..store import issues as issue_store

if TYPE_CHECKING:
    from ..issues.lint import LintReport
    from ..publisher import Publisher

#: States of an issue that has (or may have) gone out to some of the list.
WENT_OUT = frozenset(
    {IssueState.SENDING, IssueState.PAUSED, IssueState.SENT, IssueState.PARTIALLY_FAILED}
)


@dataclass(frozen=True, slots=True)
class IssueArticle:
    """An article as an issue carries it: position (from 1), id, title, source, link."""

    position: int
    id: int
    title: str
    source: str
    url: str

    def as_dict(self) -> dict[str, object]:
        return {
            "position": self.position,
            "id": self.id,
            "title": self.title,
            "source": self.source,
            "url": self.url,
        }


# -- drafting from named articles ------------------------------------------------------------
def draft(
    publisher: Publisher,
    list_id: str,
    *,
    article_ids: Sequence[int] | None = None,
    again: bool = False,
    subject: str = "",
    preheader: str = "",
    intro_md: str = "",
) -> list[int]:
    """``Publisher.draft``, refusing named articles the list already has (sent, or waiting in
    another issue) unless ``again``."""
    publisher.config.list(list_id)  # an unknown list is named before any article is
    if article_ids and not again:
        with publisher.store.engine.connect() as conn:
            refuse_repeats(conn, list_id, article_ids)
    return publisher.draft(
        list_id, article_ids=article_ids, subject=subject, preheader=preheader, intro_md=intro_md
    )


def refuse_repeats(
    conn: Connection, list_id: str, article_ids: Sequence[int], *, besides: int | None = None,
    how_again: str = "give --again",
) -> None:
    """Raise if an issue of ``list_id`` (other than ``besides``, cancelled ones aside)
    carries one of ``article_ids``: the first such article, and the issue it went out in.
    ``how_again`` says how the caller's user asks for it anyway."""
    found = article_store.carriers(conn, article_ids, list_id=list_id)
    for article_id in article_ids:
        live = [
            c
            for c in found.get(article_id, [])
            if c.state != IssueState.CANCELLED and c.issue_id != besides
        ]
        went = [c for c in live if c.state in WENT_OUT]
        if went:
            raise RepeatedArticleError(
                f"article {article_id} already went to {list_id} in issue {went[0].issue_id} "
                f"({went[0].state}); {how_again} to send it again",
                article_id, went[0],
            )
        if live:
            raise RepeatedArticleError(
                f"article {article_id} is already in issue {live[0].issue_id} of {list_id} "
                f"({live[0].state}); {how_again} to put it in another issue too",
                article_id, live[0],
            )


class RepeatedArticleError(ConfigError):
    """A named article the list already had; its message speaks the command line's words,
    and ``article_id`` and ``carrier`` (the issue that has it) let a page say its own."""

    def __init__(self, message: str, article_id: int, carrier: article_store.Carrier) -> None:
        super().__init__(message)
        self.article_id = article_id
        self.carrier = carrier

    @property
    def went_out(self) -> bool:
        return self.carrier.state in WENT_OUT


# -- a draft's articles ----------------------------------------------------------------------
def articles_of(conn: Connection, issue_id: int) -> list[IssueArticle]:
    """The issue's articles in order."""
    return [
        IssueArticle(n, *heading)
        for n, heading in enumerate(article_store.headings_in_issue(conn, issue_id), start=1)
    ]


def add_article(
    publisher: Publisher,
    issue_id: int,
    article_id: int,
    *,
    position: int | None = None,
    again: bool = False,
    how_again: str = "give --again",
) -> tuple[int, int]:
    """Put an article into a draft at ``position`` (from 1; default: last). Returns the
    position and the number of articles now in the issue. A refused repeat says to
    ``how_again`` (the command line's flag, a desk's button)."""
    with publisher.store.engine.begin() as conn:
        record = issue_store.require_editable(conn, issue_id)
        ids = issue_store.article_ids(conn, issue_id)
        if not article_store.by_ids(conn, [article_id]):
            raise NotFoundError(f"no article with id {article_id}")
        if article_id in ids:
            raise ConfigError(
                f"article {article_id} is already in issue {issue_id}, "
                f"at position {ids.index(article_id) + 1}"
            )
        if not again:
            refuse_repeats(conn, record.list_id, [article_id], besides=issue_id,
                           how_again=how_again)
        at = len(ids) + 1 if position is None else position
        _check_position("--position", at, issue_id, len(ids), len(ids) + 1)
        ids.insert(at - 1, article_id)
        _save(conn, publisher, issue_id, ids, f"article {article_id} added at position {at}")
        issue_store.offer_articles(conn, record.list_id, issue_id, [article_id])
    return at, len(ids)


def move_article(
    publisher: Publisher, issue_id: int, article_id: int, position: int, *, field: str = "--to"
) -> tuple[int, int]:
    """Move an article of a draft to ``position`` (from 1). Returns it and the count."""
    with publisher.store.engine.begin() as conn:
        issue_store.require_editable(conn, issue_id)
        ids = _ids_holding(conn, issue_id, article_id)
        _check_position(field, position, issue_id, len(ids), len(ids))
        ids.remove(article_id)
        ids.insert(position - 1, article_id)
        _save(conn, publisher, issue_id, ids, f"article {article_id} moved to position {position}")
    return position, len(ids)


def remove_article(publisher: Publisher, issue_id: int, article_id: int) -> int:
    """Take an article out of a draft and give it back to the list (a later draft may
    offer it). Returns the number of articles left."""
    with publisher.store.engine.begin() as conn:
        issue_store.require_editable(conn, issue_id)
        ids = _ids_holding(conn, issue_id, article_id)
        ids.remove(article_id)
        _save(conn, publisher, issue_id, ids, f"article {article_id} removed")
        issue_store.withdraw_article(conn, issue_id, article_id)
    return len(ids)


def _ids_holding(conn: Connection, issue_id: int, article_id: int) -> list[int]:
    ids = issue_store.article_ids(conn, issue_id)
    if article_id not in ids:
        raise NotFoundError(f"article {article_id} is not in issue {issue_id}")
    return ids


def _check_position(field: str, position: int, issue_id: int, count: int, last: int) -> None:
    if not 1 <= position <= last:
        raise ConfigError(
            f"{field} {position}: issue {issue_id} has {count} article"
            f"{'' if count == 1 else 's'}; give 1 to {last}"
        )


def _save(
    conn: Connection, publisher: Publisher, issue_id: int, ids: Sequence[int], note: str
) -> None:
    now = publisher.store.now()
    preheader = _preheader_after(conn, issue_id, ids)
    issue_store.set_articles(conn, issue_id, ids)
    changes = {} if preheader is None else {"preheader": preheader}
    issue_store.edit(conn, issue_id, now, **changes)  # drops the rendering: renders anew
    issue_store.record_event(conn, issue_id, IssueState.DRAFT, IssueState.DRAFT, now, note)


def _preheader_after(conn: Connection, issue_id: int, ids: Sequence[int]) -> str | None:
    """A digest's preheader made from its articles ("In this issue: …") made again from
    the new ones; one the editor wrote is theirs and stays (None: unchanged)."""
    record = issue_store.get(conn, issue_id)
    if record.kind != IssueKind.DIGEST:
        return None
    old = [a for _, a in article_store.by_ids(conn, issue_store.article_ids(conn, issue_id))]
    if record.preheader != drafting.digest_preheader(old):
        return None
    return drafting.digest_preheader([a for _, a in article_store.by_ids(conn, ids)])


# -- a draft's words -------------------------------------------------------------------------
#: What ``edit`` changes, by the name each has in the store.
EDITABLE_FIELDS = ("subject", "preheader", "intro_md")


def edit(
    publisher: Publisher,
    issue_id: int,
    *,
    subject: str | None = None,
    preheader: str | None = None,
    intro_md: str | None = None,
) -> list[str]:
    """Change a draft's subject, preheader or introduction (Markdown); None leaves one as
    it is. Returns the names of the fields that changed; the history says which. What the
    words may hold is the pre-send checks' to say (``Publisher.check``), as for a subject
    made from an article's title."""
    given = {"subject": subject, "preheader": preheader, "intro_md": intro_md}
    changes = {name: value for name, value in given.items() if value is not None}
    if not changes:
        raise ConfigError("nothing to change: give a subject, a preheader or an intro")
    with publisher.store.engine.begin() as conn:
        current = issue_store.require_editable(conn, issue_id)
        changed = {k: v for k, v in changes.items() if getattr(current, k) != v}
        if changed:
            now = publisher.store.now()
            issue_store.edit(conn, issue_id, now, **changed)
            note = f"edited {', '.join(changed)}"
            issue_store.record_event(conn, issue_id, current.state, current.state, now, note)
    return list(changed)


# -- a queued issue's time -------------------------------------------------------------------
def queue(
    publisher: Publisher, issue_id: int, at: datetime | None = None, *, force: bool = False
) -> LintReport:
    """``Publisher.queue``; an issue queued already is pointed to ``reschedule`` and
    ``unqueue``, which is what an editor queueing it again is after."""
    with publisher.store.engine.connect() as conn:
        state = issue_store.get(conn, issue_id).state
    if state == IssueState.QUEUED:
        raise IssueStateError(
            f"issue {issue_id} is already queued; `newsletter issue reschedule {issue_id} "
            f"--at TIME` changes its time, `newsletter issue unqueue {issue_id}` makes it a "
            "draft again"
        )
    return publisher.queue(issue_id, at, force=force)


def queue_local(
    publisher: Publisher, issue_id: int, local_time: str | None, *, force: bool = False,
    field: str = "--at",
) -> tuple[LintReport, sendtime.SendTime | None]:
    """``queue`` at a time written in the list's timezone ('2026-12-01 08:00'; None or ''
    for now). A daylight-saving gap and the past are refused naming ``field``; a repeated
    time takes the first and says so in the ``SendTime``'s note."""
    when = _local_send_time(publisher, issue_id, local_time, field)
    return queue(publisher, issue_id, when.at if when else None, force=force), when


def _local_send_time(
    publisher: Publisher, issue_id: int, local_time: str | None, field: str
) -> sendtime.SendTime | None:
    """``local_time`` read in the issue's list's timezone, refused (naming ``field``) in a
    daylight-saving gap or the past; None for none given."""
    if not local_time or not local_time.strip():
        return None
    with publisher.store.engine.connect() as conn:
        record = issue_store.get(conn, issue_id)
    timezone = publisher.config.list(record.list_id).timezone
    when = sendtime.parse(local_time, timezone, field=field)
    sendtime.require_future(when.at, publisher.store.now(), timezone, field=field)
    return when


def reschedule(publisher: Publisher, issue_id: int, at: datetime | None) -> None:
    """Give a queued issue a new send time (None: send at the next send)."""
    with publisher.store.engine.begin() as conn:
        record = issue_store.get(conn, issue_id)
        if at is not None and record.state == IssueState.QUEUED:
            timezone = publisher.config.list(record.list_id).timezone
            sendtime.require_future(at, publisher.store.now(), timezone)
        note = f"send at {_utc_text(at)} (was {_utc_text(record.send_at)})"
        issue_store.reschedule(conn, issue_id, at, publisher.store.now(), note)


def reschedule_local(
    publisher: Publisher, issue_id: int, local_time: str | None, *, field: str = "--at"
) -> sendtime.SendTime | None:
    """``reschedule`` to a time written in the list's timezone (None or '': the next send),
    read and refused as ``queue_local`` reads and refuses it."""
    when = _local_send_time(publisher, issue_id, local_time, field)
    reschedule(publisher, issue_id, when.at if when else None)
    return when


def _utc_text(at: datetime | None) -> str:
    return at.astimezone(UTC).isoformat() if at else "now"


def unqueue(publisher: Publisher, issue_id: int) -> None:
    """queued → draft: the issue waits for an editor again, with no send time."""
    with publisher.store.engine.begin() as conn:
        current = issue_store.get(conn, issue_id).state
        if current != IssueState.QUEUED:
            raise IssueStateError(
                f"issue {issue_id} is {current}; only a queued issue can go back to draft"
            )
        issue_store.transition(
            conn,
            issue_id,
            IssueState.DRAFT,
            publisher.store.now(),
            "back to draft",
            send_at=None,
        )
