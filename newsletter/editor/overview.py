"""One issue as an editor looks at it before and after it goes out: its record, articles,
history and counts; the recent articles a draft could take; the pre-send checks; and the
text part a sample reader gets. The desk's issue page shows this, and an HTTP API can
answer with it.

Only what the issue's state makes useful is worked out: articles to add for a draft,
checks for a draft or a queued issue (afterwards they would only repeat what was sent).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from ..errors import NewsletterError
from ..models import EDITABLE_STATES, IssueState
from ..store import audience_origins, watch
from ..store import issues as issue_store
from ..store.articles import Carrier
from ..store.audience_origins import FrozenAudience
from ..store.issues import IssueRecord
from .articles import ArticleEntry, article_entries
from .editing import IssueArticle, articles_of
from .preview import sample_copy

if TYPE_CHECKING:
    from ..issues.lint import LintReport
    from ..publisher import Publisher

#: How many of the newest articles a draft's page offers to add.
RECENT_ARTICLES = 20
#: The states whose issue has not gone out yet: the pre-send checks still matter.
CHECKED_STATES = frozenset({IssueState.DRAFT, IssueState.QUEUED})
#: States in which the failed or unknown recipients of an issue may be tried again.
RETRY_STATES = frozenset({IssueState.SENT, IssueState.PARTIALLY_FAILED})


@dataclass(frozen=True, slots=True)
class Candidate:
    """An article a draft may take, and the live issues of the draft's list that carry it
    already (adding it then means sending it again, which the editor must ask for)."""

    id: int
    title: str
    source: str
    date: datetime
    carriers: tuple[Carrier, ...]

    @property
    def repeat(self) -> bool:
        return bool(self.carriers)


@dataclass(frozen=True, slots=True)
class IssueOverview:
    record: IssueRecord
    timezone: str
    articles: list[IssueArticle]
    events: list[dict[str, object]]
    #: Recipients by outcome (``store.watch.OUTCOMES``); the report breaks them down by status.
    counts: dict[str, int]
    candidates: list[Candidate] = field(default_factory=list)
    #: How its audience was frozen (``store.audience_origins``); None before it was.
    audience: FrozenAudience | None = None
    checks: LintReport | None = None
    text: str = ""
    #: Why the checks or the text part could not be worked out ("" when they were).
    checks_problem: str = ""
    text_problem: str = ""

    @property
    def editable(self) -> bool:
        return self.record.state in EDITABLE_STATES

    def retryable(self, status: str) -> int:
        """How many recipients of ``status`` (failed, unknown: an outcome and a status
        alike) a retry would take."""
        return self.counts.get(status, 0) if self.record.state in RETRY_STATES else 0


def issue_overview(publisher: Publisher, issue_id: int) -> IssueOverview:
    """Everything the issue's page shows; ``NotFoundError`` for an unknown issue."""
    with publisher.store.engine.connect() as conn:
        record = issue_store.get(conn, issue_id)
        articles = articles_of(conn, issue_id)
        events = issue_store.events(conn, issue_id)
        counts = watch.outcome_counts(conn, issue_id)
        audience = audience_origins.of(conn, issue_id)
    addable = candidates(publisher, record, articles) if record.state in EDITABLE_STATES else []
    checks, checks_problem = _checks(publisher, record)
    text, text_problem = _text_part(publisher, issue_id)
    return IssueOverview(
        record, list_timezone(publisher, record.list_id), articles, events, counts,
        candidates=addable, checks=checks, checks_problem=checks_problem,
        text=text, text_problem=text_problem, audience=audience,
    )


def list_timezone(publisher: Publisher, list_id: str) -> str:
    """The list's timezone; UTC while the configuration cannot be read (the page still
    shows the issue)."""
    try:
        return publisher.config.list(list_id).timezone
    except NewsletterError:
        return "UTC"


def candidates(
    publisher: Publisher, record: IssueRecord, articles: list[IssueArticle],
    limit: int = RECENT_ARTICLES,
) -> list[Candidate]:
    """The newest ``limit`` articles the issue does not carry, newest first."""
    carried = {a.id for a in articles}
    entries = article_entries(publisher, limit=limit + len(carried))
    fresh = [e for e in entries if e.id not in carried][:limit]
    return [_candidate(e, record) for e in fresh]


def _candidate(entry: ArticleEntry, record: IssueRecord) -> Candidate:
    live = tuple(
        c for c in entry.issues
        if c.list_id == record.list_id and c.state != IssueState.CANCELLED
    )
    return Candidate(entry.id, entry.title, entry.source, entry.published or entry.first_seen,
                     live)


def _checks(publisher: Publisher, record: IssueRecord) -> tuple[LintReport | None, str]:
    if record.state not in CHECKED_STATES:
        return None, ""
    try:
        return publisher.check(record.id), ""
    except NewsletterError as exc:  # a template or the configuration is broken: say so
        return None, str(exc)


def _text_part(publisher: Publisher, issue_id: int) -> tuple[str, str]:
    try:
        return sample_copy(publisher, issue_id).text, ""
    except NewsletterError as exc:
        return "", str(exc)
