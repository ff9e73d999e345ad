"""The Jinja2 environment over a publication's ``templates/`` folder, and its filters.

Templates are strict: an undefined name or attribute is an error, not an empty string, so a
typo fails the render (``RenderError`` naming ``file:line``) instead of reaching subscribers.
HTML templates are autoescaped; ``.txt`` templates are not.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from datetime import UTC, date, datetime, tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
    pass_context,
    select_autoescape,
)
from jinja2.runtime import Context
from markupsafe import Markup

from ..errors import RenderError
from ..models import Article
from ..sources.sanitize import clean_html, html_to_summary
from .text import html_to_text

#: Width of the content column in ``base.html`` (600 px container minus 2 x 40 px padding).
CONTENT_WIDTH = 520

#: A digest shows an article's own summary when its text is at most this long, else an excerpt.
SUMMARY_CHARS = 400

DATE_STYLES: Mapping[str, str] = {
    "long": "%A, {day} %B %Y",
    "medium": "{day} %b %Y",
    "short": "%Y-%m-%d",
    "datetime": "{day} %b %Y, %H:%M %Z",
}

#: What a template may raise while running: Jinja's own errors and those of filters it calls.
_RUNTIME_ERRORS = (TemplateError, TypeError, ValueError, ArithmeticError, LookupError)


def build_environment(templates_dir: Path) -> Environment:
    """A strict environment loading from ``templates_dir``; missing folder → ``RenderError``."""
    if not templates_dir.is_dir():
        raise RenderError(f"{templates_dir}: templates folder not found")
    env = Environment(
        loader=FileSystemLoader(templates_dir),
        autoescape=select_autoescape(enabled_extensions=("html", "htm", "xml")),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        date=format_date,
        hostname=hostname,
        address_lines=address_lines,
        sanitize=sanitize,
        summary=summary,
        html_to_text=html_to_text,
    )
    return env


def render_template(env: Environment, name: str, context: Mapping[str, Any]) -> str:
    """``name`` rendered with ``context``; any template failure becomes a ``RenderError``."""
    try:
        template = env.get_template(name)
        return template.render(context)
    except TemplateNotFound as exc:
        raise RenderError(f"template {exc.name!r} not found in {_folder(env)}") from exc
    except TemplateSyntaxError as exc:
        where = f"{exc.filename or exc.name}:{exc.lineno}"
        raise RenderError(f"{where}: syntax error: {exc.message}") from exc
    except _RUNTIME_ERRORS as exc:
        raise RenderError(f"{_failing_line(exc, env, name)}: {exc}") from exc


def _search_path(env: Environment) -> list[str]:
    loader = env.loader
    return [str(p) for p in loader.searchpath] if isinstance(loader, FileSystemLoader) else []


def _folder(env: Environment) -> str:
    return ", ".join(_search_path(env)) or "the templates folder"


def _failing_line(exc: BaseException, env: Environment, name: str) -> str:
    """``file:line`` of the innermost template frame; Jinja rewrites tracebacks to point there."""
    roots = tuple(_search_path(env))
    template_frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if roots and frame.filename.startswith(roots)
    ]
    if not template_frames:
        return name
    frame = template_frames[-1]
    return f"{frame.filename}:{frame.lineno}"


@pass_context
def format_date(context: Context, value: date | datetime, style: str = "medium") -> str:
    """``value`` in the list's time zone (``timezone`` in the context); naive means UTC.

    ``style`` is one of ``DATE_STYLES`` or a ``strftime`` pattern; ``{day}`` is the day of the
    month without padding, which ``strftime`` cannot write portably.
    """
    if isinstance(value, datetime):
        zone: tzinfo = context.get("timezone") or UTC
        value = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(zone)
    pattern = DATE_STYLES.get(style, style)
    return value.strftime(pattern.replace("{day}", str(value.day)))


def hostname(url: str) -> str:
    """The host of ``url`` without ``www.``, for link labels."""
    host = urlsplit(url).hostname or url
    return host.removeprefix("www.")


def address_lines(address: str) -> list[str]:
    """A postal address split into lines, on newlines or, for one-line addresses, commas."""
    separator = "\n" if "\n" in address else ","
    return [part.strip() for part in address.split(separator) if part.strip()]


def sanitize(fragment: str, base_url: str = "") -> Markup:
    """``fragment`` through the sources' allow-list, images fitted to the content column.

    Articles are cleaned when collected; cleaning again here costs little and keeps anything
    that reached the store by another route (an edited row, an old version) from the email.
    """
    return Markup(clean_html(fragment, base_url, max_image_width=CONTENT_WIDTH))


def summary(article: Article) -> Markup:
    """What a digest shows of ``article``: its own short summary, else an excerpt of the body."""
    own = html_to_summary(article.summary_html, SUMMARY_CHARS + 1)
    if article.summary_html and len(own) <= SUMMARY_CHARS:
        return sanitize(article.summary_html, article.url)
    excerpt = html_to_summary(article.summary_html or article.content_html, 280)
    return Markup("<p>{}</p>").format(excerpt) if excerpt else Markup("")
