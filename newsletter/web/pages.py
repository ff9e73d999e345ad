"""What every page of the web app shares: the publication it speaks for, its templates, headers.

Templates come from ``templates/web/`` of the publication, falling back to the ones shipped
with the project, so a publication can restyle its pages by copying and editing them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, TemplateNotFound
from starlette.datastructures import MutableHeaders
from starlette.responses import HTMLResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..config import Settings
from ..errors import ConfigError
from ..lists.config import PublicationConfig

BUNDLED_TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "web"
STYLESHEET = "web.css"

#: Sent with every answer unless the route chose its own value. The app's pages load nothing
#: but their own stylesheet and post forms only to themselves.
SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-store",
}

#: The desk's pages (``/desk/…``) load their own stylesheet, frame their own previews and
#: run no script at all. A route may still set its own policy (the preview does). Referrers
#: go to the desk itself only: under ``no-referrer`` a browser sends ``Origin: null`` with
#: its forms, and the desk's CSRF check needs to see its own origin there.
DESK_PREFIX = "/desk"
DESK_SECURITY_HEADERS: Mapping[str, str] = {
    **SECURITY_HEADERS,
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "Referrer-Policy": "same-origin",
}


@dataclass(frozen=True, slots=True)
class Site:
    """The publication as its public pages show it: no subscriber data, only names."""

    name: str
    base_url: str = ""
    language: str = "en"
    list_titles: Mapping[str, str] = field(default_factory=dict)
    list_descriptions: Mapping[str, str] = field(default_factory=dict)
    #: The lists that take public sign-ups (``signups`` in ``publication.toml``).
    signup_lists: frozenset[str] = frozenset()

    def list_title(self, list_id: str) -> str:
        if list_id == "*":
            return f"every list of {self.name}"
        return self.list_titles.get(list_id, list_id)

    def list_description(self, list_id: str) -> str:
        return self.list_descriptions.get(list_id, "")

    def accepts_signups(self, list_id: str) -> bool:
        return list_id in self.signup_lists


def site_from_config(config: PublicationConfig) -> Site:
    publication = config.publication
    return Site(
        name=publication.name,
        base_url=publication.base_url,
        language=publication.language,
        list_titles={list_id: ml.title for list_id, ml in config.lists.items()},
        list_descriptions={list_id: ml.description for list_id, ml in config.lists.items()},
        signup_lists=frozenset(i for i, ml in config.lists.items() if ml.accepts_signups),
    )


class Pages:
    """Renders the web templates (autoescaped, strict) into HTML responses, for the
    publication as ``site`` gives it at the time."""

    def __init__(self, settings: Settings, site: Callable[[], Site]) -> None:
        self._site = site
        self._loader = ChoiceLoader([
            FileSystemLoader(settings.templates_dir / "web"),
            FileSystemLoader(BUNDLED_TEMPLATES),
        ])
        self.env = Environment(
            loader=self._loader,
            autoescape=True,
            undefined=StrictUndefined,
            auto_reload=False,
        )
        self.stylesheet = self._source(STYLESHEET)

    @property
    def site(self) -> Site:
        return self._site()

    def render(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = self.env.get_template(name).render(site=self.site, **context)
        return HTMLResponse(html, status_code=status)

    def stylesheet_response(self) -> Response:
        return Response(
            self.stylesheet,
            media_type="text/css",
            headers={"Cache-Control": "public, max-age=3600"},
        )

    def _source(self, name: str) -> str:
        try:
            source, _, _ = self._loader.get_source(self.env, name)
        except TemplateNotFound as exc:
            raise ConfigError(f"web template {name} not found in templates/web/") from exc
        return source


class SecurityHeaders:
    """ASGI middleware adding ``SECURITY_HEADERS`` to every HTTP answer, errors included, and
    ``DESK_SECURITY_HEADERS`` to the desk's. A header a route set to "" is left out."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        path: str = scope.get("path", "")
        desk = path == DESK_PREFIX or path.startswith(DESK_PREFIX + "/")
        chosen = DESK_SECURITY_HEADERS if desk else SECURITY_HEADERS

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in chosen.items():
                    headers.setdefault(name, value)
                for name in [name for name, value in headers.items() if not value]:
                    del headers[name]  # a route set it empty: it is left out
            await send(message)

        await self.app(scope, receive, send_with_headers)
