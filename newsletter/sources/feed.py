"""Feeds over HTTP: RSS 0.9x/1.0/2.0 and Atom through feedparser, JSON Feed 1.0/1.1 by hand.

The download is ours, not feedparser's: a ``requests`` session (one per host) that ignores
proxy variables from the environment, a timeout, conditional GET, and a byte limit checked
while streaming so an oversized or endless body is cut off rather than held in memory.
Every connection, redirects included, goes only where ``netguard`` allows the source to go.
feedparser only ever sees the bytes, wrapped in a stream so it cannot open URLs or files.

An entry with no title, no content and no link has nothing to show and is skipped, with a
problem line naming it; an entry without a title takes one from its first words.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from ..config import Settings
from ..errors import SourceError
from ..models import Article
from .base import FetchResult, FetchState, Source, is_empty, register
from .identity import article_uid, content_hash
from .netguard import AddressPolicy, GuardedAdapter, RefusedAddress
from .sanitize import clean_html, html_to_summary, text_to_html, web_url

USER_AGENT = "newsletter-feed-reader/0.1"
ACCEPT = (
    "application/atom+xml, application/rss+xml, application/feed+json, "
    "application/rdf+xml;q=0.9, application/json;q=0.9, application/xml;q=0.8, "
    "text/xml;q=0.8, */*;q=0.5"
)
JSON_FEED_VERSION_PREFIX = "https://jsonfeed.org/version/"
CHUNK_BYTES = 64 * 1024
MAX_REDIRECTS = 5
#: ``feed_timeout`` bounds each wait for the server; a body trickled a byte at a time would
#: never trip it, so the whole download also has a budget of this many timeouts.
TOTAL_TIME_FACTOR = 6
TITLE_FROM_TEXT_CHARS = 80


@dataclass(frozen=True, slots=True)
class Download:
    """One HTTP answer, read in full (within the limit)."""

    url: str
    body: bytes
    content_type: str
    etag: str
    last_modified: str
    not_modified: bool = False


@register
class FeedSource(Source):
    """An RSS, Atom or JSON Feed document at ``spec.url``."""

    type = "feed"
    #: A session shared with the other feeds of the same host (``collect`` sets it) keeps
    #: one connection alive between them; without one, each fetch opens and closes its own.
    session: requests.Session | None = None

    def fetch(self, state: FetchState) -> FetchResult:
        download = self._download(self._checked_url(), state)
        if download.not_modified:
            return FetchResult(
                articles=[],
                etag=download.etag or state.etag,
                last_modified=download.last_modified or state.last_modified,
                not_modified=True,
            )
        articles, problems = parse_feed(self.id, download)
        return FetchResult(
            articles=articles,
            etag=download.etag,
            last_modified=download.last_modified,
            problems=problems,
        )

    def _checked_url(self) -> str:
        url = self.spec.url.strip()
        if not url:
            raise SourceError(self.id, "no url is set for this feed")
        parts = urlsplit(url)
        if parts.scheme.lower() not in {"http", "https"} or not parts.netloc:
            raise SourceError(self.id, f"only http:// and https:// feeds are fetched, not {url!r}")
        return url

    def _download(self, url: str, state: FetchState) -> Download:
        if self.session is not None:
            return self._get(self.session, url, state)
        with feed_session(self.settings, allow_private=self.spec.allow_private_network) as session:
            return self._get(session, url, state)

    def _get(self, session: requests.Session, url: str, state: FetchState) -> Download:
        try:
            with session.get(
                url,
                headers=_request_headers(state),
                timeout=self.settings.feed_timeout,
                stream=True,
            ) as response:
                return self._read(url, response)
        except requests.RequestException as exc:
            raise SourceError(self.id, self._failure(url, exc)) from exc
        except RefusedAddress as exc:
            raise SourceError(self.id, self._refusal(url, exc)) from exc

    def _refusal(self, url: str, refused: RefusedAddress) -> str:
        hop = refused.url or url
        via = f" (redirected from {url})" if hop != url else ""
        remedy = (
            "feeds are never fetched from there"
            if refused.verdict.never
            else f"fetched only with allow_private_network = true in [sources.{self.id}] "
            "of publication.toml"
        )
        return f"refused {hop}{via}: {refused}; {remedy}"

    def _failure(self, url: str, exc: requests.RequestException) -> str:
        if isinstance(exc, requests.Timeout):
            return f"{url} did not answer within {self.settings.feed_timeout:g}s"
        if isinstance(exc, requests.TooManyRedirects):
            return f"{url} redirects more than {MAX_REDIRECTS} times"
        if isinstance(exc, requests.ConnectionError):
            return f"could not read {url}: {_reason(exc)}"
        return f"request to {url} failed: {_reason(exc)}"

    def _read(self, url: str, response: requests.Response) -> Download:
        etag = response.headers.get("ETag", "")
        last_modified = response.headers.get("Last-Modified", "")
        if response.status_code == 304:
            _ = response.content  # read to the end, so the connection goes back to the pool
            return Download(url, b"", "", etag, last_modified, not_modified=True)
        if not 200 <= response.status_code < 300:
            status = f"HTTP {response.status_code} {response.reason or ''}".strip()
            raise SourceError(self.id, f"{url} answered {status}")
        self._refuse_declared_size(url, response)
        body = self._read_body(url, response)
        content_type = response.headers.get("Content-Type", "")
        return Download(response.url or url, body, content_type, etag, last_modified)

    def _refuse_declared_size(self, url: str, response: requests.Response) -> None:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.settings.feed_max_bytes:
            raise SourceError(self.id, self._too_big(url, f"declares {int(declared)} bytes"))

    def _read_body(self, url: str, response: requests.Response) -> bytes:
        limit = self.settings.feed_max_bytes
        deadline = time.monotonic() + self.settings.feed_timeout * TOTAL_TIME_FACTOR
        body = bytearray()
        for chunk in response.iter_content(CHUNK_BYTES):
            body += chunk
            if len(body) > limit:
                raise SourceError(self.id, self._too_big(url, f"sent more than {limit} bytes"))
            if time.monotonic() > deadline:
                seconds = self.settings.feed_timeout * TOTAL_TIME_FACTOR
                raise SourceError(self.id, f"{url} took longer than {seconds:g}s to download")
        return bytes(body)

    def _too_big(self, url: str, what: str) -> str:
        limit = self.settings.feed_max_bytes
        return f"{url} {what}, over the limit of {limit} bytes (NEWSLETTER_FEED_MAX_BYTES)"


def feed_session(settings: Settings, *, allow_private: bool) -> requests.Session:
    """A session whose every connection, redirects included, is checked by ``netguard``."""
    session = requests.Session()
    session.trust_env = False  # a proxy comes from settings, never from stray env vars
    session.max_redirects = MAX_REDIRECTS
    adapter = GuardedAdapter(AddressPolicy(allow_private))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    if settings.http_proxy:
        session.proxies = {"http": settings.http_proxy, "https": settings.http_proxy}
    return session


def parse_feed(source_id: str, download: Download) -> tuple[list[Article], list[str]]:
    """Articles in a downloaded document, and ``where: reason`` lines for entries skipped."""
    if _is_json(download):
        return parse_json_feed(source_id, download)
    return parse_xml_feed(source_id, download)


def _request_headers(state: FetchState) -> dict[str, str]:
    headers = {"User-Agent": USER_AGENT, "Accept": ACCEPT}
    if state.etag:
        headers["If-None-Match"] = state.etag
    if state.last_modified:
        headers["If-Modified-Since"] = state.last_modified
    return headers


def _reason(exc: requests.RequestException) -> str:
    """The innermost cause, which names what went wrong (refused, reset, unknown host…).

    requests wraps urllib3's retry error, which wraps a connection error, which wraps the
    socket's own; the outer messages repeat the URL and pool details around it.
    """
    cause: BaseException = exc
    seen = {id(exc)}
    while (inner := _inner(cause)) is not None and id(inner) not in seen:
        seen.add(id(inner))
        cause = inner
    return str(cause) or type(cause).__name__


def _inner(exc: BaseException) -> BaseException | None:
    first_arg = exc.args[0] if exc.args else None
    for candidate in (getattr(exc, "reason", None), first_arg, exc.__cause__, exc.__context__):
        if isinstance(candidate, BaseException):
            return candidate
    return None


def _is_json(download: Download) -> bool:
    media_type = download.content_type.split(";", 1)[0].strip().lower()
    first = download.body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    return media_type.endswith(("/json", "+json")) or first == b"{"


# --- RSS and Atom ---------------------------------------------------------------------------


def parse_xml_feed(source_id: str, download: Download) -> tuple[list[Article], list[str]]:
    import feedparser  # here: a pass where every feed answers 304 parses nothing

    parsed = feedparser.parse(
        io.BytesIO(download.body),
        response_headers=_feedparser_headers(download),
        # Relative URLs in HTML are resolved by clean_html, against the entry's own address.
        resolve_relative_uris=False,
        sanitize_html=False,  # nh3 is the one sanitiser, with the email rules of sanitize.py
    )
    entries = parsed.get("entries", [])
    if parsed.get("bozo") and not entries:
        reason = parsed.get("bozo_exception") or "unreadable"
        raise SourceError(source_id, f"{download.url} is not a readable feed: {reason}")
    if not parsed.get("version") and not entries:
        raise SourceError(source_id, f"{download.url} is not an RSS, Atom or JSON feed")
    problems = []
    if parsed.get("bozo"):
        reason = parsed.get("bozo_exception")
        problems.append(f"{download.url}: feed is not well-formed ({reason}); entries read anyway")
    articles = []
    for number, entry in enumerate(entries, start=1):
        article = _entry_article(source_id, entry, download.url)
        where = _where(f"{download.url} entry {number}", str(entry.get("id", "")))
        if _worth_keeping(article, where, problems):
            articles.append(article)
    return articles, problems


def _where(entry: str, declared_id: str) -> str:
    """An entry named by its place in the document, and its id where it has one."""
    return f"{entry} (id {declared_id.strip()})" if declared_id.strip() else entry


def _worth_keeping(article: Article, where: str, problems: list[str]) -> bool:
    """``False`` for an entry with nothing to show; a note for one without any title."""
    if is_empty(article):
        problems.append(f"{where}: no title, no content and no link; skipped")
        return False
    if not article.title:
        problems.append(f"{where}: no title and no text to make one from; give the issue a subject")
    return True


def _title_from_text(*fragments: str) -> str:
    """For an entry without a title (a microblog post): the first words of its text."""
    for fragment in fragments:
        title = html_to_summary(fragment, TITLE_FROM_TEXT_CHARS)
        if title:
            return title
    return ""


def _feedparser_headers(download: Download) -> dict[str, str]:
    # No content-location: then a detail's "base" is set only by the feed's own xml:base.
    return {"content-type": download.content_type} if download.content_type else {}


def _entry_article(source_id: str, entry: Mapping[str, Any], feed_url: str) -> Article:
    link = web_url(str(entry.get("link", "")), feed_url)
    content, content_detail = _entry_content(entry)
    summary_detail = entry.get("summary_detail") or {}
    summary = _detail_html(entry.get("summary", ""), summary_detail)
    body, body_detail = (content, content_detail) if content else (summary, summary_detail)
    title = _entry_title(entry)
    return Article(
        source_id=source_id,
        uid=article_uid(str(entry.get("id", "")), link, title, body),
        title=title or _title_from_text(body, summary),
        url=link,
        published=_entry_date(entry),
        content_html=clean_html(body, _html_base(body_detail, link, feed_url)),
        summary_html=clean_html(summary, _html_base(summary_detail, link, feed_url)),
        author=_entry_author(entry),
        tags=_entry_tags(entry),
        image_url=_entry_image(entry, link or feed_url),
        content_hash=content_hash(title, body),
    )


def _entry_title(entry: Mapping[str, Any]) -> str:
    title = str(entry.get("title", ""))
    detail = entry.get("title_detail") or {}
    if "html" in str(detail.get("type", "")):
        return html_to_summary(title, len(title) + 1)
    return " ".join(title.split())


def _entry_content(entry: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    """The fullest body: an HTML ``content`` if there is one, else any ``content``."""
    contents = list(entry.get("content", []))
    contents.sort(key=lambda item: "html" not in str(item.get("type", "")))
    for item in contents:
        value = _detail_html(item.get("value", ""), item)
        if value.strip():
            return value, item
    return "", {}


def _html_base(detail: Mapping[str, Any], link: str, feed_url: str) -> str:
    """The feed's xml:base where it declares one, else the entry's page, else the feed."""
    declared = str(detail.get("base", ""))
    if declared:
        return urljoin(feed_url, declared)
    return link or feed_url


def _detail_html(value: object, detail: Mapping[str, Any] | None) -> str:
    text = str(value or "")
    if detail is not None and str(detail.get("type", "")) == "text/plain":
        return text_to_html(text)
    return text


def _entry_date(entry: Mapping[str, Any]) -> datetime | None:
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    if parsed is None:
        return None
    year, month, day, hour, minute, second = parsed[:6]
    # feedparser has already converted every date to UTC.
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def _entry_author(entry: Mapping[str, Any]) -> str:
    detail = entry.get("author_detail") or {}
    return str(detail.get("name") or entry.get("author") or "").strip()


def _entry_tags(entry: Mapping[str, Any]) -> tuple[str, ...]:
    return _unique(str(tag.get("term") or tag.get("label") or "") for tag in entry.get("tags", ()))


def _entry_image(entry: Mapping[str, Any], base: str) -> str:
    for candidate in _image_candidates(entry):
        url = web_url(candidate, base)
        if url:
            return url
    return ""


def _image_candidates(entry: Mapping[str, Any]) -> Iterator[str]:
    for thumbnail in entry.get("media_thumbnail", []):
        yield str(thumbnail.get("url", ""))
    for media in entry.get("media_content", []):
        if media.get("medium") == "image" or str(media.get("type", "")).startswith("image/"):
            yield str(media.get("url", ""))
    for enclosure in entry.get("enclosures", []):
        if str(enclosure.get("type", "")).startswith("image/"):
            yield str(enclosure.get("href", ""))
    image = entry.get("image")
    if isinstance(image, Mapping):
        yield str(image.get("href") or image.get("url") or "")


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v.strip() for v in values if v.strip()))


# --- JSON Feed ------------------------------------------------------------------------------


def parse_json_feed(source_id: str, download: Download) -> tuple[list[Article], list[str]]:
    """A JSON Feed 1.0 or 1.1 document (https://jsonfeed.org/version/1.1)."""
    document = _json_document(source_id, download)
    items = document.get("items")
    if not isinstance(items, list):
        raise SourceError(source_id, f"{download.url}: JSON Feed has no 'items' list")
    feed_author = _json_author(document)
    articles: list[Article] = []
    problems: list[str] = []
    for index, item in enumerate(items):
        where = f"{download.url} items[{index}]"
        if not isinstance(item, dict):
            problems.append(f"{where}: not an object, skipped")
            continue
        article = _json_article(source_id, item, download.url, feed_author, problems, where)
        if _worth_keeping(article, _where(where, _text(item.get("id"))), problems):
            articles.append(article)
    return articles, problems


def _json_document(source_id: str, download: Download) -> dict[str, Any]:
    try:
        document = json.loads(download.body)
    except ValueError as exc:
        raise SourceError(source_id, f"{download.url} is not valid JSON: {exc}") from exc
    version = document.get("version") if isinstance(document, dict) else None
    if not isinstance(version, str) or not version.startswith(JSON_FEED_VERSION_PREFIX):
        raise SourceError(
            source_id, f"{download.url} is JSON but not a JSON Feed (no 'version' of jsonfeed.org)"
        )
    return document


def _json_article(
    source_id: str,
    item: Mapping[str, Any],
    feed_url: str,
    feed_author: str,
    problems: list[str],
    where: str,
) -> Article:
    link = web_url(_text(item.get("url")) or _text(item.get("external_url")), feed_url)
    base = link or feed_url
    body = _text(item.get("content_html")) or text_to_html(_text(item.get("content_text")))
    summary = text_to_html(_text(item.get("summary")))
    title = " ".join(_text(item.get("title")).split())
    return Article(
        source_id=source_id,
        uid=article_uid(_text(item.get("id")), link, title, body),
        title=title or _title_from_text(body, summary),
        url=link,
        published=_json_date(item, problems, where),
        content_html=clean_html(body, base),
        summary_html=clean_html(summary, base),
        author=_json_author(item) or feed_author,
        tags=_unique(_text(tag) for tag in _list(item.get("tags"))),
        image_url=web_url(_text(item.get("image")) or _text(item.get("banner_image")), base),
        content_hash=content_hash(title, body),
    )


def _json_date(item: Mapping[str, Any], problems: list[str], where: str) -> datetime | None:
    for key in ("date_published", "date_modified"):
        raw = _text(item.get(key))
        if not raw:
            continue
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError:
            problems.append(f"{where}: {key} {raw!r} is not an RFC 3339 date, left undated")
            return None
        # RFC 3339 requires an offset; a date written without one is taken as UTC.
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return None


def _json_author(holder: Mapping[str, Any]) -> str:
    """1.1 has an ``authors`` list, 1.0 a single ``author``; the first name wins."""
    for author in [*_list(holder.get("authors")), holder.get("author")]:
        if isinstance(author, Mapping) and _text(author.get("name")):
            return _text(author.get("name"))
    return ""


def _text(value: object) -> str:
    """A JSON scalar as text; ids may be numbers in the wild, objects and lists are ignored."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []
