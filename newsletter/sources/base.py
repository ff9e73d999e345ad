"""What a source is: something that, asked what is new, answers with articles.

Each source class declares the ``type`` it handles (``feed``, ``folder``); ``make_source``
picks the class for a ``SourceSpec`` read from the publication's TOML file.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..config import Settings
from ..errors import ConfigError
from ..models import Article, FetchState
from .sanitize import shows_something


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """A source as declared in ``[sources.<id>]`` of the publication file."""

    id: str
    type: str
    url: str = ""
    path: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)
    #: Overrides ``NEWSLETTER_LOOKBACK_DAYS`` for this source's first fetch.
    lookback_days: int | None = None
    #: A feed may be fetched from loopback and private-network addresses (never link-local
    #: or cloud metadata ones): ``allow_private_network = true`` in its table.
    allow_private_network: bool = False




@dataclass(frozen=True, slots=True)
class FetchResult:
    """What one fetch found.

    ``problems`` lists items skipped or read only in part (a Markdown file with bad front
    matter, a feed entry with an unreadable date, …) as ``where: reason`` lines, so one bad
    item is reported without hiding the good ones. ``not_modified`` means the server
    answered 304: nothing changed since ``FetchState`` and ``articles`` is empty.
    """

    articles: Sequence[Article]
    etag: str = ""
    last_modified: str = ""
    not_modified: bool = False
    problems: Sequence[str] = ()


def is_empty(article: Article) -> bool:
    """Nothing to show a reader: no title, no text or image in it, and no link."""
    return not (
        article.title.strip()
        or article.url.strip()
        or shows_something(article.content_html)
        or shows_something(article.summary_html)
    )


class Source(ABC):
    """One place articles come from."""

    type: ClassVar[str]

    def __init__(self, spec: SourceSpec, settings: Settings) -> None:
        self.spec = spec
        self.settings = settings

    @property
    def id(self) -> str:
        return self.spec.id

    @abstractmethod
    def fetch(self, state: FetchState) -> FetchResult:
        """Everything the source currently offers; raises ``SourceError`` when it cannot."""


#: The module that defines each type of source; importing it registers the type's class.
SOURCE_MODULES = {"feed": "feed", "folder": "folder"}
_REGISTRY: dict[str, type[Source]] = {}


def register(cls: type[Source]) -> type[Source]:
    _REGISTRY[cls.type] = cls
    return cls


def make_source(spec: SourceSpec, settings: Settings) -> Source:
    module = SOURCE_MODULES.get(spec.type)
    if module is None:
        known = ", ".join(sorted(SOURCE_MODULES))
        raise ConfigError(f"source {spec.id!r}: unknown type {spec.type!r} (known: {known})")
    # Only the type asked for: a publication of feeds loads no Markdown or YAML reader.
    importlib.import_module(f"{__package__}.{module}")
    return _REGISTRY[spec.type](spec, settings)
