"""A folder of Markdown files with YAML front matter, one article per file.

    ---
    title: Spring issue          (required)
    date: 2024-05-01 09:30       (required; a date, or a datetime, naive means UTC)
    author: Ada
    url: https://example.org/spring   (else ``options["base_url"]`` + "/" + slug of the path)
    summary: One line for digests.
    tags: [news, spring]         (or "news, spring")
    image: /img/spring.jpg
    draft: true                  (skipped until removed)
    ---
    Body in CommonMark, with tables.

One broken file does not hide the others: it is reported in ``FetchResult.problems`` as
``path:line: reason`` and the rest are read.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from frontmatter import YAMLHandler
from markdown_it import MarkdownIt

from ..errors import SourceError
from ..models import Article
from .base import FetchResult, FetchState, Source, register
from .identity import content_hash
from .sanitize import clean_html, web_url

_YAML = YAMLHandler()
_MARKDOWN = MarkdownIt("commonmark").enable("table")


@dataclass(frozen=True, slots=True)
class MarkdownFile:
    """A file split into its front matter and body, remembering where the front matter starts."""

    relative: PurePosixPath
    metadata: Mapping[str, Any]
    front_matter: str
    first_line: int
    body: str

    def where(self, key: str | None = None) -> str:
        """``path:line`` of ``key`` in the front matter, or just the path if it is absent."""
        if key is not None:
            pattern = re.compile(rf"^{re.escape(key)}\s*:", re.MULTILINE)
            found = pattern.search(self.front_matter)
            if found is not None:
                line = self.first_line + self.front_matter.count("\n", 0, found.start())
                return f"{self.relative}:{line}"
        return str(self.relative)


@register
class FolderSource(Source):
    """Every ``*.md`` file under ``settings.home / spec.path``, sub-folders included."""

    type = "folder"

    def fetch(self, state: FetchState) -> FetchResult:
        root = self._root()
        articles: list[Article] = []
        problems: list[str] = []
        for path in _markdown_files(root):
            try:
                article = self.read_article(root, path)
            except SourceError as exc:
                problems.append(exc.reason)
                continue
            if article is not None:
                articles.append(article)
        return FetchResult(articles=articles, problems=problems)

    def read_article(self, root: Path, path: Path) -> Article | None:
        """The article in one file, ``None`` for a draft; ``SourceError`` if it is unusable."""
        document = self._load(root, path)
        if _is_draft(document.metadata.get("draft")):
            return None
        title = self._title(document)
        url = self._url(document)
        html = clean_html(_MARKDOWN.render(document.body), url)
        return Article(
            source_id=self.id,
            uid=url if document.metadata.get("url") else str(document.relative),
            title=title,
            url=url,
            published=self._published(document),
            content_html=html,
            summary_html=clean_html(_MARKDOWN.render(self._string(document, "summary")), url),
            author=self._string(document, "author"),
            tags=self._tags(document),
            image_url=web_url(self._string(document, "image"), url),
            content_hash=content_hash(title, document.body),
        )

    def _root(self) -> Path:
        if not self.spec.path.strip():
            raise SourceError(self.id, "no path is set for this folder source")
        root = self.settings.home / self.spec.path
        if not root.is_dir():
            raise SourceError(self.id, f"{root} is not a folder")
        return root

    def _load(self, root: Path, path: Path) -> MarkdownFile:
        relative = PurePosixPath(path.relative_to(root).as_posix())
        try:
            text = path.read_text(encoding="utf-8").removeprefix("\ufeff")
        except UnicodeDecodeError as exc:
            raise self._problem(f"{relative}: not UTF-8 text ({exc.reason})") from exc
        except OSError as exc:
            raise self._problem(f"{relative}: cannot be read ({exc.strerror})") from exc
        return self._split(relative, text)

    def _split(self, relative: PurePosixPath, text: str) -> MarkdownFile:
        boundary = _YAML.FM_BOUNDARY
        assert boundary is not None  # the YAML handler always defines its delimiter
        opening = boundary.match(text)
        if opening is None:
            raise self._problem(f"{relative}:1: no front matter (the file must start with ---)")
        closing = boundary.search(text, opening.end())
        if closing is None:
            raise self._problem(f"{relative}:1: front matter is never closed with ---")
        front_matter = text[opening.end() : closing.start()]
        first_line = text.count("\n", 0, opening.end()) + 1
        metadata = self._parse_yaml(relative, front_matter, first_line)
        return MarkdownFile(relative, metadata, front_matter, first_line, text[closing.end() :])

    def _parse_yaml(self, relative: PurePosixPath, front_matter: str, first_line: int) -> Any:
        try:
            metadata = _YAML.load(front_matter)
        except yaml.YAMLError as exc:
            line = first_line + _yaml_error_line(exc)
            reason = _yaml_error_reason(exc)
            raise self._problem(
                f"{relative}:{line}: front matter is not valid YAML: {reason}"
            ) from exc
        if not isinstance(metadata, dict):
            raise self._problem(f"{relative}:{first_line}: front matter must be key: value lines")
        return metadata

    def _title(self, document: MarkdownFile) -> str:
        title = " ".join(self._string(document, "title").split())
        if not title:
            raise self._problem(f"{document.where('title')}: front matter needs a title")
        return title

    def _url(self, document: MarkdownFile) -> str:
        declared = self._string(document, "url")
        base = str(self.spec.options.get("base_url", "")).rstrip("/")
        if declared:
            url = web_url(declared, base + "/" if base else "")
            if not url:
                raise self._problem(f"{document.where('url')}: url {declared!r} is not http(s)")
            return url
        if not base:
            reason = "no url in the front matter and no base_url for the source"
            raise self._problem(f"{document.where()}: {reason}")
        return f"{base}/{_slug(document.relative)}"

    def _published(self, document: MarkdownFile) -> datetime:
        value = document.metadata.get("date")
        if value is None or value == "":
            raise self._problem(f"{document.where('date')}: front matter needs a date")
        moment = _as_datetime(value)
        if moment is None:
            raise self._problem(f"{document.where('date')}: date {value!r} is not a date")
        return moment

    def _tags(self, document: MarkdownFile) -> tuple[str, ...]:
        value = document.metadata.get("tags")
        if value is None:
            return ()
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(t, str | int) for t in items):
            raise self._problem(f"{document.where('tags')}: tags must be a list or a, b, c")
        return tuple(dict.fromkeys(str(t).strip() for t in items if str(t).strip()))

    def _string(self, document: MarkdownFile, key: str) -> str:
        value = document.metadata.get(key)
        if value is None:
            return ""
        if isinstance(value, dict | list):
            raise self._problem(f"{document.where(key)}: {key} must be text")
        return str(value).strip()

    def _problem(self, reason: str) -> SourceError:
        return SourceError(self.id, reason)


def _markdown_files(root: Path) -> Iterator[Path]:
    """``*.md`` files in a stable order, leaving out hidden files and folders (``.git``…)."""
    for path in sorted(root.rglob("*.md")):
        relative = path.relative_to(root)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            yield path


def _yaml_error_line(exc: yaml.YAMLError) -> int:
    """0-based line in the YAML: where the broken construct began, else where it was noticed."""
    for name in ("context_mark", "problem_mark"):
        mark = getattr(exc, name, None)
        if mark is not None:
            return int(mark.line)
    return 0


def _yaml_error_reason(exc: yaml.YAMLError) -> str:
    parts = [getattr(exc, "context", None), getattr(exc, "problem", None)]
    return ", ".join(str(p) for p in parts if p) or str(exc)


def _is_draft(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"true", "yes", "on", "1"}
    return value is True


def _as_datetime(value: object) -> datetime | None:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(), tzinfo=UTC)
    return None


def _slug(relative: PurePosixPath) -> str:
    """``2024/Café Notes.md`` → ``2024/cafe-notes``: the path as an address segment by segment."""
    return "/".join(_slug_part(part) for part in (*relative.parent.parts, relative.stem))


def _slug_part(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-") or "article"
