"""Issues over the API: the list, drafting, an issue's record, its words, its articles, its
checks, a test send and every state move.

Each operation calls the function the command line and the desk call (``editor.editing``,
``Publisher``), so the state machine's rules and messages are theirs; ``routing`` turns
what they refuse into problems.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine

from ...editor import editing
from ...editor.preview import sample_address, sample_copy
from ...errors import ConfigError, NewsletterError
from ...issues.lint import LintReport
from ...publisher import Publisher
from ...store import audience_origins, browse, watch
from ...store import issues as issue_store
from ...store.issues import IssueRecord
from ...store.shared import Shared
from . import paging
from .paging import IssueCursor
from .problems import invalid
from .routing import PREFIX, Call, Operation, Reply, blame
from .schemas import (
    ActionAnswer,
    AddArticleBody,
    DraftAnswer,
    DraftBody,
    EditBody,
    Findings,
    HistoryEvent,
    IssueArticleOut,
    IssueArticles,
    IssueDetail,
    IssuePage,
    IssuePreview,
    IssueQuery,
    IssueSummary,
    MoveArticleBody,
    QueueAnswer,
    QueueBody,
    RetryAnswer,
    RetryBody,
    TestBody,
    TestSendAnswer,
)

TAGS = ("issues",)
#: Requests for the same issue that arrive together share one reading of it, as the counts
#: are shared (``store.shared``): each is answered with a reading that started after it
#: arrived. Twenty scripts polling an issue then cost little more than one.
_READINGS: Shared[tuple[Engine, int], IssueDetail] = Shared()


def local_text(at: datetime | None, timezone: str) -> str | None:
    return None if at is None else f"{at.astimezone(ZoneInfo(timezone)):%Y-%m-%d %H:%M}"


class IssueApi:
    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self.store = publisher.store

    def operations(self) -> list[Operation]:
        one = "/issues/{issue_id}"
        moves = [
            ("unqueue", "Send a queued issue back to draft", lambda i: editing.unqueue(
                self.publisher, i)),
            ("pause", "Pause a queued or sending issue", self.publisher.pause),
            ("resume", "Queue a paused issue again", self.publisher.resume),
            ("cancel", "Cancel an issue", self.publisher.cancel),
        ]
        return [
            Operation("GET", "/issues", "listIssues", "Issues, newest first", self.listing,
                      IssuePage, query=IssueQuery, tags=TAGS),
            Operation("POST", "/issues", "draftIssue", "Draft an issue", self.draft,
                      DraftAnswer, status=201, also=(200,), body=DraftBody, tags=TAGS,
                      description="A 201 with the new drafts (Location: the first); a 200 "
                      "with none when the list has nothing new."),
            Operation("GET", one, "getIssue", "An issue: its record, articles, recipients "
                      "by status and history", self.show, IssueDetail, tags=TAGS),
            Operation("PATCH", one, "editIssue", "Change a draft's subject, preheader or "
                      "introduction", self.edit, IssueDetail, body=EditBody, refusals=(409,),
                      tags=TAGS),
            Operation("GET", f"{one}/preview", "previewIssue", "The issue as a reader gets "
                      "it: subject, HTML and text, merged for a sample reader", self.preview,
                      IssuePreview, refusals=(422,), tags=TAGS),
            Operation("GET", f"{one}/check", "checkIssue", "The pre-send checks' findings",
                      self.check, Findings, refusals=(422,), tags=TAGS),
            Operation("POST", f"{one}/queue", "queueIssue", "Queue a draft, now or at a "
                      "local time", self.queue, QueueAnswer, body=QueueBody, refusals=(409,),
                      tags=TAGS),
            *[Operation("POST", f"{one}/{name}", f"{name}Issue", summary, self._move(run),
                        ActionAnswer, refusals=(409,), tags=TAGS)
              for name, summary, run in moves],
            Operation("POST", f"{one}/retry", "retryIssue", "Send again to the failed (or "
                      "unknown) recipients of a finished issue", self.retry, RetryAnswer,
                      body=RetryBody, refusals=(409,), tags=TAGS),
            Operation("POST", f"{one}/test", "testIssue", "Send the issue, marked [TEST], to "
                      "test addresses", self.test_send, TestSendAnswer, body=TestBody,
                      refusals=(502,), tags=TAGS),
            Operation("POST", f"{one}/articles", "addIssueArticle", "Put an article into a "
                      "draft", self.add_article, IssueArticles, body=AddArticleBody,
                      refusals=(409,), tags=TAGS),
            Operation("PUT", f"{one}/articles/{{article_id}}", "moveIssueArticle", "Move a "
                      "draft's article", self.move_article, IssueArticles,
                      body=MoveArticleBody, refusals=(409,), tags=TAGS),
            Operation("DELETE", f"{one}/articles/{{article_id}}", "removeIssueArticle",
                      "Take an article out of a draft", self.remove_article, IssueArticles,
                      refusals=(409,), tags=TAGS),
        ]

    # -- reading -----------------------------------------------------------------------------
    def timezone(self, list_id: str) -> str:
        try:
            return self.publisher.config.list(list_id).timezone
        except NewsletterError:  # a list gone from the file, or a file that cannot be read
            return "UTC"

    def summary(self, conn: Connection, record: IssueRecord) -> IssueSummary:
        timezone = self.timezone(record.list_id)
        return IssueSummary.model_validate({
            "id": record.id, "number": record.number, "list": record.list_id,
            "kind": record.kind, "state": record.state, "subject": record.subject,
            "preheader": record.preheader, "created_at": record.created_at,
            "updated_at": record.updated_at, "send_at": record.send_at,
            "send_at_local": local_text(record.send_at, timezone), "timezone": timezone,
            "started_at": record.started_at, "finished_at": record.finished_at,
            "recipients": _outcomes(conn, record.id),
        })

    def summary_of(self, issue_id: int) -> IssueSummary:
        with self.store.engine.connect() as conn:
            return self.summary(conn, issue_store.get(conn, issue_id))

    def detail(self, issue_id: int) -> IssueDetail:
        with self.store.engine.connect() as conn:
            record = issue_store.get(conn, issue_id)
            return IssueDetail.model_validate({
                **self.summary(conn, record).model_dump(by_alias=True),
                "intro_md": record.intro_md, "provider": record.provider,
                "pause_reason": record.pause_reason,
                "articles": self._articles(conn, issue_id),
                "history": [_event(e) for e in issue_store.events(conn, issue_id)],
                "audience": audience_origins.as_dict(conn, issue_id),
            })

    def _articles(self, conn: Connection, issue_id: int) -> list[IssueArticleOut]:
        return [IssueArticleOut.model_validate(a.as_dict())
                for a in editing.articles_of(conn, issue_id)]

    def listing(self, call: Call) -> IssuePage:
        query: IssueQuery = call.query
        cursor = paging.decode(IssueCursor, query.cursor)
        with self.store.engine.connect() as conn:
            ids = browse.issue_ids(
                conn, before_id=cursor.before if cursor else None, limit=query.limit + 1,
                list_id=query.list_id, states=[query.state] if query.state else [],
            )
            page = ids[: query.limit]
            items = [self.summary(conn, issue_store.get(conn, i)) for i in page]
        more = len(ids) > query.limit
        return IssuePage(
            items=items,
            next_cursor=paging.encode(IssueCursor(before=page[-1])) if more else None,
        )

    def show(self, call: Call) -> IssueDetail:
        issue_id = call.ids["issue_id"]
        return _READINGS((self.store.engine, issue_id), lambda: self.detail(issue_id),
                         call.asked_at)

    def preview(self, call: Call) -> IssuePreview:
        """What the desk's preview frames show. Merged for the sample reader only: a token
        holder naming any address would get that reader's unsubscribe link."""
        issue_id = call.ids["issue_id"]
        copy = sample_copy(self.publisher, issue_id)
        return IssuePreview(issue_id=issue_id, to=sample_address(self.publisher),
                            subject=copy.subject, html=copy.html, text=copy.text)

    def check(self, call: Call) -> Findings:
        return _findings(self.publisher.check(call.ids["issue_id"]))

    # -- drafting and editing ----------------------------------------------------------------
    def draft(self, call: Call) -> Reply:
        body: DraftBody = call.body
        with blame("list"):
            self.publisher.config.list(body.list_id)
        with blame("article_ids"):
            made = editing.draft(
                self.publisher, body.list_id, article_ids=body.article_ids, again=body.again,
                subject=body.subject, preheader=body.preheader, intro_md=body.intro_md,
            )
        answer = DraftAnswer(issues=[self.summary_of(i) for i in made])
        if not made:
            return Reply(answer, 200)
        return Reply(answer, 201, location=f"{PREFIX}/issues/{made[0]}")

    def edit(self, call: Call) -> IssueDetail:
        body: EditBody = call.body
        issue_id = call.ids["issue_id"]
        self.summary_of(issue_id)  # an unknown issue is a 404, not the body's problem
        try:
            editing.edit(self.publisher, issue_id, subject=body.subject,
                         preheader=body.preheader, intro_md=body.intro_md)
        except ConfigError as exc:  # nothing to change
            raise invalid("body", str(exc).replace("an intro", "an intro_md")) from exc
        return self.detail(issue_id)

    # -- state moves -------------------------------------------------------------------------
    def queue(self, call: Call) -> QueueAnswer:
        body: QueueBody = call.body
        issue_id = call.ids["issue_id"]
        with blame("at", kinds=(ConfigError,), options={"--at": "at"}):
            report, when = editing.queue_local(
                self.publisher, issue_id, body.at, force=body.force, field="at"
            )
        return QueueAnswer(issue=self.summary_of(issue_id), warnings=list(report.warnings),
                           note=when.note if when else "")

    def _move(self, run: Callable[[int], object]) -> Callable[[Call], ActionAnswer]:
        def move(call: Call) -> ActionAnswer:
            run(call.ids["issue_id"])
            return ActionAnswer(issue=self.summary_of(call.ids["issue_id"]))

        return move

    def retry(self, call: Call) -> RetryAnswer:
        body: RetryBody = call.body
        issue_id = call.ids["issue_id"]
        count = self.publisher.retry(issue_id, unknown=body.unknown)
        return RetryAnswer(issue=self.summary_of(issue_id), requeued=count)

    def test_send(self, call: Call) -> TestSendAnswer:
        body: TestBody = call.body
        self.summary_of(call.ids["issue_id"])  # an unknown issue first: a 404
        addresses = body.to or list(self.publisher.settings.test_recipients)
        if not addresses:
            raise invalid("to", "give the addresses, or set NEWSLETTER_TEST_RECIPIENTS")
        return TestSendAnswer(results=self.publisher.test_send(call.ids["issue_id"], addresses))

    # -- a draft's articles ------------------------------------------------------------------
    def add_article(self, call: Call) -> IssueArticles:
        body: AddArticleBody = call.body
        issue_id = call.ids["issue_id"]
        self.summary_of(issue_id)
        with blame("article_id", options={"--position": "position"}):
            editing.add_article(self.publisher, issue_id, body.article_id,
                                position=body.position, again=body.again)
        return self.articles(issue_id)

    def move_article(self, call: Call) -> IssueArticles:
        body: MoveArticleBody = call.body
        issue_id, article_id = call.ids["issue_id"], call.ids["article_id"]
        self.summary_of(issue_id)
        with blame("position", kinds=(ConfigError,), options={"--to": "position"}):
            editing.move_article(self.publisher, issue_id, article_id, body.position)
        return self.articles(issue_id)

    def remove_article(self, call: Call) -> IssueArticles:
        issue_id = call.ids["issue_id"]
        editing.remove_article(self.publisher, issue_id, call.ids["article_id"])
        return self.articles(issue_id)

    def articles(self, issue_id: int) -> IssueArticles:
        with self.store.engine.connect() as conn:
            return IssueArticles(issue_id=issue_id, articles=self._articles(conn, issue_id))


def _outcomes(conn: Connection, issue_id: int) -> dict[str, int]:
    """The issue's recipients by outcome, the ones nobody has left out (a draft: none)."""
    return {k: n for k, n in watch.outcome_counts(conn, issue_id).items() if n}


def _findings(report: LintReport) -> Findings:
    return Findings(errors=list(report.errors), warnings=list(report.warnings))


def _event(event: dict[str, object]) -> HistoryEvent:
    return HistoryEvent.model_validate(
        {**event, "by": event["by"] or "system"}
    )
