"""Each list's Atom feed, read back with feedparser and lxml: well-formed Atom 1.0 with what
RFC 4287 requires (ids, titles, updated, an author, links), ids that stay the same from one
fetch to the next, the issues' dates, summaries and content, and a hostile subject as text.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import feedparser
from lxml import etree

from tests.archive_support import (
    FIRST_SENT,
    PREHEADERS,
    SUBJECTS,
    XSS_SUBJECT,
    Archive,
    Clock,
    serve,
)
from tests.servers.webapp import WebApp

ATOM = "{http://www.w3.org/2005/Atom}"
BASE = "https://news.example.org"


def fetch(archive_site: WebApp, list_id: str) -> tuple[bytes, Any]:
    answer = archive_site.session.get(archive_site.url(f"/archive/{list_id}/feed.atom"))
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/atom+xml"
    parsed = feedparser.parse(answer.content)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    return answer.content, parsed


def test_the_feed_is_atom_with_what_rfc_4287_requires(
    archive_site: WebApp, archive: Archive
) -> None:
    raw, parsed = fetch(archive_site, "weekly")
    root = etree.fromstring(raw)

    assert root.tag == f"{ATOM}feed"
    for required in ("id", "title", "updated", "author"):
        assert root.find(f"{ATOM}{required}") is not None, required
    feed = parsed.feed
    assert feed.id == f"{BASE}/archive/weekly/"
    assert feed.title == "The Kellmouth Tide — weekly digest"
    assert feed.subtitle == "Everything from the past week in one email, Monday at eight."
    assert feed.author_detail == {"name": "The Kellmouth Tide"}
    by_rel = {link.rel: (link.href, link.type) for link in feed.links}
    assert by_rel == {"alternate": (f"{BASE}/archive/weekly/", "text/html"),
                      "self": (f"{BASE}/archive/weekly/feed.atom", "application/atom+xml")}
    newest = FIRST_SENT + timedelta(days=len(SUBJECTS) - 1)
    assert feed.updated_parsed[:6] == newest.timetuple()[:6]
    for entry in root.iter(f"{ATOM}entry"):
        for required in ("id", "title", "updated"):
            assert entry.find(f"{ATOM}{required}") is not None, required


def test_entries_are_the_issues_newest_first(archive_site: WebApp, archive: Archive) -> None:
    _, parsed = fetch(archive_site, "weekly")

    entries = parsed.entries
    assert [e.title for e in entries] == list(reversed(SUBJECTS))
    for entry, issue_id, preheader, days in zip(
        entries, reversed(archive.ids), reversed(PREHEADERS), range(len(SUBJECTS) - 1, -1, -1),
        strict=True,
    ):
        url = f"{BASE}/archive/weekly/{issue_id}"
        assert entry.id == url
        assert [(link.rel, link.href) for link in entry.links] == [("alternate", url)]
        sent = (FIRST_SENT + timedelta(days=days)).timetuple()[:6]
        assert entry.published_parsed[:6] == sent and entry.updated_parsed[:6] == sent
        assert entry.summary == preheader
        (content,) = entry.content
        assert content.type == "text/html"
        assert "Kellmouth" in content.value and "<body" not in content.value


def test_ids_stay_the_same_when_an_issue_is_added(
    archive: Archive, database_url: str
) -> None:
    clock = Clock(FIRST_SENT + timedelta(days=30))
    with serve(archive.settings, database_url, clock) as web:
        before = {e.id: e.title for e in fetch(web, "weekly")[1].entries}
        newer = archive.publish("Ferry times change", "New times.", FIRST_SENT + timedelta(days=9))
        clock.advance(1.0)
        after = {e.id: e.title for e in fetch(web, "weekly")[1].entries}

    assert after == {**before, f"{BASE}/archive/weekly/{newer}": "Ferry times change"}


def test_a_hostile_subject_is_text_in_the_feed(archive_site: WebApp) -> None:
    raw, parsed = fetch(archive_site, "weekly")

    assert XSS_SUBJECT in [entry.title for entry in parsed.entries]
    root = etree.fromstring(raw)
    titles = [t for t in root.iter(f"{ATOM}title") if t.text == XSS_SUBJECT]
    assert len(titles) == 1 and len(titles[0]) == 0  # text, no elements inside
    assert b"<script>" not in raw


def test_a_list_with_nothing_sent_has_an_empty_valid_feed(archive_site: WebApp) -> None:
    _, parsed = fetch(archive_site, "every-article")

    assert parsed.entries == []
    assert parsed.feed.id == f"{BASE}/archive/every-article/"
    assert parsed.feed.updated_parsed[:3] == (1970, 1, 1)
