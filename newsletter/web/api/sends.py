"""An issue's send over the API: its live progress, its report, and its recipients a page
at a time. The answers are ``editor.report``'s, which the desk's pages show."""

from __future__ import annotations

from ...editor import report as reading
from ...publisher import Publisher
from . import paging
from .paging import RecipientCursor
from .routing import Call, Operation
from .schemas import IssueProgress, IssueReport, RecipientQuery, RecipientsPage

TAGS = ("issues",)


class SendApi:
    def __init__(self, publisher: Publisher) -> None:
        self.store = publisher.store

    def operations(self) -> list[Operation]:
        one = "/issues/{issue_id}"
        return [
            Operation("GET", f"{one}/progress", "issueProgress", "How far the issue's send "
                      "has gone", self.progress, IssueProgress, tags=TAGS,
                      description="Ask again every few seconds while `live` is true: it is "
                      "counted from the batches while the send runs, from every row after."),
            Operation("GET", f"{one}/report", "issueReport", "The issue's outcomes, provider "
                      "events and their timeline", self.report, IssueReport, tags=TAGS),
            Operation("GET", f"{one}/recipients", "issueRecipients", "The issue's recipients "
                      "by address, found by how the address starts and by status",
                      self.recipients, RecipientsPage, query=RecipientQuery, tags=TAGS),
        ]

    def progress(self, call: Call) -> IssueProgress:
        found = reading.progress(self.store, call.ids["issue_id"])
        return IssueProgress.model_validate(found.as_dict())

    def report(self, call: Call) -> IssueReport:
        found = reading.report(self.store, call.ids["issue_id"]).as_dict()
        found["list"] = found.pop("list_id")
        return IssueReport.model_validate(found)

    def recipients(self, call: Call) -> RecipientsPage:
        query: RecipientQuery = call.query
        cursor = paging.decode(RecipientCursor, query.cursor)
        found = reading.recipients(
            self.store, call.ids["issue_id"], query=query.q,
            status=str(query.status or ""), after=cursor.after if cursor else "",
            limit=query.limit,
        )
        return RecipientsPage.model_validate({
            "issue_id": found.issue_id,
            "items": found.as_dict()["recipients"],
            "next_cursor": paging.encode(RecipientCursor(after=found.next_after))
            if found.next_after else None,
            "searched_to": found.searched_to,
        })
