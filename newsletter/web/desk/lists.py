"""The lists page (read-only): each list's schedule and next run, its counts, and the
problems of its files, from ``schedule.listing`` (``newsletter lists check``'s checks).
The lists are files an administrator edits; the page says which and how."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...config import Settings
from ...errors import NewsletterError
from ...schedule.listing import ListsReader
from ...store import Store
from .guard import Guard
from .pages import DeskPages
from .sessions import DeskSession


class ListEndpoints:
    def __init__(self, settings: Settings, store: Store, guard: Guard, pages: DeskPages) -> None:
        self.reader = ListsReader(settings, store)  # remembers checks of unchanged lists
        self.guard = guard
        self.pages = pages

    def routes(self) -> list[Route]:
        return [Route("/desk/lists", self.guard()(self.listing), methods=["GET"])]

    async def listing(
        self, request: Request, session: DeskSession, form: FormData | None
    ) -> Response:
        try:
            overview = await run_in_threadpool(self.reader.overview)
        except NewsletterError as exc:  # the job store unreadable, say: the page says so
            return self.pages.render("lists.html", session, 503, overview=None, failure=str(exc))
        return self.pages.render("lists.html", session, overview=overview, failure="")
