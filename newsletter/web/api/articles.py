"""Collected articles over the API: newest first, a page at a time, and one with the
issues that carried it."""

from __future__ import annotations

from typing import Any

from ...editor.articles import article_entry
from ...publisher import Publisher
from ...store import browse
from . import paging
from .paging import ArticleCursor
from .routing import Call, Operation
from .schemas import ArticleCarrier, ArticleDetail, ArticlePage, ArticleSummary, PageQuery

TAGS = ("articles",)


class ArticleApi:
    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self.store = publisher.store

    def operations(self) -> list[Operation]:
        return [
            Operation("GET", "/articles", "listArticles", "Collected articles, newest first",
                      self.listing, ArticlePage, query=PageQuery, tags=TAGS),
            Operation("GET", "/articles/{article_id}", "getArticle", "An article, and the "
                      "issues that carry it", self.show, ArticleDetail, tags=TAGS),
        ]

    def listing(self, call: Call) -> ArticlePage:
        query: PageQuery = call.query
        cursor = paging.decode(ArticleCursor, query.cursor)
        with self.store.engine.connect() as conn:
            rows = browse.article_rows(
                conn, after=(cursor.at, cursor.id) if cursor else None, limit=query.limit + 1
            )
        page = rows[: query.limit]
        last = page[-1] if len(rows) > query.limit else None
        return ArticlePage(
            items=[_summary(row._mapping) for row in page],
            next_cursor=paging.encode(ArticleCursor(at=last.sort_at, id=last.id))
            if last is not None else None,
        )

    def show(self, call: Call) -> ArticleDetail:
        entry = article_entry(self.publisher, call.ids["article_id"])
        carriers = [
            ArticleCarrier.model_validate({"issue_id": c.issue_id, "list": c.list_id,
                                           "state": c.state, "position": c.position + 1})
            for c in entry.issues
        ]
        return ArticleDetail.model_validate({**entry.as_dict(), "issues": carriers})


def _summary(row: Any) -> ArticleSummary:
    return ArticleSummary(
        id=row["id"], source=row["source_id"], uid=row["uid"], title=row["title"],
        url=row["url"], author=row["author"], published=row["published_at"],
        first_seen=row["first_seen_at"], archived=bool(row["archived"]),
    )


