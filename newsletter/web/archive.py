"""The public archive: each list's page, its Atom feed, and the issues that went out, as
their web edition (``issues.web_html``) with links to the older and newer ones.

Only published issues are shown (``store/archive.py`` says which), and only their web
rendering, which is made without any recipient's data. Everything else under ``/archive/``
is the styled 404, as is a list the publication does not declare and that has no issues.

Every answer carries a strong ETag of the bytes it serves and ``Cache-Control: public``, so
a proxy can keep it; a request whose ``If-None-Match`` names that ETag gets 304 and no body.
Lists, issue pages and feeds are made once per process and kept (``archive_cache.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.request import parse_http_list

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..store import Store
from ..store.archive import ArchivedIssue, published_html, published_issues, published_pages
from .archive_cache import ArchiveCache, ListView, Page, PageKey
from .archive_feed import ATOM_TYPE, FEED_ENTRIES, FeedSource, atom_feed
from .archive_nav import Neighbours, with_navigation
from .pages import Pages, Site

#: The issue page is the rendered newsletter: inline styles and remote images, never scripts.
ISSUE_POLICY = (
    "default-src 'none'; img-src https: data:; style-src 'unsafe-inline'; font-src https: data:; "
    "form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)
ARCHIVE_CACHE = "public, max-age=300"
HTML_TYPE = "text/html; charset=utf-8"
#: Ids are signed 64-bit integers on both databases (``tables.BigId``); a larger number in a
#: URL names no issue, and the drivers refuse to bind it (SQLite raises ``OverflowError``).
MAX_ISSUE_ID = 2**63 - 1
MAX_ID_DIGITS = len(str(MAX_ISSUE_ID))
#: Issues of each list the archive's front page shows; the list's own page has them all.
INDEX_ISSUES = 5


def issue_id_from_path(text: str) -> int | None:
    """The issue id a URL segment names, or None when no issue can have it.

    ASCII digits only (``str.isdigit`` also takes other scripts' digits), leading zeros
    ignored, and at most ``MAX_ISSUE_ID``: the length is checked before ``int()``, which
    refuses strings of more than 4,300 digits with an error of its own.
    """
    digits = text.lstrip("0") or "0"
    if not (digits.isascii() and digits.isdigit()) or len(digits) > MAX_ID_DIGITS:
        return None
    issue_id = int(digits)
    return issue_id if 0 < issue_id <= MAX_ISSUE_ID else None


def known_list_id(text: str) -> bool:
    """False for a list id no list can have: PostgreSQL text cannot even hold a NUL to compare."""
    return "\x00" not in text


def etag_matches(if_none_match: str, etag: str) -> bool:
    """Whether an ``If-None-Match`` value names ``etag``, by the weak comparison RFC 9110
    (13.1.2) asks of it: ``W/"x"`` matches ``"x"``, and ``*`` matches any."""
    for tag in parse_http_list(if_none_match):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False


def conditional(request: Request, page: Page, media_type: str,
                headers: Mapping[str, str] | None = None) -> Response:
    """``page``, or 304 without a body when the client holds these bytes already."""
    fields = {"ETag": page.etag, "Cache-Control": ARCHIVE_CACHE, **(headers or {})}
    if etag_matches(request.headers.get("if-none-match", ""), page.etag):
        return Response(status_code=304, headers=fields)
    return Response(page.body, media_type=media_type, headers=fields)


class ArchiveEndpoints:
    def __init__(self, store: Store, pages: Pages) -> None:
        self.store = store
        self.pages = pages
        self.cache = ArchiveCache(store.now)
        self._made_for = pages.site

    @property
    def site(self) -> Site:
        return self.pages.site

    def routes(self) -> list[Route]:
        return [
            Route("/archive/", self.index, methods=["GET"]),
            Route("/archive/{list_id}/", self.list_page, methods=["GET"]),
            Route("/archive/{list_id}/feed.atom", self.feed, methods=["GET"]),
            # The id is read by ``issue_id_from_path``, not the ``int`` convertor: that takes
            # any number of digits, and the database cannot bind one past 64 bits.
            Route("/archive/{list_id}/{issue_id}", self.issue_page, methods=["GET"]),
        ]

    async def index(self, request: Request) -> Response:
        found = await run_in_threadpool(self._issues, None)
        by_list: dict[str, list[ArchivedIssue]] = {list_id: [] for list_id in self.site.list_titles}
        for issue in found:
            by_list.setdefault(issue.list_id, []).append(issue)
        title = self.site.list_title
        lists = sorted(by_list.items(), key=lambda item: title(item[0]).lower())
        body = self.pages.render("archive_index.html", lists=lists, shown=INDEX_ISSUES).body
        return conditional(request, Page.of(bytes(body), ""), HTML_TYPE)

    async def list_page(self, request: Request) -> Response:
        view = await self._view(request)
        key: PageKey = ("list", view.list_id, 0, "")
        page = self.cache.page(key, view.version)
        if page is None:
            body = self.pages.render("archive_list.html", list_id=view.list_id,
                                     issues=view.issues).body
            page = self._keep(key, bytes(body), view)
        return conditional(request, page, HTML_TYPE)

    async def feed(self, request: Request) -> Response:
        view = await self._view(request)
        base = self.site.base_url.rstrip("/") or str(request.base_url).rstrip("/")
        key: PageKey = ("feed", view.list_id, 0, base)
        page = self.cache.page(key, view.version)
        if page is None:
            body = await run_in_threadpool(self._make_feed, view, base)
            page = self._keep(key, body, view)
        return conditional(request, page, ATOM_TYPE)

    async def issue_page(self, request: Request) -> Response:
        issue_id = issue_id_from_path(request.path_params["issue_id"])
        if issue_id is None:
            raise HTTPException(404)
        view = await self._view(request)
        key: PageKey = ("issue", view.list_id, issue_id, "")
        page = self.cache.page(key, view.version)
        if page is None:
            if not view.holds(issue_id):
                raise HTTPException(404)
            body = await run_in_threadpool(self._make_issue_page, view, issue_id)
            if body is None:  # no longer published since the list was read
                raise HTTPException(404)
            page = self._keep(key, body, view)
        return conditional(request, page, HTML_TYPE, {"Content-Security-Policy": ISSUE_POLICY})

    async def _view(self, request: Request) -> ListView:
        """The list the URL names, as this process last read it (again if it is stale);
        404 for a list no one declared that has nothing published."""
        list_id = request.path_params["list_id"]
        if not known_list_id(list_id):
            raise HTTPException(404)
        self._forget_pages_of_another_site()
        view = self.cache.fresh_view(list_id)
        if view is None:
            found = await run_in_threadpool(self._issues, list_id)
            if not found and list_id not in self.site.list_titles:
                raise HTTPException(404)  # and nothing kept for a made-up name
            view = self.cache.keep_view(list_id, found)
        return view

    def _forget_pages_of_another_site(self) -> None:
        """Pages name the publication's titles and base URL: an edit of the publication
        file makes them again. Here, on the event loop's thread, as the cache wants."""
        site = self.pages.site
        if site != self._made_for:
            self.cache.forget_pages()
            self._made_for = site

    def _keep(self, key: PageKey, body: bytes, view: ListView) -> Page:
        page = Page.of(body, view.version)
        self.cache.keep_page(key, page)
        return page

    def _issues(self, list_id: str | None) -> list[ArchivedIssue]:
        with self.store.engine.connect() as conn:
            return published_issues(conn, list_id)

    def _make_issue_page(self, view: ListView, issue_id: int) -> bytes | None:
        with self.store.engine.connect() as conn:
            html = published_html(conn, view.list_id, issue_id)
        if html is None:
            return None
        older, newer = view.neighbours(issue_id)
        around = Neighbours(self.site.list_title(view.list_id), older, newer)
        return with_navigation(html, view.list_id, around).encode()

    def _make_feed(self, view: ListView, base: str) -> bytes:
        newest = view.issues[:FEED_ENTRIES]
        with self.store.engine.connect() as conn:
            pages = published_pages(conn, view.list_id, [issue.id for issue in newest])
        return atom_feed(FeedSource(self.site, base, view.list_id, newest, pages))
