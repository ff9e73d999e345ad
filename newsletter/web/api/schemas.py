"""What the API reads and answers, as pydantic models: the same models check a request,
write an answer and make the OpenAPI document's schemas.

Bodies are strict (a string is not a number, ``"yes"`` is not ``true``) and refuse fields
they do not know, so a typo is told rather than ignored. Text may not hold a NUL character,
which PostgreSQL cannot store.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from email_validator import EmailNotValidError
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, RootModel

from ...editor.report import MAX_QUERY
from ...lists.address import sendable_address
from ...models import (
    ALL_LISTS,
    Cadence,
    IssueKind,
    IssueState,
    SuppressionReason,
)
from ..archive import MAX_ISSUE_ID

#: No NUL anywhere (the same pattern in Python, Rust and ECMAScript regular expressions).
NO_NUL = r"^[^\x00]*$"
MAX_LINE = 1000
MAX_INTRO = 50_000

Id = Annotated[int, Field(ge=1, le=MAX_ISSUE_ID)]
Line = Annotated[str, Field(max_length=MAX_LINE, pattern=NO_NUL)]
Markdown = Annotated[str, Field(max_length=MAX_INTRO, pattern=NO_NUL)]
#: What an address starts with, searched for (as long as the desk's search box takes).
Prefix = Annotated[str, Field(
    max_length=MAX_QUERY, pattern=NO_NUL,
    description="Only addresses that start with this (any case; % and _ are themselves).",
)]
Scope = Annotated[str, Field(min_length=1, max_length=100, pattern=NO_NUL)]


def _address(value: str) -> str:
    try:
        return sendable_address(value)
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from exc


Address = Annotated[
    str, Field(max_length=254, json_schema_extra={"format": "email"}), AfterValidator(_address)
]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Query(BaseModel):
    """Query parameters arrive as text: numbers are read from it; unknown ones are ignored."""

    model_config = ConfigDict(extra="ignore")


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_by_name=True, serialize_by_alias=True)


# -- queries ---------------------------------------------------------------------------------
class PageQuery(Query):
    limit: int = Field(default=50, ge=1, le=200, description="How many items a page holds.")
    cursor: str | None = Field(
        default=None, max_length=500,
        description="The next_cursor of the page before (leave out for the first page).",
    )


class IssueQuery(PageQuery):
    state: IssueState | None = Field(default=None, description="Only issues in this state.")
    list_id: str | None = Field(
        default=None, alias="list", max_length=100, pattern=NO_NUL, description="Only this list's."
    )


class SuppressionQuery(PageQuery):
    q: Prefix = ""


class LiftQuery(Query):
    scope: Scope | None = Field(
        default=None, description=f"Only the suppression for this list ('{ALL_LISTS}': the "
        "one for every list); leave out to lift every one the address has.")
    acknowledged: bool = Field(
        default=False, description="Needed to lift a hard bounce or a complaint: say that "
        "the risk to the publication's sending is understood.")


class ExportQuery(Query):
    scope: Scope | None = Field(
        default=None, description=f"Only this list's suppressions ('{ALL_LISTS}': those for "
        "every list).")
    spreadsheet: bool = Field(
        default=False, description="Put a ' before a source or detail a spreadsheet would "
        "run as a formula, as the desk's download does.")


# -- bodies ----------------------------------------------------------------------------------
class DraftBody(Body):
    list_id: str = Field(alias="list", min_length=1, max_length=100, pattern=NO_NUL)
    article_ids: list[Id] | None = Field(
        default=None, min_length=1, max_length=500,
        description="These articles, in this order; leave out for the list's new ones.",
    )
    again: bool = Field(default=False, description="Allow articles the list has had already.")
    subject: Line = ""
    preheader: Line = ""
    intro_md: Markdown = ""


class EditBody(Body):
    subject: Line | None = None
    preheader: Line | None = None
    intro_md: Markdown | None = None


class QueueBody(Body):
    at: Line | None = Field(
        default=None, description="The send time in the list's timezone, as '2026-12-01 08:00' "
        "(or with an offset, '2026-12-01 08:00+01:00'); leave out to send at once.",
    )
    force: bool = Field(default=False, description="Queue despite the pre-send checks' warnings.")


class RetryBody(Body):
    unknown: bool = Field(
        default=False,
        description="Retry recipients whose outcome is unknown (not the failed ones).",
    )


class TestBody(Body):
    to: list[Address] | None = Field(
        default=None, min_length=1, max_length=20,
        description="Where to send it; leave out for NEWSLETTER_TEST_RECIPIENTS.",
    )


class AddArticleBody(Body):
    article_id: Id
    position: Id | None = Field(default=None, description="From 1; leave out for the end.")
    again: bool = Field(default=False, description="Allow an article the list has had already.")


class MoveArticleBody(Body):
    position: Id = Field(description="From 1.")


class SuppressBody(Body):
    email: str = Field(min_length=1, max_length=MAX_QUERY, pattern=NO_NUL)
    scope: Scope = Field(default=ALL_LISTS, description=f"A list's id, or '{ALL_LISTS}' (the "
                         "default) for every list.")
    reason: SuppressionReason = SuppressionReason.MANUAL
    note: Line = Field(default="", description="Why, for whoever reads it later (its detail).")


# -- answers ---------------------------------------------------------------------------------
class IssueArticleOut(Answer):
    position: int
    id: int
    title: str
    source: str
    url: str


class HistoryEvent(Answer):
    at: datetime
    from_state: str = Field(alias="from", description="Empty when the issue was made.")
    to: str
    note: str
    by: str = Field(description="api:<token>, desk:<user>, cli:<system user> or system.")


class IssueSummary(Answer):
    id: int
    number: int | None
    list_id: str = Field(alias="list")
    kind: IssueKind
    state: IssueState
    subject: str
    preheader: str
    created_at: datetime
    updated_at: datetime
    send_at: datetime | None
    send_at_local: str | None = Field(description="send_at in the list's timezone.")
    timezone: str
    started_at: datetime | None
    finished_at: datetime | None
    recipients: dict[str, int] = Field(
        description="Recipients counted by outcome: sent (whatever the provider reported "
        "since), failed, unknown, suppressed, pending; an outcome nobody has is left out. "
        "The desk's report breaks them down by delivery status.")


class FrozenAudience(Answer):
    summary: str = Field(description="How it was frozen, and the repeats dropped, in words.")
    copied_from: int | None = Field(
        description="The issue whose audience was copied; null: read from the list's files.")
    appended_to: str | None = Field(
        description="The member file whose rows appended since were read after the copy.")
    from_line: int | None = Field(description="The first line of it read (1: all of it).")
    rows: int | None = Field(
        description="Recipients it holds; null when its freeze was taken over mid-way.")
    duplicates: int | None = Field(description="Repeated addresses dropped (the first kept).")


class IssueDetail(IssueSummary):
    intro_md: str
    provider: str
    pause_reason: str
    articles: list[IssueArticleOut]
    history: list[HistoryEvent]
    audience: FrozenAudience | None = Field(
        description="How the audience was frozen; null before it was.")


class IssuePage(Answer):
    items: list[IssueSummary]
    next_cursor: str | None


class DraftAnswer(Answer):
    issues: list[IssueSummary] = Field(description="The drafts made (none: nothing new).")


class Findings(Answer):
    errors: list[str]
    warnings: list[str]


class ActionAnswer(Answer):
    issue: IssueSummary


class QueueAnswer(ActionAnswer):
    warnings: list[str] = Field(description="Warnings a forced queue went past.")
    note: str = Field(description="How a send time that needed a choice was read.")


class RetryAnswer(ActionAnswer):
    requeued: int


class TestSendAnswer(Answer):
    results: list[str] = Field(description="Each address and what the provider said.")


class IssuePreview(Answer):
    issue_id: int
    to: str = Field(description="The sample reader it is merged for: the first test "
                    "recipient (NEWSLETTER_TEST_RECIPIENTS), else a made-up one.")
    subject: str
    html: str = Field(description="The HTML part, styles inlined, as a mail program gets it.")
    text: str = Field(description="The plain-text part.")


class IssueArticles(Answer):
    issue_id: int
    articles: list[IssueArticleOut]


class ArticleSummary(Answer):
    id: int
    source: str
    uid: str
    title: str
    url: str
    author: str
    published: datetime | None
    first_seen: datetime
    archived: bool


class ArticleCarrier(Answer):
    issue_id: int
    list_id: str = Field(alias="list")
    state: str
    position: int


class ArticleDetail(ArticleSummary):
    issues: list[ArticleCarrier]


class ArticlePage(Answer):
    items: list[ArticleSummary]
    next_cursor: str | None


class SourceOutcome(Answer):
    source_id: str
    status: str = Field(description="ok, not-modified or error.")
    new: int
    edited: int
    unchanged: int
    archived: int
    error: str
    problems: list[str]


class InstantListOutcome(Answer):
    list_id: str = Field(alias="list")
    drafted: list[int] = Field(description="Issues drafted from the new articles.")
    queued: list[int] = Field(description="Of those, the ones queued (an `auto` list's).")
    waiting: list[int] = Field(description="Of those, the ones left for an editor.")
    held: list[str] = Field(description="Drafts an error kept back, each with the reason.")


class CollectAnswer(Answer):
    new: int
    sources: list[SourceOutcome]
    instant: list[InstantListOutcome] = Field(
        description="What each instant list made of the new articles.")


class LockOut(Answer):
    owner: str
    until: datetime
    expired: bool


class JobOut(Answer):
    id: str
    name: str
    next_run: datetime | None
    timezone: str


class ProgressOut(Answer):
    id: int
    list_id: str = Field(alias="list")
    state: IssueState
    subject: str
    send_at: datetime | None
    started_at: datetime | None
    pause_reason: str
    total: int
    recipients: dict[str, int]


class StatusAnswer(Answer):
    lock: LockOut | None = Field(description="Who holds the scheduler's lock.")
    schedule: list[JobOut]
    issues: list[ProgressOut] = Field(description="Issues queued, sending or paused.")
    last_collection: dict[str, Any] | None


# -- lists -----------------------------------------------------------------------------------
class ListProblem(Answer):
    severity: str = Field(description="error or warning.")
    where: str = Field(description="file:line, the file named from the publication's folder.")
    message: str
    text: str = Field(description="file:line: message.")


class ListOut(Answer):
    id: str
    title: str
    description: str
    cadence: Cadence
    schedule: str | None = Field(description="A digest's cron schedule, in its timezone.")
    timezone: str
    next_run: datetime | None = Field(
        description="A digest's next run; null for an instant list, or while the scheduler "
        "has not scheduled it.")
    next_run_local: str | None = Field(description="next_run in the list's timezone.")
    files: list[str]
    members: int
    suppressed: int
    recipients: int = Field(description="Members less the suppressed.")
    invalid: int
    duplicates: int
    errors: int
    warnings: int
    problems: list[ListProblem] = Field(description="The first problems of its files.")
    more_problems: int = Field(description="Problems beyond those (lists check shows all).")


class ListsAnswer(Answer):
    ok: bool = Field(description="No file has an error.")
    errors: int
    warnings: int
    problems: list[ListProblem] = Field(
        description="The publication file's own problems: with any, no list is read.")
    lists: list[ListOut]


# -- suppressions ----------------------------------------------------------------------------
class SuppressionOut(Answer):
    email: str
    scope: str = Field(description=f"A list's id, or '{ALL_LISTS}' for every list.")
    reason: SuppressionReason
    source: str = Field(description="Who or what suppressed it (api:<token>, desk:<user>, "
                        "cli, webhook:<provider>, …).")
    detail: str
    created_at: datetime


class SuppressionsPage(Answer):
    items: list[SuppressionOut]
    next_cursor: str | None


class SuppressedAnswer(Answer):
    email: str = Field(description="As stored: lower-cased, a Unicode domain in IDNA form.")
    scope: str
    reason: SuppressionReason
    added: bool = Field(description="False: it was suppressed there already (the first "
                        "reason is kept).")


class LiftedAnswer(Answer):
    email: str
    lifted: list[SuppressionOut]


class SuppressionsCsv(RootModel[str]):
    """CSV (UTF-8): a header row of email, scope, reason, source, detail, created_at, then a
    row a suppression, by address."""
