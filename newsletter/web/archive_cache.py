"""What a server process keeps of the archive between requests, so that a page it has made
once is served again without the database or a render.

Two things are kept. Each list's *view*: its published issues (ids, subjects, dates; no
bodies), read again once it is older than ``RECHECK_SECONDS``, and a version that changes
whenever any of them does (an issue published, one more shown). And *pages*: the bytes of
an issue page, a list page or a feed, with their ETag, stamped with the version of the list
they were made from; a page of an older version is made again on its next request, so the
older/newer links of every issue stay right once an issue is published. Pages are held in
least-recently-used order up to ``MAX_BYTES`` in all.

Each worker process has its own cache; what they share is the database, which each reads
at most once per list per ``RECHECK_SECONDS``: a change shows on every worker within that
time (HTTP caches in front hold a page for ``max-age`` anyway). The cache is only touched
from the event loop's thread; database reads run in the thread pool and hand back values.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..store.archive import ArchivedIssue

RECHECK_SECONDS = 1.0
#: Per process. An issue's web edition is some tens of kilobytes: this holds hundreds.
MAX_BYTES = 32 * 1024 * 1024

#: (what, list id, issue id or 0, the base URL the page names)
PageKey = tuple[str, str, int, str]


def strong_etag(body: bytes) -> str:
    """A strong validator of exactly these bytes (RFC 9110 8.8.3)."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


@dataclass(frozen=True, slots=True)
class ListView:
    """A list's published issues, newest first, as read at ``read_at``."""

    list_id: str
    issues: tuple[ArchivedIssue, ...]
    version: str
    read_at: datetime
    #: Each issue's index in ``issues``: a list of a thousand issues is not walked a request.
    positions: dict[int, int]

    @classmethod
    def of(cls, list_id: str, issues: Sequence[ArchivedIssue], read_at: datetime) -> ListView:
        marks = "\n".join(
            f"{i.id}\t{i.sent_at.isoformat()}\t{i.subject}\t{i.preheader}" for i in issues
        )
        version = hashlib.sha256(marks.encode()).hexdigest()
        positions = {issue.id: n for n, issue in enumerate(issues)}
        return cls(list_id, tuple(issues), version, read_at, positions)

    def neighbours(self, issue_id: int) -> tuple[ArchivedIssue | None, ArchivedIssue | None]:
        """(older, newer) around ``issue_id``, which must be one of the list's issues."""
        position = self.positions[issue_id]
        newer = self.issues[position - 1] if position > 0 else None
        older = self.issues[position + 1] if position + 1 < len(self.issues) else None
        return older, newer

    def holds(self, issue_id: int) -> bool:
        return issue_id in self.positions


@dataclass(frozen=True, slots=True)
class Page:
    """Bytes to serve, their ETag, and the list version they were made from."""

    body: bytes
    etag: str
    version: str

    @classmethod
    def of(cls, body: bytes, version: str) -> Page:
        return cls(body, strong_etag(body), version)


class ArchiveCache:
    """List views and made pages (see the module's docstring)."""

    def __init__(self, clock: Callable[[], datetime], *, recheck_seconds: float = RECHECK_SECONDS,
                 max_bytes: int = MAX_BYTES) -> None:
        self._clock = clock
        self._recheck = timedelta(seconds=recheck_seconds)
        self._max_bytes = max_bytes
        self._views: dict[str, ListView] = {}
        self._pages: OrderedDict[PageKey, Page] = OrderedDict()
        self._bytes = 0

    def fresh_view(self, list_id: str) -> ListView | None:
        """The list's view if it was read less than ``recheck_seconds`` ago, else None."""
        view = self._views.get(list_id)
        if view is None or self._clock() - view.read_at >= self._recheck:
            return None
        return view

    def keep_view(self, list_id: str, issues: Sequence[ArchivedIssue]) -> ListView:
        view = ListView.of(list_id, issues, self._clock())
        self._views[list_id] = view
        return view

    def page(self, key: PageKey, version: str) -> Page | None:
        """The page made for ``key`` from this version of its list, if it is still held."""
        found = self._pages.get(key)
        if found is None or found.version != version:
            return None
        self._pages.move_to_end(key)
        return found

    def keep_page(self, key: PageKey, page: Page) -> None:
        self._forget(key)
        if len(page.body) > self._max_bytes:
            return
        self._pages[key] = page
        self._bytes += len(page.body)
        while self._bytes > self._max_bytes:
            self._forget(next(iter(self._pages)))

    def forget_pages(self) -> None:
        """Drop every made page (the publication file changed a title or the base URL they
        show); the list views stay, as they come from the database alone."""
        self._pages.clear()
        self._bytes = 0

    @property
    def held_bytes(self) -> int:
        return self._bytes

    def _forget(self, key: PageKey) -> None:
        old = self._pages.pop(key, None)
        if old is not None:
            self._bytes -= len(old.body)
