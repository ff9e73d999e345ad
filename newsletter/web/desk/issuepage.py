"""An issue's page, and how every action on it answers.

The page is the same whether it is asked for or shown again after a refusal. An action
(a POST the ``Guard`` let through) runs the command line's own function in a worker
thread, recorded in the issue's history as ``desk:<user>``, then answers with a 303 back
to the page and a notice. When it is refused, the page is shown again with what the
editor typed: a 409 with the state machine's message when the issue's state forbids it
(another editor moved it a moment ago, say), a 422 with the message beside the field
when the input is wrong. Never a 500.

A notice that carries details (where a test went, the time an issue was queued for) rides
in the redirect's query, signed (``notices``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ...editor import editing
from ...editor.overview import IssueOverview, issue_overview
from ...editor.preview import sample_address
from ...errors import ConfigError, LintError, NewsletterError, NotFoundError, ProviderError
from ...models import IssueState
from ...publisher import Publisher
from ...store import issues as issue_store
from ..archive import issue_id_from_path
from . import notices
from .guard import Guard, Handler
from .pages import DeskPages
from .report import ProgressView, progress_view
from .sessions import DeskSession

CHECKS_REFUSED = "The pre-send checks refused to queue it:"


@dataclass(frozen=True, slots=True)
class Action:
    """A state move the page offers as a plain button."""

    name: str
    label: str
    target: IssueState
    done: str
    run: Callable[[Publisher, int], object]


ACTIONS: dict[str, Action] = {
    a.name: a
    for a in (
        Action("unqueue", "Back to draft", IssueState.DRAFT, "Back to draft.", editing.unqueue),
        Action("pause", "Pause", IssueState.PAUSED, "Paused.", lambda p, i: p.pause(i)),
        Action("resume", "Resume", IssueState.QUEUED, "Resumed: queued again.",
               lambda p, i: p.resume(i)),
        Action("cancel", "Cancel", IssueState.CANCELLED, "Cancelled.", lambda p, i: p.cancel(i)),
    )
}
#: Which buttons the page offers in each state (the state machine has the last word). A
#: draft is queued through the queue form, which takes a time and the checks' override.
OFFERED: dict[IssueState, tuple[str, ...]] = {
    IssueState.DRAFT: ("cancel",),
    IssueState.QUEUED: ("unqueue", "pause", "cancel"),
    IssueState.SENDING: ("pause", "cancel"),
    IssueState.PAUSED: ("resume", "cancel"),
}
#: What the page says after an action that has nothing more to tell.
DONE: dict[str, str] = {"queue": "Queued.", **{a.name: a.done for a in ACTIONS.values()}}


class FieldError(ConfigError):
    """A form's input is wrong: ``field`` is the id of the input (or group) on the page."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class Problem:
    field: str
    message: str


@dataclass(frozen=True, slots=True)
class Operation:
    """One form of the page: its path under the issue (and ``done`` code), what it runs
    (returning the notice's details, or "" for the plain one), and the input a
    ``ConfigError`` or ``NotFoundError`` it raises is about (None: the page as a whole)."""

    name: str
    run: Callable[[Publisher, int, FormData], str]
    field: str | None = None


def text_field(form: FormData, name: str) -> str:
    """A text input's value; "" when missing or sent as a file."""
    value = form.get(name)
    return value if isinstance(value, str) else ""


def ticked(form: FormData, name: str) -> bool:
    return text_field(form, name) != ""


def whole_number(form: FormData, name: str, field: str) -> int:
    text = text_field(form, name).strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 12:
        raise FieldError(field, f"{name}: {text[:20]!r} is not a whole number")
    return int(text)


class IssuePage:
    def __init__(self, publisher: Publisher, pages: DeskPages) -> None:
        self.publisher = publisher
        self.pages = pages

    # -- showing it ------------------------------------------------------------------------
    def missing(self, session: DeskSession, issue_id: object) -> Response:
        return self.pages.render("error.html", session, 404, status_code=404,
                                 message=f"There is no issue {str(issue_id)[:40]}.")

    async def show(
        self, session: DeskSession, issue_id: int, status: int = 200, *, notice: str = "",
        error: str = "", findings: list[str] | None = None, problem: Problem | None = None,
        typed: dict[str, str] | None = None,
    ) -> Response:
        try:
            overview = await run_in_threadpool(issue_overview, self.publisher, issue_id)
        except NotFoundError:
            return self.missing(session, issue_id)
        record = overview.record
        progress = await run_in_threadpool(self._progress, overview)
        return self.pages.render(
            "issue.html", session, status,
            notice=notice, error=error, findings=findings or [], problem=problem,
            typed=typed or {}, actions=[ACTIONS[n] for n in OFFERED.get(record.state, ())],
            test_recipients=self.publisher.settings.test_recipients,
            sample=sample_address(self.publisher), editable=overview.editable,
            retry_failed=overview.retryable("failed"),
            retry_unknown=overview.retryable("unknown"),
            send_at=local_fields(record.send_at, overview.timezone), progress=progress,
            **{f.name: getattr(overview, f.name) for f in fields(overview)},
        )

    def _progress(self, overview: IssueOverview) -> ProgressView:
        with self.publisher.store.engine.connect() as conn:
            return progress_view(conn, overview.record, self.publisher.store.now(),
                                 overview.counts)

    def notice(self, request: Request, session: DeskSession) -> str:
        """The signed notice in the query, else the plain one its ``done`` code names."""
        return notices.read(request, session) or \
            DONE.get(request.query_params.get("done", ""), "")

    # -- acting on it ----------------------------------------------------------------------
    def routes(self, guard: Guard, operations: list[Operation]) -> list[Route]:
        wrap = guard()
        return [
            Route(f"/desk/issues/{{issue_id}}/{op.name}", wrap(self.handler(op)),
                  methods=["POST"], name=f"desk-{op.name}")
            for op in operations
        ]

    def handler(self, op: Operation) -> Handler:
        async def act(request: Request, session: DeskSession, form: FormData | None) -> Response:
            issue_id = issue_id_from_path(request.path_params["issue_id"])
            if issue_id is None:
                return self.missing(session, request.path_params["issue_id"])
            given = form or FormData()
            actor = f"desk:{session.user.name}"
            try:
                detail = await run_in_threadpool(self._run, op, issue_id, given, actor)
            except NewsletterError as exc:
                status, refusal = refused(op, exc)
                return await self.show(session, issue_id, status, typed=typed_in(given),
                                       **refusal)
            return self.done(session, issue_id, op.name, detail)

        act.__name__ = f"issue_{op.name.replace('-', '_')}"
        return act

    def _run(self, op: Operation, issue_id: int, form: FormData, actor: str) -> str:
        with issue_store.acting_as(actor):
            return op.run(self.publisher, issue_id, form)

    def done(self, session: DeskSession, issue_id: int, name: str, detail: str) -> Response:
        query = {"done": name, **({"notice": notices.signed(session, detail)} if detail else {})}
        return RedirectResponse(f"/desk/issues/{issue_id}?{urlencode(query)}", status_code=303)


class IssueForms:
    """Endpoints for some of the page's forms: a subclass names its ``operations``."""

    operations: ClassVar[list[Operation]] = []

    def __init__(self, publisher: Publisher, guard: Guard, pages: DeskPages) -> None:
        self.page = IssuePage(publisher, pages)
        self.guard = guard

    def routes(self) -> list[Route]:
        return self.page.routes(self.guard, self.operations)


def refused(op: Operation, exc: NewsletterError) -> tuple[int, dict[str, Any]]:
    """The status and what the page shows for an action refused with ``exc``."""
    if isinstance(exc, FieldError):
        return 422, {"problem": Problem(exc.field, str(exc))}
    if isinstance(exc, LintError):
        return 409, {"error": CHECKS_REFUSED, "findings": exc.findings}
    if isinstance(exc, ConfigError | NotFoundError) and op.field:
        return 422, {"problem": Problem(op.field, str(exc))}
    if isinstance(exc, ProviderError):
        return 502, {"error": f"The provider did not take it: {exc}"}
    return 409, {"error": str(exc)}


def typed_in(form: FormData) -> dict[str, str]:
    """What the editor typed, to show again in the form it came from."""
    return {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf"}


def local_fields(at: datetime | None, timezone: str) -> dict[str, str]:
    """A send time as the date and time inputs show it, in the list's timezone."""
    if at is None:
        return {"date": "", "time": ""}
    local = at.astimezone(ZoneInfo(timezone))
    return {"date": f"{local:%Y-%m-%d}", "time": f"{local:%H:%M}"}

