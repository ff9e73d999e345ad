"""The issues list, an issue's page, its state actions and its preview.

Each action calls the function the command line calls (``editor.editing``, ``Publisher``),
in a worker thread, recorded in the issue's history as ``desk:<user>``. When the state
machine says no (another editor moved the issue a moment ago, say), its message is shown
on the issue's page with a 409: never a 500.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from markupsafe import escape
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ...editor import editing
from ...editor.preview import sample_copy
from ...errors import LintError, NewsletterError, NotFoundError
from ...models import IssueState
from ...publisher import Publisher
from ...store import issues as issue_store
from ...store import tally
from ..archive import issue_id_from_path
from .guard import Guard
from .pages import DeskPages
from .report import live_progress_view, progress_view
from .sessions import DeskSession

#: The preview's own policy: the email's inline styles and data: images, nothing that runs,
#: no requests outside the desk, and ``sandbox`` even when opened outside its iframe.
PREVIEW_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'none'; sandbox"
)


@dataclass(frozen=True, slots=True)
class Action:
    name: str
    label: str
    target: IssueState
    done: str
    run: Callable[[Publisher, int], object]


ACTIONS: dict[str, Action] = {
    a.name: a
    for a in (
        Action("queue", "Queue", IssueState.QUEUED, "Queued.",
               lambda p, i: editing.queue(p, i)),
        Action("unqueue", "Back to draft", IssueState.DRAFT, "Back to draft.", editing.unqueue),
        Action("pause", "Pause", IssueState.PAUSED, "Paused.", lambda p, i: p.pause(i)),
        Action("resume", "Resume", IssueState.QUEUED, "Resumed: queued again.",
               lambda p, i: p.resume(i)),
        Action("cancel", "Cancel", IssueState.CANCELLED, "Cancelled.", lambda p, i: p.cancel(i)),
    )
}
#: Which actions an issue's page offers in each state (the state machine has the last word).
OFFERED: dict[IssueState, tuple[str, ...]] = {
    IssueState.DRAFT: ("queue", "cancel"),
    IssueState.QUEUED: ("unqueue", "pause", "cancel"),
    IssueState.SENDING: ("pause", "cancel"),
    IssueState.PAUSED: ("resume", "cancel"),
}
LIST_LIMIT = 200


class IssueEndpoints:
    def __init__(self, publisher: Publisher, guard: Guard, pages: DeskPages) -> None:
        self.publisher = publisher
        self.store = publisher.store
        self.guard = guard
        self.pages = pages

    def routes(self) -> list[Route]:
        guard = self.guard()
        routes = [
            Route("/desk/issues", guard(self.listing), methods=["GET"]),
            Route("/desk/issues/{issue_id}", guard(self.page), methods=["GET"]),
            Route("/desk/issues/{issue_id}/preview", guard(self.preview), methods=["GET"]),
        ]
        for action in ACTIONS.values():
            routes.append(
                Route(f"/desk/issues/{{issue_id}}/{action.name}", guard(self._act(action)),
                      methods=["POST"], name=f"desk-{action.name}")
            )
        return routes

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
            return [
                {"record": r, "timezone": zones.get(r.list_id, "UTC"),
                 "counts": tally.status_counts(conn, r.id),
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
            return self._missing(session, request.path_params["issue_id"])
        done = ACTIONS.get(request.query_params.get("done", ""))
        return await self._page(request, session, issue_id, 200, notice=done.done if done else "")

    def _missing(self, session: DeskSession, issue_id: object) -> Response:
        return self.pages.render("error.html", session, 404, status_code=404,
                                 message=f"There is no issue {str(issue_id)[:40]}.")

    async def _page(
        self, request: Request, session: DeskSession, issue_id: int, status: int,
        notice: str = "", error: str = "", findings: list[str] | None = None,
    ) -> Response:
        try:
            details = await run_in_threadpool(self._details, issue_id)
        except NotFoundError:
            return self._missing(session, issue_id)
        return self.pages.render(
            "issue.html", session, status, notice=notice, error=error, findings=findings or [],
            actions=[ACTIONS[n] for n in OFFERED.get(details["record"].state, ())], **details,
        )

    def _details(self, issue_id: int) -> dict[str, Any]:
        with self.store.engine.connect() as conn:
            record = issue_store.get(conn, issue_id)
            counts = tally.status_counts(conn, issue_id)
            return {
                "record": record,
                "timezone": self._timezones().get(record.list_id, "UTC"),
                "articles": editing.articles_of(conn, issue_id),
                "events": issue_store.events(conn, issue_id),
                "counts": counts,
                "progress": progress_view(conn, record, self.store.now(), counts),
            }

    def _act(self, action: Action) -> Any:
        async def act(request: Request, session: DeskSession, form: FormData | None) -> Response:
            issue_id = issue_id_from_path(request.path_params["issue_id"])
            if issue_id is None:
                return self._missing(session, request.path_params["issue_id"])
            actor = f"desk:{session.user.name}"
            try:
                await run_in_threadpool(self._run, action, issue_id, actor)
            except LintError as exc:
                return await self._page(request, session, issue_id, 409,
                                        error="The pre-send checks refused to queue it:",
                                        findings=exc.findings)
            except NotFoundError:
                return self._missing(session, issue_id)
            except NewsletterError as exc:
                return await self._page(request, session, issue_id, 409, error=str(exc))
            return RedirectResponse(f"/desk/issues/{issue_id}?done={action.name}", 303)

        act.__name__ = f"issue_{action.name}"
        return act

    def _run(self, action: Action, issue_id: int, actor: str) -> None:
        with issue_store.acting_as(actor):
            action.run(self.publisher, issue_id)

    # -- the preview, in a sandboxed frame -------------------------------------------------
    async def preview(
        self, request: Request, session: DeskSession, form: FormData | None
    ) -> Response:
        issue_id = issue_id_from_path(request.path_params["issue_id"])
        if issue_id is None:
            return self._missing(session, request.path_params["issue_id"])
        try:
            html = await run_in_threadpool(lambda: sample_copy(self.publisher, issue_id).html)
        except NewsletterError as exc:
            html = f"<p>No preview: {escape(str(exc))}</p>"
        return Response(html, media_type="text/html", headers={
            "Content-Security-Policy": PREVIEW_CSP,
            "X-Frame-Options": "SAMEORIGIN",
        })
