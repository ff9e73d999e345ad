"""The desk's templates (``templates/desk/``, autoescaped, strict) and its stylesheet."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from ..pages import Site
from .sessions import DeskSession

TEMPLATES = Path(__file__).resolve().parents[3] / "templates" / "desk"
STYLESHEET = "desk.css"


def local_time(at: datetime | None, timezone: str) -> str:
    if at is None:
        return ""
    return f"{at.astimezone(ZoneInfo(timezone)):%Y-%m-%d %H:%M %Z}"


class DeskPages:
    def __init__(self, site: Callable[[], Site]) -> None:
        self._site = site
        self.env = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=True,
            undefined=StrictUndefined,
            auto_reload=False,
        )
        self.env.filters["local_time"] = local_time
        self.stylesheet = (TEMPLATES / STYLESHEET).read_text(encoding="utf-8")

    @property
    def site(self) -> Site:
        return self._site()

    def render(
        self,
        template: str,
        session: DeskSession | None,
        status: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        html = self.env.get_template(template).render(
            site=self.site,
            user=session.user if session else None,
            csrf=session.csrf_token if session else "",
            **context,
        )
        return HTMLResponse(html, status_code=status)

    def refusal(self, request: Request, status: int, message: str) -> Response:
        return self.render("error.html", None, status, status_code=status, message=message)

    def stylesheet_response(self) -> Response:
        return Response(
            self.stylesheet, media_type="text/css", headers={"Cache-Control": "no-cache"}
        )
