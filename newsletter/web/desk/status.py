"""The status page: the scheduler lock, the next runs, what is queued, sending or paused
(and the issues the provider's trouble paused), each source's last collection and the
database, from ``schedule.status`` (what ``newsletter status`` prints, and more)."""

from __future__ import annotations

import time

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...config import Settings
from ...schedule.status import gather
from ...store import Store
from .guard import Guard
from .pages import DeskPages
from .sessions import DeskSession


class StatusEndpoints:
    def __init__(self, settings: Settings, store: Store, guard: Guard, pages: DeskPages) -> None:
        self.settings = settings
        self.store = store
        self.guard = guard
        self.pages = pages

    def routes(self) -> list[Route]:
        return [Route("/desk/status", self.guard()(self.page), methods=["GET"])]

    async def page(self, request: Request, session: DeskSession, form: FormData | None) -> Response:
        report = await run_in_threadpool(gather, self.settings, self.store)
        return self.pages.render(
            "status.html", session, report=report, now=time.time(),
            resume_minutes=self.settings.outage_resume_minutes,
        )
