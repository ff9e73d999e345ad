"""The messages to one reader (``templates/readers/``): a confirmation, a welcome, a notice.

They look like the publication's emails: the same stylesheet, masthead and footer, inlined
the same way. A kind of message is rendered and inlined once per list, with merge markers
where the reader's values go (``reader.link``, ``reader.name`` …); each message is then that
template with one reader's values put in, HTML-escaped, which costs microseconds where
rendering and inlining cost tens of milliseconds. The sign-up form answers hundreds of
requests a second, each queuing a message.

A publication overrides a template by putting its own copy in its ``templates/readers/``;
the project's copies are used otherwise.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader
from markupsafe import Markup

from ..config import Settings
from ..models import MailingList, Publication
from ..render.environment import build_environment, render_template
from ..render.greeting import greeting_name
from ..render.inline import Inliner
from ..render.merge import MergeTemplate, marker
from ..render.text import tidy_text

#: The project's own templates, under the publication's.
BUNDLED_TEMPLATES = Path(__file__).resolve().parents[2] / "templates"

#: What a reader's message may show of them (``reader.…`` in the templates).
READER_FIELDS = ("email", "name", "greeting_name", "link", "preferences_url", "unsubscribe_url")


class MailKind(StrEnum):
    CONFIRM = "confirm"  # a sign-up's confirmation link
    NOTICE = "notice"  # the reader is subscribed already: a reminder of their own page
    WELCOME = "welcome"  # after the confirmation, on lists with ``welcome = true``


@dataclass(frozen=True, slots=True)
class Composed:
    subject: str
    html: str
    text: str


@dataclass(frozen=True, slots=True)
class _Rendered:
    subject: str
    html: MergeTemplate
    text: MergeTemplate


class _ReaderMarkers:
    """``reader.x`` as the marker of field ``x``."""

    def __getattr__(self, name: str) -> Markup:
        if name not in READER_FIELDS:
            raise AttributeError(name)
        return Markup(marker(name))


class ReaderMail:
    """Composes the messages to readers; keep one per process (it keeps what it rendered)."""

    def __init__(self, settings: Settings, *, inliner: Inliner | None = None) -> None:
        self._env = build_environment(settings.templates_dir)
        self._env.loader = FileSystemLoader([settings.templates_dir, BUNDLED_TEMPLATES])
        self._inliner = inliner or Inliner()
        self._confirm_hours = settings.signup_confirm_hours
        self._rendered: dict[tuple[MailKind, str], _Rendered] = {}
        self._lock = threading.Lock()

    def compose(
        self, kind: MailKind, publication: Publication, mailing_list: MailingList,
        values: Mapping[str, str],
    ) -> Composed:
        """The message of ``kind`` with ``values`` for the ``READER_FIELDS`` (``name`` and
        ``greeting_name`` are filled from ``name`` when not given)."""
        rendered = self._template(kind, publication, mailing_list)
        filled = {field: "" for field in READER_FIELDS} | dict(values)
        filled.setdefault("greeting_name", "")
        filled["greeting_name"] = filled["greeting_name"] or greeting_name(filled["name"])
        return Composed(rendered.subject, rendered.html.render(filled),
                        rendered.text.render(filled))

    def _template(
        self, kind: MailKind, publication: Publication, mailing_list: MailingList
    ) -> _Rendered:
        key = (kind, mailing_list.id)
        found = self._rendered.get(key)
        if found is None:
            with self._lock:
                found = self._rendered.get(key) or self._render(kind, publication, mailing_list)
                self._rendered[key] = found
        return found

    def _render(
        self, kind: MailKind, publication: Publication, mailing_list: MailingList
    ) -> _Rendered:
        context: dict[str, Any] = {
            "publication": publication, "mailing_list": mailing_list,
            "reader": _ReaderMarkers(), "confirm_hours": self._confirm_hours,
        }
        subject = " ".join(self._render_file(f"readers/{kind}.subject.txt", context).split())
        context["subject"] = subject
        html = self._inliner.inline(self._render_file(f"readers/{kind}.html", context))
        text = tidy_text(self._render_file(f"readers/{kind}.txt", context))
        return _Rendered(subject, MergeTemplate.parse(html, escape=True), MergeTemplate.parse(text))

    def _render_file(self, name: str, context: Mapping[str, Any]) -> str:
        return render_template(self._env, name, context)
