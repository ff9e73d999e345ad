"""The collected articles as an editor looks for them: ids, sources, and the issues that
carry them — what ``newsletter articles`` prints and what the desk will show."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from ..errors import NotFoundError
from ..store import articles as article_store
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

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "source": self.source,
            "uid": self.uid,
            "title": self.title,
            "url": self.url,
            "author": self.author,
            "published": self.published,
            "first_seen": self.first_seen,
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
    if source_id is not None and source_id not in publisher.config.sources:
        known = ", ".join(sorted(publisher.config.sources)) or "none"
        raise NotFoundError(f"--source: no source {source_id!r} (sources: {known})")
    if unsent_to is not None:
        publisher.config.list(unsent_to)  # an unknown list is named, with the known ones
    with publisher.store.engine.connect() as conn:
        rows = article_store.catalogue(
            conn, source_id=source_id, not_carried_to=unsent_to, limit=limit
        )
        carried = article_store.carriers(conn, [r.id for r in rows]) if rows else {}
    return [_entry(row, carried.get(row.id, [])) for row in rows]


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
    )
