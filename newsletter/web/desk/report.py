"""An issue's live progress, its report and its recipients (a page at a time, or all of them
as a CSV download), on the desk.

The numbers come from ``editor.report``, which the HTTP API serves too. The progress block
(``templates/desk/progress.html``) shows them at page load; while the issue is live a small
script of our own (``progress.js``, served from ``/desk/assets/``) asks the JSON route every
two seconds and updates the text and the ``<progress>`` element, and stops when it is over.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ...editor import recipients_export
from ...editor import report as reading
from ...editor.report import Progress
from ...errors import ConfigError, NotFoundError
from ...store import Store
from ...store.issues import IssueRecord
from ..archive import issue_id_from_path
from . import charts
from .guard import Guard
from .pages import TEMPLATES, DeskPages
from .sessions import DeskSession

SCRIPT = "progress.js"
#: Words for an issue's state at the head of a sentence.
_STATE_WORDS = {
    "draft": "Draft", "queued": "Queued", "sending": "Sending", "paused": "Paused",
    "sent": "Sent", "partially-failed": "Partially failed", "cancelled": "Cancelled",
}


# -- the progress block, as the template and the JSON route show it ------------------------
def count(n: int) -> str:
    return f"{n:,}"


def time_left(p: Progress) -> str:
    if not p.live:
        return "—"
    if p.seconds_left is None:
        return "not known yet"
    seconds = p.seconds_left
    if seconds < 60:
        return "under a minute" if seconds else "none"
    minutes = -(-seconds // 60)
    if minutes < 60:
        return f"about {minutes} minute{'s' if minutes != 1 else ''}"
    return f"about {minutes // 60} h {minutes % 60:02d} min"


def rate(p: Progress) -> str:
    return f"{round(p.rate):,} a second" if p.live and p.rate >= 0.5 else "—"


def announcement(p: Progress) -> str:
    """What the polite live region says: it changes at each tenth of the send and when the
    state changes, not at every poll, so a screen reader is not talked over."""
    state = _STATE_WORDS.get(p.state, p.state)
    if p.state == "sending":
        return f"{state}: {p.percent // 10 * 10} % done or more."
    if p.live:
        return f"{state}: the send starts at the scheduler's next round."
    return f"{state}: {count(p.done)} of {count(p.total)} recipients done."


def shown(p: Progress) -> dict[str, str]:
    """Every text of the progress block, keyed by its ``data-field``."""
    return {
        "state": p.state, "percent": f"{p.percent} %", "done": count(p.done),
        "total": count(p.total) + ("" if p.audience_frozen else " so far"),
        "sent": count(p.sent), "failed": count(p.failed), "unknown": count(p.unknown),
        "suppressed": count(p.suppressed), "pending": count(p.pending), "rate": rate(p),
        "time_left": time_left(p), "announce": announcement(p),
    }


@dataclass(frozen=True, slots=True)
class ProgressView:
    """A progress and its texts, for ``progress.html``."""

    progress: Progress
    text: dict[str, str]

    @property
    def url(self) -> str:
        return f"/desk/issues/{self.progress.issue_id}/progress"

    @property
    def worth_showing(self) -> bool:
        """Live, or with a ledger: a draft has nothing to show."""
        return self.progress.live or self.progress.total > 0


def progress_view(
    conn: Connection, record: IssueRecord, now: datetime,
    outcomes: Mapping[str, int] | None = None,
) -> ProgressView:
    """The progress block of ``record`` (for the issue page and the list); see
    ``editor.report.progress_of`` for ``outcomes``."""
    found = reading.progress_of(conn, record, now, outcomes)
    return ProgressView(found, shown(found))


def live_progress_view(
    conn: Connection, record: IssueRecord, now: datetime
) -> ProgressView | None:
    """The progress block of ``record`` while it is live (for the issues list), else None."""
    return progress_view(conn, record, now) if reading.is_live(record, now) else None


# -- the report's charts -----------------------------------------------------------------------
def report_charts(report: reading.Report) -> dict[str, Any]:
    width = timedelta(seconds=report.bucket_seconds)
    starts = [b.start for b in report.timeline]
    series = [(t, [dict(b.counts)[t] for b in report.timeline]) for t in reading.EVENT_TYPES]
    return {
        "outcome_chart": charts.bar_chart(report.outcomes),
        "event_chart": charts.bar_chart(report.events),
        "timeline": charts.timeline(starts, series, width),
        "bucket": _width_words(width),
    }


def _width_words(width: timedelta) -> str:
    hours = int(width.total_seconds() // 3600)
    if hours % 24 == 0:
        days = hours // 24
        return "day" if days == 1 else ("week" if days == 7 else f"{days} days")
    return "hour" if hours == 1 else f"{hours} hours"


class ReportEndpoints:
    def __init__(self, store: Store, guard: Guard, pages: DeskPages) -> None:
        self.store = store
        self.guard = guard
        self.pages = pages
        self.script = (TEMPLATES / SCRIPT).read_text(encoding="utf-8")

    def routes(self) -> list[Route]:
        guard = self.guard()
        return [
            Route(f"/desk/assets/{SCRIPT}", guard(self.script_file), methods=["GET"]),
            Route("/desk/issues/{issue_id}/progress", guard(self.progress), methods=["GET"]),
            Route("/desk/issues/{issue_id}/report", guard(self.report), methods=["GET"]),
            Route("/desk/issues/{issue_id}/recipients", guard(self.recipients),
                  methods=["GET"]),
            Route("/desk/issues/{issue_id}/recipients.csv", guard(self.export),
                  methods=["GET"]),
        ]

    async def script_file(
        self, request: Request, session: DeskSession, form: FormData | None
    ) -> Response:
        return Response(self.script, media_type="text/javascript")

    def _missing(self, session: DeskSession, issue_id: object) -> Response:
        return self.pages.render("error.html", session, 404, status_code=404,
                                 message=f"There is no issue {str(issue_id)[:40]}.")

    async def progress(
        self, request: Request, session: DeskSession, form: FormData | None
    ) -> Response:
        issue_id = issue_id_from_path(request.path_params["issue_id"])
        try:
            if issue_id is None:
                raise NotFoundError("no such issue")
            found = await run_in_threadpool(reading.progress, self.store, issue_id)
        except NotFoundError:
            return JSONResponse({"error": "There is no such issue."}, status_code=404)
        return JSONResponse({**found.as_dict(), "shown": shown(found)})

    async def report(
        self, request: Request, session: DeskSession, form: FormData | None
    ) -> Response:
        issue_id = issue_id_from_path(request.path_params["issue_id"])
        try:
            if issue_id is None:
                raise NotFoundError("no such issue")
            found = await run_in_threadpool(reading.report, self.store, issue_id)
        except NotFoundError:
            return self._missing(session, request.path_params["issue_id"])
        return self.pages.render("report.html", session, report=found, **report_charts(found))

    async def recipients(
        self, request: Request, session: DeskSession, form: FormData | None
    ) -> Response:
        issue_id = issue_id_from_path(request.path_params["issue_id"])
        params = request.query_params
        query, status = params.get("q", ""), params.get("status", "")
        after = params.get("after", "")
        asked = {"query": query, "status": status, "after": after}
        context: dict[str, Any] = {"asked": asked, "statuses": reading.STATUSES,
                                   "issue_id": issue_id}
        try:
            if issue_id is None:
                raise NotFoundError("no such issue")
            found = await run_in_threadpool(
                lambda: reading.recipients(self.store, issue_id, query=query, status=status,
                                           after=after)
            )
        except NotFoundError:
            return self._missing(session, request.path_params["issue_id"])
        except ConfigError as exc:
            return self.pages.render("recipients.html", session, 400, status_code=400,
                                     found=None, error=str(exc), **context)
        return self.pages.render("recipients.html", session, found=found, error="", **context)

    async def export(
        self, request: Request, session: DeskSession, form: FormData | None
    ) -> Response:
        """Every recipient (of the status asked for), made safe to open in a spreadsheet."""
        issue_id = issue_id_from_path(request.path_params["issue_id"])
        status = request.query_params.get("status", "")
        try:
            if issue_id is None:
                raise NotFoundError("no such issue")
            rows = await run_in_threadpool(
                recipients_export.export_rows, self.store, issue_id, status)
        except NotFoundError:
            return self._missing(session, request.path_params["issue_id"])
        except ConfigError as exc:
            return self.pages.render("error.html", session, 400, status_code=400,
                                     message=str(exc))
        chunks = recipients_export.csv_chunks(rows, for_spreadsheets=True)
        name = f"issue-{issue_id}-{status or 'all'}-recipients.csv"
        return StreamingResponse(
            (chunk.encode("utf-8") for chunk in chunks), media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
