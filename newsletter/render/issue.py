"""Rendering an issue once: HTML (inlined) and text with merge markers, plus a web edition.

Templates see the reader as ``recipient``, whose attributes are merge markers
(``{{ recipient.name }}`` → ``%%nl:name%%``); ``MergeTemplate`` puts each reader's values in
later, so an issue is rendered and inlined once whatever the size of the list. The web
edition (``web_html``) is rendered with an anonymous reader instead: nothing personal, no
unsubscribe link, no markers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from markupsafe import Markup

from ..config import Settings
from ..errors import ConfigError, RenderError
from ..models import Article, IssueKind, MailingList, Publication
from ..sources.sanitize import web_url
from .environment import build_environment, render_template, sanitize
from .greeting import NEUTRAL_GREETING
from .inline import Inliner
from .merge import MARKER_RE, MergeTemplate, marker
from .text import tidy_text

#: Gmail hides everything after roughly this much HTML behind "[Message clipped]".
GMAIL_CLIP_BYTES = 102 * 1024

_TEMPLATE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
_FIELD_KEY = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True, slots=True)
class IssueContent:
    """Everything an issue's templates are given."""

    publication: Publication
    mailing_list: MailingList
    issue_id: int
    kind: IssueKind
    subject: str
    preheader: str
    intro_html: str
    articles: Sequence[Article]
    web_url: str
    sent_at: datetime | None = None
    #: The issue's number in its list ("Issue 3" in the masthead); ``issue_id`` is the
    #: database's, shared by every list. None: the masthead shows the date alone.
    number: int | None = None


@dataclass(frozen=True, slots=True)
class RenderedIssue:
    """An issue rendered once. ``html`` and ``text`` hold merge markers; ``web_html`` none."""

    subject: str
    html: str
    text: str
    web_html: str
    html_bytes: int
    warnings: tuple[str, ...] = ()


def field_key(column: str) -> str:
    """The merge field of an extra CSV column: ``f_`` + the name lower-cased, ``_`` for the rest."""
    key = _FIELD_KEY.sub("_", column.lower()).strip("_")
    if not key:
        raise RenderError(f"recipient field {column!r} has no letters or digits")
    return f"f_{key}"


class FieldMarkers:
    """``recipient.fields.company`` / ``recipient.fields["Company"]`` → ``%%nl:f_company%%``."""

    def __getattr__(self, name: str) -> Markup:
        if name.startswith("_"):  # Jinja and markupsafe probe dunders; those are not fields
            raise AttributeError(name)
        return Markup(marker(field_key(name)))

    def __getitem__(self, name: str) -> Markup:
        return Markup(marker(field_key(name)))


class RecipientMarkers:
    """The reader as templates see them in the email: every value is a merge marker."""

    email = Markup(marker("email"))
    name = Markup(marker("name"))
    greeting_name = Markup(marker("greeting_name"))
    unsubscribe_url = Markup(marker("unsubscribe_url"))
    preferences_url = Markup(marker("preferences_url"))
    fields = FieldMarkers()


class _NoFields:
    def __getattr__(self, name: str) -> str:
        if name.startswith("_"):
            raise AttributeError(name)
        return ""

    def __getitem__(self, name: str) -> str:
        return ""


class AnonymousRecipient:
    """The reader of the web edition: no one in particular."""

    email = ""
    name = ""
    greeting_name = NEUTRAL_GREETING
    unsubscribe_url = ""
    preferences_url = ""
    fields = _NoFields()


class Renderer:
    """Renders issues with a publication's templates; keep one, it caches templates and CSS."""

    def __init__(self, settings: Settings, *, inliner: Inliner | None = None) -> None:
        self._env = build_environment(settings.templates_dir)
        self._inliner = inliner or Inliner()

    def render(self, content: IssueContent) -> RenderedIssue:
        name = template_name(content)
        context = self._context(content)
        html = self._inliner.inline(self._email(f"{name}.html", context))
        text = tidy_text(self._email(f"{name}.txt", context))
        web_html = self._web_html(name, context)
        html_bytes = len(html.encode("utf-8"))
        return RenderedIssue(
            subject=content.subject,
            html=html,
            text=text,
            web_html=web_html,
            html_bytes=html_bytes,
            warnings=issue_warnings(content, html_bytes),
        )

    def html_source(self, content: IssueContent) -> str:
        """The email's HTML before CSS inlining, for benchmarks and template debugging."""
        return self._email(f"{template_name(content)}.html", self._context(content))

    def _email(self, template: str, context: Mapping[str, Any]) -> str:
        email_context = {**context, "recipient": RecipientMarkers(), "web": False}
        return render_template(self._env, template, email_context)

    def _context(self, content: IssueContent) -> dict[str, Any]:
        return {
            "publication": content.publication,
            "mailing_list": content.mailing_list,
            "issue": content,
            "issue_date": content.sent_at or datetime.now(UTC),
            "timezone": list_timezone(content.mailing_list),
            "intro": sanitize(content.intro_html, content.publication.base_url),
            "articles": [defused(article) for article in content.articles],
        }

    def _web_html(self, name: str, context: Mapping[str, Any]) -> str:
        web_context = {**context, "recipient": AnonymousRecipient(), "web": True}
        inlined = self._inliner.inline(render_template(self._env, f"{name}.html", web_context))
        # Markers typed into the subject or the editor's introduction get neutral values too.
        leftover = MergeTemplate.parse(inlined, escape=True)
        return leftover.render({f: anonymous_value(f) for f in leftover.fields})


def template_name(content: IssueContent) -> str:
    """``article`` for single-article issues, else the list's template (``digest`` …)."""
    name = "article" if content.kind == IssueKind.ARTICLE else content.mailing_list.template
    if not _TEMPLATE_NAME.fullmatch(name):
        raise ConfigError(f"list {content.mailing_list.id!r}: invalid template name {name!r}")
    return name


def list_timezone(mailing_list: MailingList) -> ZoneInfo:
    try:
        return ZoneInfo(mailing_list.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(
            f"list {mailing_list.id!r}: unknown timezone {mailing_list.timezone!r}"
        ) from exc


def defused(article: Article) -> Article:
    """``article`` safe to put in a template: http(s) links only, no merge markers.

    Article text comes from outside; a ``%%nl:email%%`` in a feed must stay text rather than
    become each reader's address. A zero-width non-joiner splits the marker invisibly.
    """
    return replace(
        article,
        title=_break_markers(article.title),
        author=_break_markers(article.author),
        summary_html=_break_markers(article.summary_html),
        content_html=_break_markers(article.content_html),
        url=web_url(article.url),
        image_url=web_url(article.image_url),
    )


def _break_markers(text: str) -> str:
    return MARKER_RE.sub(lambda m: "%\u200c" + m.group(0)[1:], text)


def anonymous_value(field: str) -> str:
    return NEUTRAL_GREETING if field == "greeting_name" else ""


def issue_warnings(content: IssueContent, html_bytes: int) -> tuple[str, ...]:
    """What an editor should know before sending; none of it stops the render."""
    warnings = []
    if html_bytes > GMAIL_CLIP_BYTES:
        warnings.append(
            f"HTML is {html_bytes / 1024:.0f} KB; Gmail clips messages over about "
            f"{GMAIL_CLIP_BYTES // 1024} KB (fewer articles or shorter summaries would fit)"
        )
    if not content.articles:
        warnings.append("the issue has no articles")
    if not content.preheader.strip():
        warnings.append("no preheader: inboxes will preview the first text of the email")
    warnings.extend(
        f"article {a.title!r} has no http(s) link" for a in content.articles if not web_url(a.url)
    )
    return tuple(warnings)
