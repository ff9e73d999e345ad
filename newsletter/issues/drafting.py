"""Drafting issues from a list's articles: which articles go in, and the draft that holds
them (one issue for a digest, one per article for an instant list).

Two drafters may take the same new articles at once (the scheduler's collection, and a
publish hook over the API): the store's ``claim`` lets one of them have each article, and
the other drafts from what is left, or nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from ..config import Settings
from ..errors import NotFoundError
from ..lists.config import PublicationConfig
from ..models import Article, Cadence, IssueKind, MailingList
from ..store import Store
from ..store import articles as article_store
from ..store import issues as issue_store
from . import draft as wording

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DraftText:
    """What an editor may set on a new draft; what is left empty is made from its articles."""

    subject: str = ""
    preheader: str = ""
    intro_md: str = ""


@dataclass(frozen=True)
class Drafter:
    """Drafts issues of one publication."""

    settings: Settings
    store: Store
    config: PublicationConfig

    def draft(self, list_id: str, article_ids: Sequence[int] | None,
              text: DraftText) -> list[int]:
        """The new issues' ids (none if nothing new); ``article_ids`` None takes the list's
        unsent articles, claiming them against another drafter."""
        mailing_list = self.config.list(list_id)
        chosen = self.choose(mailing_list, article_ids)
        if not chosen:
            return []
        claim = article_ids is None
        if mailing_list.cadence == Cadence.INSTANT and claim:
            made = [self.create(mailing_list, IssueKind.ARTICLE, [item], text, claim=True)
                    for item in chosen]
            return [issue_id for issue_id in made if issue_id is not None]
        made_one = self.create(mailing_list, _kind(mailing_list, chosen), chosen, text,
                               claim=claim)
        return [] if made_one is None else [made_one]

    def choose(
        self, mailing_list: MailingList, article_ids: Sequence[int] | None
    ) -> Sequence[tuple[int, Article]]:
        with self.store.engine.begin() as conn:
            if article_ids is not None:
                found = article_store.by_ids(conn, article_ids)
                missing = set(article_ids) - {i for i, _ in found}
                if missing:
                    raise NotFoundError(
                        f"no article with id {', '.join(map(str, sorted(missing)))}"
                    )
                return found
            since = article_store.list_since(conn, mailing_list.id, self.store.now())
            since = article_store.lookback_start(since, self.lookback_days(mailing_list))
            limit = mailing_list.max_articles if mailing_list.cadence == Cadence.DIGEST else None
            return article_store.unsent_for_list(
                conn, mailing_list.id, mailing_list.sources, since=since, limit=limit
            )

    def lookback_days(self, mailing_list: MailingList) -> int:
        """The longest look-back of the list's sources (each source may set its own)."""
        default = self.settings.lookback_days
        sources = self.config.sources
        return max(
            (sources[s].lookback_days or default for s in mailing_list.sources), default=default
        )

    def create(
        self,
        mailing_list: MailingList,
        kind: IssueKind,
        chosen: Sequence[tuple[int, Article]],
        text: DraftText,
        *,
        claim: bool = False,
    ) -> int | None:
        """The draft, or None when ``claim`` found every article taken by another draft."""
        now = self.store.now()
        subject = text.subject or _subject(mailing_list, kind, chosen, now)
        try:
            with self.store.engine.begin() as conn:
                issue_id = issue_store.create(
                    conn, list_id=mailing_list.id, kind=kind, subject=subject,
                    preheader=text.preheader, intro_md=text.intro_md,
                    article_ids=[i for i, _ in chosen], at=now, claim=claim,
                )
                taken = set(issue_store.article_ids(conn, issue_id))
                kept = [a for i, a in chosen if i in taken]
                if not text.preheader:  # made from the articles the draft did get
                    made = wording.preheader_for(kind, kept)
                    issue_store.edit(conn, issue_id, now, preheader=made)
        except issue_store.AlreadyOffered:
            log.info("list %s: another draft took those articles first", mailing_list.id)
            return None
        log.info("drafted issue %s for %s (%s articles)", issue_id, mailing_list.id, len(kept))
        return issue_id


def _kind(mailing_list: MailingList, chosen: Sequence[tuple[int, Article]]) -> IssueKind:
    if len(chosen) == 1 and mailing_list.template == "article":
        return IssueKind.ARTICLE
    return IssueKind.DIGEST


def _subject(mailing_list: MailingList, kind: IssueKind,
             chosen: Sequence[tuple[int, Article]], now: datetime) -> str:
    if kind == IssueKind.ARTICLE:
        return wording.one_line(chosen[0][1].title)
    return wording.digest_subject(mailing_list, now)
