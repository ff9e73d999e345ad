"""An issue's send over the API: its live progress, its report, and its recipients a page
at a time or all of them as CSV. The answers are ``editor.report``'s and
``editor.recipients_export``'s, which the desk's pages and the command line show."""

from __future__ import annotations

import itertools

from ...editor import recipients_export
from ...editor import report as reading
from ...publisher import Publisher
from . import paging
from .paging import RecipientCursor
from .routing import CSV_TYPE, Call, Operation, Streamed
from .send_schemas import (
    IssueProgress,
    IssueReport,
    RecipientExportQuery,
    RecipientQuery,
    RecipientsCsv,
    RecipientsPage,
)

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
            Operation("GET", f"{one}/recipients.csv", "exportIssueRecipients", "Every "
                      "recipient of the issue, as CSV", self.export, RecipientsCsv,
                      query=RecipientExportQuery, media_type=CSV_TYPE, tags=TAGS,
                      description="The columns of `newsletter issue recipients --csv`, in "
                      "the order the audience was frozen, streamed a page at a time."),
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

    def export(self, call: Call) -> Streamed:
        query: RecipientExportQuery = call.query
        issue_id = call.ids["issue_id"]
        # The status is one the query model allows: only an unknown issue is refused (404).
        rows = recipients_export.export_rows(self.store, issue_id, str(query.status or ""))
        chunks = recipients_export.csv_chunks(rows, for_spreadsheets=query.spreadsheet)
        # The first piece is read here: a store that fails is a problem, not a cut download.
        first = next(chunks)
        return Streamed(itertools.chain([first], chunks), f"issue-{issue_id}-recipients.csv")
