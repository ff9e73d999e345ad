"""The editor's desk: signed-in pages under ``/desk/``, served by ``newsletter serve``.

``desk_routes`` builds them for ``create_app``. Every page but sign-in and the stylesheet
goes through ``Guard``: the session, the role, and for a POST the CSRF token. See
docs/desk.md for accounts, sessions, CSRF, throttling and roles.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ...config import Settings
from ...publisher import Publisher
from ...store import Store
from ..pages import Site
from .articles import ArticleEndpoints
from .editing import EditingEndpoints
from .guard import HOME, Guard
from .issues import IssueEndpoints
from .lists import ListEndpoints
from .pages import STYLESHEET, DeskPages
from .report import ReportEndpoints
from .sending import SendingEndpoints
from .sessions import CookiePolicy, Sessions
from .signin import SigninEndpoints
from .status import StatusEndpoints
from .suppressions import SuppressionEndpoints
from .users import UserEndpoints

__all__ = ["desk_routes"]


def _origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme.lower()}://{rest.split('/', 1)[0].lower()}" if rest else ""


def desk_routes(settings: Settings, store: Store, site: Callable[[], Site]) -> list[BaseRoute]:
    # The cookies' Secure flag and the origin forms must come from: as the server started.
    public_url = settings.public_url or site().base_url
    pages = DeskPages(site)
    sessions = Sessions(settings, store)
    guard = Guard(
        sessions,
        CookiePolicy.for_url(public_url),
        # Signs only the sign-in form's token; a process-lifetime key when none is set.
        settings.secret_key.reveal() or secrets.token_urlsafe(32),
        _origin(public_url),
        pages.refusal,
    )
    publisher = Publisher(settings, store)

    async def home(request: Request) -> Response:
        return RedirectResponse(HOME, status_code=303)

    async def stylesheet(request: Request) -> Response:
        return pages.stylesheet_response()

    return [
        Route("/desk", home, methods=["GET"]),
        Route("/desk/", home, methods=["GET"]),
        Route(f"/desk/assets/{STYLESHEET}", stylesheet, methods=["GET"]),
        *SigninEndpoints(store, sessions, guard, pages).routes(),
        *IssueEndpoints(publisher, guard, pages).routes(),
        *EditingEndpoints(publisher, guard, pages).routes(),
        *SendingEndpoints(publisher, guard, pages).routes(),
        *UserEndpoints(store, guard, pages).routes(),
        *ReportEndpoints(store, guard, pages).routes(),
        *ArticleEndpoints(publisher, guard, pages).routes(),
        *SuppressionEndpoints(publisher, guard, pages).routes(),
        *ListEndpoints(settings, store, guard, pages).routes(),
        *StatusEndpoints(settings, store, guard, pages).routes(),
    ]
