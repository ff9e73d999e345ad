"""The administrators' suppressions page: find an address (by how it starts), suppress one,
lift one, and download them all as CSV. Each action calls ``editor.suppressions``, as
``newsletter suppressions add|remove|export`` does; lifting a hard bounce or a complaint
needs its confirmation box ticked."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from ...editor import suppressions as suppressing
from ...editor.suppressions import (
    RISKY,
    InvalidAddressError,
    SuppressionCursor,
    SuppressionPage,
    UnacknowledgedError,
)
from ...errors import NewsletterError, NotFoundError
from ...models import ALL_LISTS, SuppressionReason
from ...publisher import Publisher
from . import forms
from .forms import FieldError
from .guard import Guard
from .pages import DeskPages
from .sessions import DeskSession

PAGE = "/desk/suppressions"
NOTICES = {
    "added": "Suppressed: it gets no mail there from now on.",
    "kept": "It was already suppressed there; the first reason is kept.",
    "lifted": "Lifted: it gets mail again from the lists it is a member of.",
}


@dataclass(frozen=True, slots=True)
class Search:
    prefix: str = ""
    after: str = ""


class SuppressionEndpoints:
    def __init__(self, publisher: Publisher, guard: Guard, pages: DeskPages) -> None:
        self.publisher = publisher
        self.store = publisher.store
        self.guard = guard
        self.pages = pages

    def routes(self) -> list[Route]:
        admin = self.guard("admin")
        return [
            Route(PAGE, admin(self.listing), methods=["GET"]),
            Route(f"{PAGE}/add", admin(self.add), methods=["POST"]),
            Route(f"{PAGE}/lift", admin(self.lift), methods=["POST"]),
            Route(f"{PAGE}/export", admin(self.export), methods=["GET"]),
        ]

    # -- the page ------------------------------------------------------------------------
    async def listing(
        self, request: Request, session: DeskSession, form: FormData | None
    ) -> Response:
        search = Search(request.query_params.get("q", "").strip()[:320],
                        request.query_params.get("after", "")[:1000])
        notice = NOTICES.get(request.query_params.get("done", ""), "")
        return await self._page(session, search, notice=notice)

    async def _page(
        self, session: DeskSession, search: Search, *, status: int = 200, notice: str = "",
        error: FieldError | None = None, sent: dict[str, str] | None = None,
    ) -> Response:
        try:
            page = await run_in_threadpool(self._read, search)
        except FieldError as exc:
            error, status, search = error or exc, 422, Search(search.prefix)
            page = await run_in_threadpool(self._read, search)
        return self.pages.render(
            "suppressions.html", session, status, page=page, search=search, notice=notice,
            error=error, sent=sent or {}, lists=self._lists(), reasons=list(SuppressionReason),
            risky={str(r) for r in RISKY}, all_lists=ALL_LISTS,
            scope_words=suppressing.scope_words,
        )

    def _read(self, search: Search) -> SuppressionPage:
        try:
            after = SuppressionCursor.parse(search.after) if search.after else None
        except NewsletterError as exc:
            raise FieldError("after", "Page", "that link to a page of suppressions is broken; "
                             "here is the first") from exc
        return suppressing.suppression_page(self.store, search.prefix, after=after)

    def _lists(self) -> dict[str, str]:
        try:
            return {k: v.title for k, v in sorted(self.publisher.config.lists.items())}
        except NewsletterError:  # suppressing for every list still works
            return {}

    def _back(self, done: str, address: str) -> Response:
        return RedirectResponse(f"{PAGE}?{urlencode({'q': address, 'done': done})}", 303)

    # -- suppress ------------------------------------------------------------------------
    async def add(self, request: Request, session: DeskSession, form: FormData | None) -> Response:
        sent = {name: forms.text(form, name) for name in ("email", "list", "reason", "note")}
        try:
            done = await run_in_threadpool(self._suppress, sent, f"desk:{session.user.name}")
        except FieldError as exc:
            return await self._page(session, Search(), status=422, error=exc, sent=sent)
        return self._back("added" if done.added else "kept", done.email)

    def _suppress(self, sent: dict[str, str], source: str) -> suppressing.Suppressed:
        scope = sent["list"] or ALL_LISTS
        if scope != ALL_LISTS and scope not in self._lists():
            raise FieldError("list", "List", f"there is no list {scope!r}")
        try:
            reason = SuppressionReason(sent["reason"] or SuppressionReason.MANUAL)
        except ValueError:
            raise FieldError("reason", "Kind", f"{sent['reason'][:40]!r} is not a kind of "
                             "suppression") from None
        if not sent["email"]:
            raise FieldError("email", "Address", "give the address to suppress")
        try:
            return suppressing.suppress(self.store, sent["email"], reason=reason, scope=scope,
                                        source=source, note=sent["note"])
        except InvalidAddressError as exc:
            raise FieldError("email", "Address", exc.reason) from exc

    # -- lift ----------------------------------------------------------------------------
    async def lift(self, request: Request, session: DeskSession, form: FormData | None) -> Response:
        email, scope = forms.text(form, "email", 320), forms.text(form, "scope", 100)
        search = Search(forms.text(form, "q", 320))
        try:
            await run_in_threadpool(
                lambda: suppressing.lift(self.store, email, scope or None,
                                         acknowledged=forms.ticked(form, "confirm"))
            )
        except UnacknowledgedError as exc:
            error = FieldError("confirm", "Confirm", str(exc))
            return await self._page(session, search, status=422, error=error,
                                    sent={"lift_email": email, "lift_scope": scope})
        except NotFoundError as exc:  # another administrator lifted it a moment ago
            error = FieldError("email", "Lift", f"{exc}; nothing changed")
            return await self._page(session, search, status=409, error=error)
        return self._back("lifted", email)

    # -- export --------------------------------------------------------------------------
    async def export(
        self, request: Request, session: DeskSession, form: FormData | None
    ) -> Response:
        chunks = suppressing.csv_chunks(suppressing.export_rows(self.store),
                                        for_spreadsheets=True)
        return StreamingResponse(
            (chunk.encode("utf-8") for chunk in chunks),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="suppressions.csv"'},
        )
