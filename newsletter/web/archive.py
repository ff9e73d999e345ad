"""The public archive: issues that went out, as their web version (``issues.web_html``).

Only issues that were (or are being) sent are shown, and only their web rendering, which
is made without any recipient's data. Drafts, queued, paused and cancelled issues answer 404
exactly like issues that do not exist.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Select, func, select
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from ..models import IssueState
from ..store import Store
from ..store.tables import issues
from .pages import Pages

VISIBLE_STATES = (IssueState.SENT, IssueState.PARTIALLY_FAILED, IssueState.SENDING)
#: The issue page is the rendered newsletter: inline styles and remote images, never scripts.
ISSUE_POLICY = (
    "default-src 'none'; img-src https: data:; style-src 'unsafe-inline'; font-src https: data:; "
    "form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)
ARCHIVE_CACHE = "public, max-age=300"
#: Ids are signed 64-bit integers on both databases (``tables.BigId``); a larger number in a
#: URL names no issue, and the drivers refuse to bind it (SQLite raises ``OverflowError``).
MAX_ISSUE_ID = 2**63 - 1
MAX_ID_DIGITS = len(str(MAX_ISSUE_ID))


@dataclass(frozen=True, slots=True)
class ArchivedIssue:
    id: int
    list_id: str
    subject: str
    sent_at: datetime | None


def _published() -> Select[Any]:
    when = func.coalesce(issues.c.started_at, issues.c.finished_at, issues.c.created_at)
    return (
        select(issues.c.id, issues.c.list_id, issues.c.subject, when.label("sent_at"))
        .where(issues.c.state.in_([str(s) for s in VISIBLE_STATES]), issues.c.web_html != "")
        .order_by(when.desc(), issues.c.id.desc())
    )


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive; they were stored as UTC."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def published_issues(conn: Connection, list_id: str | None = None) -> list[ArchivedIssue]:
    stmt = _published()
    if list_id is not None:
        stmt = stmt.where(issues.c.list_id == list_id)
    return [
        ArchivedIssue(row.id, row.list_id, row.subject, _aware(row.sent_at))
        for row in conn.execute(stmt)
    ]


def issue_id_from_path(text: str) -> int | None:
    """The issue id a URL segment names, or None when no issue can have it.

    ASCII digits only (``str.isdigit`` also takes other scripts' digits), leading zeros
    ignored, and at most ``MAX_ISSUE_ID``: the length is checked before ``int()``, which
    refuses strings of more than 4,300 digits with an error of its own.
    """
    digits = text.lstrip("0") or "0"
    if not (digits.isascii() and digits.isdigit()) or len(digits) > MAX_ID_DIGITS:
        return None
    issue_id = int(digits)
    return issue_id if 0 < issue_id <= MAX_ISSUE_ID else None


def known_list_id(text: str) -> bool:
    """False for a list id no list can have: PostgreSQL text cannot even hold a NUL to compare."""
    return "\x00" not in text


def published_html(conn: Connection, list_id: str, issue_id: int) -> str | None:
    stmt = select(issues.c.web_html).where(
        issues.c.id == issue_id,
        issues.c.list_id == list_id,
        issues.c.state.in_([str(s) for s in VISIBLE_STATES]),
    )
    html: str | None = conn.execute(stmt).scalar()
    return html or None


class ArchiveEndpoints:
    def __init__(self, store: Store, pages: Pages) -> None:
        self.store = store
        self.pages = pages

    def routes(self) -> list[Route]:
        return [
            Route("/archive/", self.index, methods=["GET"]),
            Route("/archive/{list_id}/", self.list_page, methods=["GET"]),
            # The id is read by ``issue_id_from_path``, not the ``int`` convertor: that takes
            # any number of digits, and the database cannot bind one past 64 bits.
            Route("/archive/{list_id}/{issue_id}", self.issue_page, methods=["GET"]),
        ]

    async def index(self, request: Request) -> Response:
        found = await run_in_threadpool(self._issues, None)
        by_list: dict[str, list[ArchivedIssue]] = defaultdict(list)
        for issue in found:
            by_list[issue.list_id].append(issue)
        title = self.pages.site.list_title
        lists = sorted(by_list.items(), key=lambda item: title(item[0]).lower())
        return self._cached(self.pages.render("archive_index.html", lists=lists))

    async def list_page(self, request: Request) -> Response:
        list_id = request.path_params["list_id"]
        if not known_list_id(list_id):
            raise HTTPException(404)
        found = await run_in_threadpool(self._issues, list_id)
        if not found:
            raise HTTPException(404)
        page = self.pages.render("archive_list.html", list_id=list_id, issues=found)
        return self._cached(page)

    async def issue_page(self, request: Request) -> Response:
        list_id = request.path_params["list_id"]
        issue_id = issue_id_from_path(request.path_params["issue_id"])
        if issue_id is None or not known_list_id(list_id):
            raise HTTPException(404)
        html = await run_in_threadpool(self._html, list_id, issue_id)
        if html is None:
            raise HTTPException(404)
        headers = {"Content-Security-Policy": ISSUE_POLICY, "Cache-Control": ARCHIVE_CACHE}
        return HTMLResponse(html, headers=headers)

    def _issues(self, list_id: str | None) -> list[ArchivedIssue]:
        with self.store.engine.connect() as conn:
            return published_issues(conn, list_id)

    def _html(self, list_id: str, issue_id: int) -> str | None:
        with self.store.engine.connect() as conn:
            return published_html(conn, list_id, issue_id)

    @staticmethod
    def _cached(response: Response) -> Response:
        response.headers["Cache-Control"] = ARCHIVE_CACHE
        return response
