"""Articles seen, and what each source and list has been offered."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, Select, and_, bindparam, func, insert, select, update

from ..models import Article, FetchState, IssueState
from .db import dialect_insert
from .tables import articles, issue_articles, issues, list_articles, list_state, source_state


@dataclass(frozen=True, slots=True)
class UpsertCounts:
    new: int = 0
    edited: int = 0
    unchanged: int = 0
    archived: int = 0


def fetch_state(conn: Connection, source_id: str) -> tuple[FetchState, bool]:
    """The source's conditional-GET state, and whether it has ever been fetched."""
    row = conn.execute(select(source_state).where(source_state.c.source_id == source_id)).first()
    if row is None:
        return FetchState(), False
    return FetchState(etag=row.etag, last_modified=row.last_modified), True


def fetch_states(conn: Connection, source_ids: Sequence[str]) -> dict[str, FetchState]:
    """The conditional-GET state of each source ever fetched, read in one query."""
    rows = conn.execute(select(source_state).where(source_state.c.source_id.in_(source_ids)))
    return {
        row.source_id: FetchState(etag=row.etag, last_modified=row.last_modified) for row in rows
    }


@dataclass(frozen=True, slots=True)
class Fetched:
    """One fetch of a source, as ``source_state`` remembers it. ``first``: the source has no
    row yet. A failed fetch keeps the ETag and date of the last one that worked."""

    source_id: str
    status: str  # ok | not-modified | error
    etag: str = ""
    last_modified: str = ""
    error: str = ""
    new: int = 0
    first: bool = False


def record_fetches(conn: Connection, fetches: Sequence[Fetched], *, at: datetime) -> None:
    """Each source's fetch, in one statement per shape of row rather than one per source:
    a pass where two hundred feeds answer 304 writes its states in one UPDATE."""
    shapes: dict[tuple[bool, bool], list[dict[str, Any]]] = {}
    for fetched in fetches:
        row = _state_row(fetched, at)
        shapes.setdefault((fetched.first, "etag" in row), []).append(row)
    for (first, _), rows in shapes.items():
        if first:
            conn.execute(insert(source_state), rows)
            continue
        keyed = [{"b_source_id": row.pop("source_id"), **row} for row in rows]
        stmt = update(source_state).where(source_state.c.source_id == bindparam("b_source_id"))
        conn.execute(stmt, keyed)  # SET: the keys of the rows, every row the same keys


def _state_row(fetched: Fetched, at: datetime) -> dict[str, Any]:
    row: dict[str, Any] = {
        "source_id": fetched.source_id,
        "last_checked_at": at,
        "last_status": fetched.status,
        "last_error": fetched.error[:2000],
        "last_new": fetched.new,
    }
    if fetched.status in ("ok", "not-modified") or fetched.first:
        row |= {"etag": fetched.etag, "last_modified": fetched.last_modified}
    if fetched.first:
        row["first_seen_at"] = at
    return row


def upsert(
    conn: Connection,
    found: Sequence[Article],
    *,
    at: datetime,
    archive_before: datetime | None,
) -> UpsertCounts:
    """Store what a source offers. An edit updates the row but never makes it new again."""
    if not found:
        return UpsertCounts()
    source_id = found[0].source_id
    known = {
        row.uid: row.content_hash
        for row in conn.execute(
            select(articles.c.uid, articles.c.content_hash).where(
                articles.c.source_id == source_id, articles.c.uid.in_([a.uid for a in found])
            )
        )
    }
    counts = {"new": 0, "edited": 0, "unchanged": 0, "archived": 0}
    added: dict[str, dict[str, object]] = {}
    for article in found:
        if article.uid not in known:
            archived = _is_old(article, archive_before)
            first = {"first_seen_at": at, "archived": int(archived)}
            added[article.uid] = _row(article, at) | first
            counts["archived" if archived else "new"] += 1
            known[article.uid] = article.content_hash
        elif article.uid in added and known[article.uid] != article.content_hash:
            # The same entry twice in one document, changed: the later one is kept, as before.
            added[article.uid] |= _row(article, at)
            counts["edited"] += 1
        elif known[article.uid] != article.content_hash:
            conn.execute(
                update(articles)
                .where(articles.c.source_id == source_id, articles.c.uid == article.uid)
                .values(**_row(article, at))
            )
            counts["edited"] += 1
        else:
            counts["unchanged"] += 1
    if added:  # one statement for a feed's new articles, not one per article
        conn.execute(insert(articles), list(added.values()))
    return UpsertCounts(**counts)


def _is_old(article: Article, archive_before: datetime | None) -> bool:
    """Archive, not news: on a source's first fetch (``archive_before`` set), what is older
    than the look-back window, and what has no date at all. An undated item cannot show it
    is recent, and a new feed of undated items would otherwise mail its whole archive; on
    later fetches (``archive_before`` is ``None``) a new undated item is news."""
    if archive_before is None:
        return False
    return article.published is None or article.published < archive_before


def _row(article: Article, at: datetime) -> dict[str, object]:
    return {
        "source_id": article.source_id,
        "uid": article.uid,
        "title": article.title,
        "url": article.url,
        "author": article.author,
        "published_at": article.published,
        "summary_html": article.summary_html,
        "content_html": article.content_html,
        "image_url": article.image_url,
        "tags": list(article.tags),
        "content_hash": article.content_hash,
        "updated_at": at,
    }


def list_since(conn: Connection, list_id: str, at: datetime) -> datetime:
    """When the list was first seen (recorded now if never)."""
    row = conn.execute(
        select(list_state.c.first_seen_at).where(list_state.c.list_id == list_id)
    ).first()
    if row is not None:
        return row[0]
    # Two drafters seeing a new list at once: the first record stands, and both read it.
    conn.execute(dialect_insert(conn, list_state).values(list_id=list_id, first_seen_at=at)
                 .on_conflict_do_nothing())
    return conn.execute(
        select(list_state.c.first_seen_at).where(list_state.c.list_id == list_id)
    ).scalar_one()


def unsent_for_list(
    conn: Connection,
    list_id: str,
    source_ids: Iterable[str],
    *,
    since: datetime,
    limit: int | None = None,
) -> list[tuple[int, Article]]:
    """Articles of the list's sources never offered to it, oldest first."""
    offered = select(list_articles.c.article_id).where(list_articles.c.list_id == list_id)
    when = func.coalesce(articles.c.published_at, articles.c.first_seen_at)
    stmt = (
        select(articles)
        .where(
            and_(
                articles.c.source_id.in_(list(source_ids)),
                articles.c.archived == 0,
                when >= since,
                articles.c.id.not_in(offered),
            )
        )
        .order_by(when, articles.c.id)
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    return [(row.id, to_article(row)) for row in conn.execute(stmt)]


def by_ids(conn: Connection, ids: Sequence[int]) -> list[tuple[int, Article]]:
    rows = {row.id: row for row in conn.execute(select(articles).where(articles.c.id.in_(ids)))}
    return [(i, to_article(rows[i])) for i in ids if i in rows]


#: An issue's articles in order, as a page lists them: id, title, source, link. Built once;
#: reading whole articles (their HTML, tags …) took ten times as long.
_IN_ISSUE = (
    select(articles.c.id, articles.c.title, articles.c.source_id, articles.c.url)
    .join_from(issue_articles, articles, articles.c.id == issue_articles.c.article_id)
    .where(issue_articles.c.issue_id == bindparam("issue_id"))
    .order_by(issue_articles.c.position)
)


def headings_in_issue(conn: Connection, issue_id: int) -> list[tuple[int, str, str, str]]:
    """The issue's articles in order: (id, title, source, url)."""
    return [(int(i), title, source, url)
            for i, title, source, url in conn.execute(_IN_ISSUE, {"issue_id": issue_id})]


def to_article(row: object) -> Article:
    r = row._mapping  # type: ignore[attr-defined]
    return Article(
        source_id=r["source_id"],
        uid=r["uid"],
        title=r["title"],
        url=r["url"],
        published=r["published_at"],
        content_html=r["content_html"],
        summary_html=r["summary_html"],
        author=r["author"],
        tags=tuple(r["tags"] or ()),
        image_url=r["image_url"],
        content_hash=r["content_hash"],
    )


def lookback_start(at: datetime, days: int) -> datetime:
    return at - timedelta(days=days)


@dataclass(frozen=True, slots=True)
class Carrier:
    """An issue an article is in: which, for which list, in what state, at what position."""

    issue_id: int
    list_id: str
    state: str
    position: int


#: An article as listed (a catalogue, a page of articles): everything but its content.
CATALOGUE_COLUMNS = (
    articles.c.id,
    articles.c.source_id,
    articles.c.uid,
    articles.c.title,
    articles.c.url,
    articles.c.author,
    articles.c.published_at,
    articles.c.first_seen_at,
    articles.c.archived,
)


def catalogue(
    conn: Connection,
    *,
    source_id: str | None = None,
    not_carried_to: str | None = None,
    only_id: int | None = None,
    limit: int | None = None,
) -> list[Row[Any]]:
    """Stored articles, newest first (by publication date, else when first seen): all, one
    source's, or those no issue of a list carries (cancelled issues carry nothing)."""
    stmt = select(*CATALOGUE_COLUMNS).order_by(
        func.coalesce(articles.c.published_at, articles.c.first_seen_at).desc(),
        articles.c.id.desc(),
    )
    if source_id is not None:
        stmt = stmt.where(articles.c.source_id == source_id)
    if only_id is not None:
        stmt = stmt.where(articles.c.id == only_id)
    if not_carried_to is not None:
        stmt = stmt.where(articles.c.id.not_in(_carried_to(not_carried_to)))
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(conn.execute(stmt))


def _carried_to(list_id: str) -> Select[tuple[int]]:
    return (
        select(issue_articles.c.article_id)
        .join(issues, issues.c.id == issue_articles.c.issue_id)
        .where(issues.c.list_id == list_id, issues.c.state != str(IssueState.CANCELLED))
    )


def carriers(
    conn: Connection, article_ids: Sequence[int], *, list_id: str | None = None
) -> dict[int, list[Carrier]]:
    """The issues each article is in, oldest first (of one list, if given)."""
    stmt = (
        select(
            issue_articles.c.article_id,
            issues.c.id,
            issues.c.list_id,
            issues.c.state,
            issue_articles.c.position,
        )
        .join(issues, issues.c.id == issue_articles.c.issue_id)
        .where(issue_articles.c.article_id.in_(bindparam("ids", expanding=True)))
        .order_by(issues.c.id)
    )
    if list_id is not None:
        stmt = stmt.where(issues.c.list_id == list_id)
    found: dict[int, list[Carrier]] = {a: [] for a in article_ids}
    ids = list(article_ids)  # asked in chunks: PostgreSQL binds 65,535 values a statement
    for start in range(0, len(ids), _IDS_PER_QUERY):
        chunk = {"ids": ids[start : start + _IDS_PER_QUERY]}
        for article_id, issue_id, in_list, state, position in conn.execute(stmt, chunk):
            found[article_id].append(Carrier(issue_id, in_list, state, position))
    return found


_IDS_PER_QUERY = 500
