"""Choosing what goes into an issue, and what it is called."""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

import nh3

from ..models import Article, IssueKind, MailingList

PREHEADER_CHARS = 140


def digest_subject(mailing_list: MailingList, when: datetime) -> str:
    local = when.astimezone(ZoneInfo(mailing_list.timezone))
    return f"{mailing_list.title} — {local.day} {local:%B %Y}"


def digest_preheader(items: Sequence[Article]) -> str:
    titles = ", ".join(a.title for a in items)
    text = f"In this issue: {titles}"
    return text if len(text) <= PREHEADER_CHARS else text[: PREHEADER_CHARS - 1].rstrip() + "…"


def article_preheader(article: Article) -> str:
    text = html.unescape(nh3.clean(article.summary_html or article.content_html, tags=set()))
    text = " ".join(text.split())
    return text if len(text) <= PREHEADER_CHARS else text[: PREHEADER_CHARS - 1].rstrip() + "…"


def one_line(text: str) -> str:
    """Titles from feeds may carry line breaks; a subject must not."""
    return " ".join(text.split())


def preheader_for(kind: IssueKind, articles: Sequence[Article]) -> str:
    """The preheader a new draft of ``kind`` gets from its articles."""
    if kind == IssueKind.ARTICLE:
        return article_preheader(articles[0])
    return digest_preheader(articles)
