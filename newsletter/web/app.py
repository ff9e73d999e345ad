"""The web app: one-click unsubscribe, the reader's own page, provider webhooks, the archive,
a health check, and the signed-in editor's desk under ``/desk/`` (``web/desk/``).

``create_app(settings, store)`` builds a Starlette app; ``newsletter serve`` runs it with
uvicorn. It is meant to sit behind a reverse proxy that terminates TLS.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..config import Settings
from ..lists.config import MadeFromPublication, PublicationConfig, PublicationFile
from ..lists.member_keys import MemberKeys
from ..readers.limits import Limits
from ..readers.outbox import OutboxSender
from ..readers.signup import Signups
from ..store import Store
from ..tokens import TokenSigner
from .api import api_routes, http_problem
from .api.routing import PREFIX as API_PREFIX
from .archive import ArchiveEndpoints
from .desk import desk_routes
from .pages import STYLESHEET, Pages, SecurityHeaders, Site, site_from_config
from .preferences import PreferencesEndpoints
from .signup import SignupEndpoints
from .unsubscribe import UnsubscribeEndpoints
from .webhooks import Fetcher, build_receivers
from .webhooks.endpoint import WebhookEndpoint

log = logging.getLogger(__name__)

#: The largest body any route but the webhooks reads (a one-click unsubscribe is 26 bytes);
#: larger ones get a 413 before they are read whole. The webhooks allow ``MAX_BODY``. A body
#: that arrives slowly is for the reverse proxy to cut off: the app has no timeout of its own.
FORM_MAX_BODY = 64 * 1024


def create_app(
    settings: Settings, store: Store, *, site: Site | None = None, fetch: Fetcher | None = None
) -> Starlette:
    """The app for one publication; ``site`` defaults to what its ``publication.toml`` says,
    read again whenever the file changes (a file that does not read stops the app here).

    ``fetch`` reads SNS signing certificates and confirmation URLs (tests pass their own).
    """
    publication = PublicationFile(settings)
    site_now: Callable[[], Site] = (
        MadeFromPublication(publication, site_from_config) if site is None else lambda: site
    )
    site_now()
    pages = Pages(settings, site_now)
    signer = TokenSigner(settings.secret_key.reveal())
    receivers = build_receivers(settings, store.now, fetch)
    core = CoreEndpoints(store, pages)
    readers = Readers(settings, store, publication)
    routes = [
        *core.routes(),
        *UnsubscribeEndpoints(store, signer, pages).routes(),
        *SignupEndpoints(lambda: readers.signups, pages).routes(),
        *ArchiveEndpoints(store, pages).routes(),
        *PreferencesEndpoints(store, signer, pages, publication.last_good,
                              readers.members, Limits.of(settings)).routes(),
        *WebhookEndpoint(settings, store, receivers).routes(),
        *desk_routes(settings, store, site_now),
        *api_routes(settings, store),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers={HTTPException: core.error_page},
        max_body_size=FORM_MAX_BODY,
        lifespan=readers.lifespan,
    )


class Readers:
    """What the readers' pages share in one process: the sign-up operations (made when first
    asked for, and again once the publication file changed), the index of the member files
    (the form, its confirmation and the reader's page look addresses up in it), and the
    sender of the messages they queue, a thread that runs while the app is served."""

    def __init__(self, settings: Settings, store: Store, publication: PublicationFile) -> None:
        self.settings = settings
        self.store = store
        self.publication = publication
        self.sender = OutboxSender(settings, store, config=publication.last_good)
        self.members = MemberKeys()
        self._signups = MadeFromPublication(publication, self._signups_of)

    @property
    def signups(self) -> Signups:
        return self._signups()

    def _signups_of(self, config: PublicationConfig) -> Signups:
        return Signups(self.settings, self.store, config, members=self.members,
                       wake=self.sender.wake)

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self.sender.start()
        try:
            yield
        finally:
            await run_in_threadpool(self.sender.stop)


class CoreEndpoints:
    """The front page, the health check, the stylesheet and the error pages."""

    def __init__(self, store: Store, pages: Pages) -> None:
        self.store = store
        self.pages = pages

    def routes(self) -> list[Route]:
        return [
            Route("/", self.home, methods=["GET"]),
            Route("/healthz", self.healthz, methods=["GET"]),
            Route(f"/assets/{STYLESHEET}", self.stylesheet, methods=["GET"]),
        ]

    async def home(self, request: Request) -> Response:
        return self.pages.render("home.html")

    async def healthz(self, request: Request) -> Response:
        try:
            await run_in_threadpool(self._ping)
        except SQLAlchemyError:
            log.exception("health check: the database did not answer")
            return JSONResponse({"status": "error", "database": "unavailable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def stylesheet(self, request: Request) -> Response:
        return self.pages.stylesheet_response()

    async def error_page(self, request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        headers = exc.headers if isinstance(exc, HTTPException) else None
        if request.url.path.startswith("/webhooks/"):
            return PlainTextResponse(str(status), status_code=status, headers=headers)
        if _under(request.url.path, API_PREFIX):
            # A path the API's mount does not match (a line break in it, say) is still the
            # API's: its clients read problem documents, never a page.
            return await http_problem(request, exc)
        response = self.pages.render("error.html", status=status, status_code=status)
        response.headers.update(headers or {})
        return response

    def _ping(self) -> None:
        with self.store.engine.connect() as conn:
            conn.execute(text("SELECT 1")).scalar_one()


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")
