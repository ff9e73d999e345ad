"""What the API reads and answers about an issue's send: its progress, its report, and its
recipients, a page at a time or all of them as CSV (see ``schemas`` for the rules they share).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field, RootModel

from ...models import DeliveryStatus, IssueState
from .schemas import Answer, FrozenAudience, PageQuery, Prefix, Query


class RecipientQuery(PageQuery):
    q: Prefix = ""
    status: DeliveryStatus | None = Field(
        default=None, description="Only recipients in this status, as the report counts them.")


class RecipientExportQuery(Query):
    status: DeliveryStatus | None = Field(
        default=None, description="Only recipients in this status, as the report counts them.")
    spreadsheet: bool = Field(
        default=False, description="Put a ' before an error or message id a spreadsheet would "
        "run as a formula, as the desk's download does.")


class IssueProgress(Answer):
    issue_id: int
    state: IssueState
    total: int = Field(description="Grows while the audience is frozen (audience_frozen false).")
    done: int
    percent: int = Field(description="Whole percent done, rounded down.")
    sent: int
    failed: int
    unknown: int
    suppressed: int
    pending: int
    rate: float = Field(description="Recipients a second over the last minute.")
    seconds_left: int | None = Field(description="At that rate; null when not known.")
    audience_frozen: bool
    exact: bool = Field(description="Counted from every row (the send is not live).")
    live: bool = Field(description="Sending, or queued and due: worth asking again soon.")
    at: datetime


class EventBucket(Answer):
    start: datetime
    counts: dict[str, int] = Field(description="The provider events, by type.")


class IssueReport(Answer):
    issue_id: int
    state: IssueState
    subject: str
    list_id: str = Field(alias="list")
    started_at: datetime | None
    finished_at: datetime | None
    recipients: int
    outcomes: dict[str, int] = Field(description="Recipients by status (those with any).")
    events: dict[str, int] = Field(description="Provider events by type.")
    bucket_seconds: int
    timeline: list[EventBucket] = Field(
        description="The events over time, from the send's start to the last one.")
    audience: FrozenAudience | None = Field(
        description="How the audience was frozen; null before it was.")


class RecipientOut(Answer):
    address: str = Field(description="As the list wrote it.")
    status: DeliveryStatus
    error: str
    message_id: str
    at: datetime | None


class RecipientsPage(Answer):
    issue_id: int
    items: list[RecipientOut]
    next_cursor: str | None
    searched_to: str | None = Field(
        description="Set when the page stopped at this address to stay quick, though not "
        "full: the next page goes on from there.")


class RecipientsCsv(RootModel[str]):
    """CSV (UTF-8): a header row of email, status, batch, error, message_id, updated_at
    (the columns of `newsletter issue recipients --csv`), then a row a recipient, in the
    order the audience was frozen."""
