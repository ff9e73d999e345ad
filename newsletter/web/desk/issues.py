"""The issues list, an issue's page, its state actions and its preview.

Each action calls the function the command line calls (``editor.editing``, ``Publisher``),
in a worker thread, recorded in the issue's history as ``desk:<user>``. When the state
machine says no (another editor moved the issue a moment ago, say), its message is shown
on the issue's page with a 409: never a 500 (``issuepage``). Editing a draft lives in
``editing``, test sends, queueing and retries in ``sending``.
"""

from __future__ import annotations

from typing import Any

from markupsafe import escape
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...editor.preview import sample_copy
from ...errors import NewsletterError
from ...models import IssueState
from ...publisher import Publisher
from ...store import issues as issue_store
from ...store import watch
from ..archive import issue_id_from_path
from .guard import Guard
from .issuepage import ACTIONS, Action, IssuePage, Operation
from .pages import DeskPages
from .report import live_progress_view
from .sessions import DeskSession

#: The preview's own policy: the email's inline styles and data: images, nothing that runs,
#: no requests outside the desk, and ``sandbox`` even when opened outside its iframe.
PREVIEW_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'none'; sandbox"
)
LIST_LIMIT = 200


class IssueEndpoints:
    def __init__(self, publisher: Publisher, guard: Guard, pages: DeskPages) -> None:
        self.publisher = publisher
        self.store = publisher.store
        self.guard = guard
        self.pages = pages
        self.issue_page = IssuePage(publisher, pages)

    def routes(self) -> list[Route]:
        guard = self.guard()
        return [
            Route("/desk/issues", guard(self.listing), methods=["GET"]),
            Route("/desk/issues/{issue_id}", guard(self.page), methods=["GET"]),
            Route("/desk/issues/{issue_id}/preview", guard(self.preview), methods=["GET"]),
            *self.issue_page.routes(self.guard, [_state_move(a) for a in ACTIONS.values()]),
        ]

    # -- the list --------------------------------------------------------------------------
    async def listing(
        self, request: Request, session: DeskSession, form: FormData | None
    ) -> Response:
        state = request.query_params.get("state", "")
        list_id = request.query_params.get("list", "")
        states = [IssueState(state)] if state in set(IssueState) else []
        rows = await run_in_threadpool(self._rows, list_id[:200], states)
        return self.pages.render(
            "issues.html", session, issues=rows, state=state if states else "",
            list_id=list_id[:200], states=[str(s) for s in IssueState],
            lists=sorted(self._timezones()),
        )

    def _rows(self, list_id: str, states: list[IssueState]) -> list[dict[str, Any]]:
        zones = self._timezones()
        with self.store.engine.connect() as conn:
            found = issue_store.find(conn, list_id=list_id or None, states_in=states,
                                     limit=LIST_LIMIT)
            counts = watch.outcome_counts_of(conn, [r.id for r in found])
            return [
                {"record": r, "timezone": zones.get(r.list_id, "UTC"),
                 "counts": counts.get(r.id, {}),
                 "progress": live_progress_view(conn, r, self.store.now())}
                for r in found
            ]

    def _timezones(self) -> dict[str, str]:
        try:
            return {k: v.timezone for k, v in self.publisher.config.lists.items()}
        except NewsletterError:  # a listing still works while the configuration is broken
            return {}

    # -- one issue -------------------------------------------------------------------------
    async def page(self, request: Request, session: DeskSession, form: FormData | None) -> Response:
        issue_id = issue_id_from_path(request.path_params["issue_id"])
        if issue_id is None:
            return self.issue_page.missing(session, request.path_params["issue_id"])
        return await self.issue_page.show(
            session, issue_id, notice=self.issue_page.notice(request, session)
        )

    # -- the preview, in a sandboxed frame -------------------------------------------------
    async def preview(
        self, request: Request, session: DeskSession, form: FormData | None
    ) -> Response:
        issue_id = issue_id_from_path(request.path_params["issue_id"])
        if issue_id is None:
            return self.issue_page.missing(session, request.path_params["issue_id"])
        try:
            html = await run_in_threadpool(lambda: sample_copy(self.publisher, issue_id).html)
        except NewsletterError as exc:
            html = f"<p>No preview: {escape(str(exc))}</p>"
        return Response(html, media_type="text/html", headers={
            "Content-Security-Policy": PREVIEW_CSP,
            "X-Frame-Options": "SAMEORIGIN",
        })


def _state_move(action: Action) -> Operation:
    def run(publisher: Publisher, issue_id: int, form: FormData) -> str:
        action.run(publisher, issue_id)
        return ""

    return Operation(action.name, run)
