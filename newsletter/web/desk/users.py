"""The administrators' page of accounts (read-only today: ``newsletter users`` edits them)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...store import Store
from . import accounts
from .guard import Guard
from .pages import DeskPages
from .sessions import DeskSession


class UserEndpoints:
    def __init__(self, store: Store, guard: Guard, pages: DeskPages) -> None:
        self.store = store
        self.guard = guard
        self.pages = pages

    def routes(self) -> list[Route]:
        return [Route("/desk/users", self.guard("admin")(self.listing), methods=["GET"])]

    async def listing(
        self, request: Request, session: DeskSession, form: FormData | None
    ) -> Response:
        users = await run_in_threadpool(accounts.listing, self.store)
        return self.pages.render("users.html", session, users=users)
