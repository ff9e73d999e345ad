"""What an archive server process keeps: list views reread after a second, and made pages
held least-recently-used first up to a byte budget, dropped once their list changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from newsletter.store.archive import ArchivedIssue
from newsletter.web.archive import etag_matches
from newsletter.web.archive_cache import ArchiveCache, ListView, Page, PageKey
from tests.archive_support import Clock

START = datetime(2026, 3, 2, 8, tzinfo=UTC)


def issue(issue_id: int, subject: str = "") -> ArchivedIssue:
    return ArchivedIssue(issue_id, "weekly", subject or f"Issue {issue_id}", "",
                         START + timedelta(days=issue_id))


def key(issue_id: int) -> PageKey:
    return ("issue", "weekly", issue_id, "")


def test_a_view_is_read_again_after_a_second() -> None:
    clock = Clock(START)
    cache = ArchiveCache(clock)
    assert cache.fresh_view("weekly") is None
    kept = cache.keep_view("weekly", [issue(2), issue(1)])

    clock.advance(0.999)
    assert cache.fresh_view("weekly") is kept
    clock.advance(0.001)
    assert cache.fresh_view("weekly") is None


def test_a_views_version_changes_with_any_issue() -> None:
    base = ListView.of("weekly", [issue(2), issue(1)], START)
    same = ListView.of("weekly", [issue(2), issue(1)], START + timedelta(hours=1))
    assert same.version == base.version
    for changed in ([issue(3), issue(2), issue(1)], [issue(2)], [issue(2, "Renamed"), issue(1)]):
        assert ListView.of("weekly", changed, START).version != base.version


def test_neighbours_are_older_and_newer() -> None:
    view = ListView.of("weekly", [issue(3), issue(2), issue(1)], START)
    assert view.neighbours(3) == (issue(2), None)
    assert view.neighbours(2) == (issue(1), issue(3))
    assert view.neighbours(1) == (None, issue(2))
    assert view.holds(2) and not view.holds(4)


def test_a_page_of_another_version_is_not_served() -> None:
    cache = ArchiveCache(Clock(START))
    cache.keep_page(key(1), Page.of(b"made from v1", "v1"))

    assert cache.page(key(1), "v1") == Page.of(b"made from v1", "v1")
    assert cache.page(key(1), "v2") is None
    assert cache.page(key(2), "v1") is None


def test_pages_are_held_up_to_the_budget_least_recently_used_first() -> None:
    cache = ArchiveCache(Clock(START), max_bytes=100)
    for n in (1, 2):
        cache.keep_page(key(n), Page.of(bytes(40), "v"))
    assert cache.page(key(1), "v") is not None  # 1 is now the most recently used
    cache.keep_page(key(3), Page.of(bytes(40), "v"))

    assert cache.page(key(2), "v") is None
    assert cache.page(key(1), "v") is not None and cache.page(key(3), "v") is not None
    assert cache.held_bytes == 80
    cache.keep_page(key(4), Page.of(bytes(101), "v"))  # larger than the budget: not kept
    assert cache.page(key(4), "v") is None and cache.held_bytes == 80
    cache.keep_page(key(1), Page.of(bytes(10), "w"))  # made again: replaces the old bytes
    assert cache.held_bytes == 50


def test_if_none_match_uses_the_weak_comparison() -> None:
    etag = Page.of(b"x", "v").etag
    assert etag.startswith('"') and not etag.startswith("W/")
    for header in (etag, f"W/{etag}", f'"a", {etag}', f'"a",{etag} , "b"', "*"):
        assert etag_matches(header, etag), header
    for header in ("", '"a"', etag.strip('"'), f'"{etag}"', 'W/"a", "b"'):
        assert not etag_matches(header, etag), header
