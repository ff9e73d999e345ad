"""The collected articles as an editor looks for them: ids, sources, and the issues that
carry them — what ``newsletter articles`` prints, and what the desk's articles page and the
HTTP API show, a page at a time (keyset paging: a page is named by the last article of the
one before, so articles collected meanwhile never shift what the next page shows)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from ..errors import ConfigError, NotFoundError
from ..store import articles as article_store
from ..store import browse
from ..store.articles import Carrier

if TYPE_CHECKING:
    from ..publisher import Publisher


@dataclass(frozen=True, slots=True)
class ArticleEntry:
    id: int
    source: str
    uid: str
    title: str
    url: str
    author: str
    published: datetime | None
    first_seen: datetime
    archived: bool
    issues: tuple[Carrier, ...]
    #: Where the entry sorts (its publication date, else when first seen): the page's cursor.
    sort_key: datetime

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "source": self.source,
            "uid": self.uid,
            "title": self.title,
            "url": self.url,
            "author": self.author,
            "published": self.published.isoformat() if self.published else None,
            "first_seen": self.first_seen.isoformat(),
            "archived": self.archived,
            "issues": [
                {"id": c.issue_id, "list": c.list_id, "state": c.state, "position": c.position + 1}
                for c in self.issues
            ],
        }


def article_entries(
    publisher: Publisher,
    *,
    source_id: str | None = None,
    unsent_to: str | None = None,
    limit: int | None = None,
) -> list[ArticleEntry]:
    """Articles newest first: of one source, and/or not carried by any issue of a list."""
    _known_source(publisher, source_id, "--source")
    if unsent_to is not None:
        publisher.config.list(unsent_to)  # an unknown list is named, with the known ones
    with publisher.store.engine.connect() as conn:
        rows = article_store.catalogue(
            conn, source_id=source_id, not_carried_to=unsent_to, limit=limit
        )
        carried = article_store.carriers(conn, [r.id for r in rows]) if rows else {}
    return [_entry(row, carried.get(row.id, [])) for row in rows]


#: Articles on a page of the desk (and of the API, unless it asks for fewer).
PAGE_SIZE = 50
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a page of articles starts: after this sort key and id. Its ``token`` is what
    travels in a link (``?after=…``): digits and one underscore, nothing to escape."""

    key: datetime
    id: int

    @property
    def token(self) -> str:
        return f"{(self.key - _EPOCH) // _MICROSECOND}_{self.id}"

    @classmethod
    def parse(cls, token: str) -> Cursor:
        """The cursor a ``token`` names; ``ConfigError`` naming ``after`` if it names none."""
        micros, _, article_id = token.partition("_")
        try:
            return cls(_EPOCH + int(micros) * _MICROSECOND, int(article_id))
        except (ValueError, OverflowError) as exc:
            raise ConfigError(f"after: {token[:40]!r} is not a page of articles") from exc


@dataclass(frozen=True, slots=True)
class ArticlePage:
    """One page of articles, newest first, and the cursor of the next (None on the last)."""

    entries: tuple[ArticleEntry, ...]
    next: Cursor | None
    source_id: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "articles": [e.as_dict() for e in self.entries],
            "source": self.source_id,
            "next": self.next.token if self.next else None,
        }


def article_page(
    publisher: Publisher,
    *,
    source_id: str | None = None,
    after: Cursor | None = None,
    size: int = PAGE_SIZE,
) -> ArticlePage:
    """``size`` articles newest first (of one source), starting after ``after``."""
    _known_source(publisher, source_id, "source")
    with publisher.store.engine.connect() as conn:
        rows = browse.article_rows(
            conn, after=(after.key, after.id) if after else None, limit=size + 1,
            source_id=source_id,
        )
        shown = rows[:size]
        carried = article_store.carriers(conn, [r.id for r in shown]) if shown else {}
    entries = tuple(_entry(row, carried.get(row.id, [])) for row in shown)
    more = len(rows) > size
    return ArticlePage(
        entries, Cursor(entries[-1].sort_key, entries[-1].id) if more else None, source_id
    )


def _known_source(publisher: Publisher, source_id: str | None, field: str) -> None:
    """Raise, naming ``field`` and the sources there are, unless ``source_id`` is one."""
    if source_id is not None and source_id not in publisher.config.sources:
        known = ", ".join(sorted(publisher.config.sources)) or "none"
        raise NotFoundError(f"{field}: no source {source_id!r} (sources: {known})")


def article_entry(publisher: Publisher, article_id: int) -> ArticleEntry:
    with publisher.store.engine.connect() as conn:
        rows = article_store.catalogue(conn, only_id=article_id)
        if not rows:
            raise NotFoundError(f"no article with id {article_id}")
        carried = article_store.carriers(conn, [article_id])
    return _entry(rows[0], carried[article_id])


def _entry(row: object, issues: list[Carrier]) -> ArticleEntry:
    r = row._mapping  # type: ignore[attr-defined]
    return ArticleEntry(
        id=r["id"],
        source=r["source_id"],
        uid=r["uid"],
        title=r["title"],
        url=r["url"],
        author=r["author"],
        published=r["published_at"],
        first_seen=r["first_seen_at"],
        archived=bool(r["archived"]),
        issues=tuple(issues),
        sort_key=r["published_at"] or r["first_seen_at"],
    )
