"""The public archive: only issues that went out, only their web version, no addresses; the
list pages, older/newer links, the styled 404, hostile subjects, ETags and 304s.

Issues in every state come from ``add_issue``; the realistic ones (``archive_support``) are
drafted from the example publication's articles and rendered by its real templates.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from lxml import html as lxml_html

from newsletter.config import Settings
from newsletter.models import IssueState
from newsletter.store import Store
from newsletter.store.archive import published_html
from newsletter.web import create_app
from tests.archive_support import (
    FIRST_SENT,
    SUBJECTS,
    XSS_SUBJECT,
    Archive,
    Clock,
)
from tests.servers.webapp import SITE, WebApp, add_issue, add_recipient


def web_html(title: str) -> str:
    return f"<!doctype html><html><body style=\"margin:0\"><h1>{title}</h1></body></html>"


@pytest.fixture
def published(store: Store) -> dict[str, int]:
    """One issue in every state, on two lists, with recipients whose addresses must not leak."""
    ids = {}
    for n, state in enumerate(IssueState):
        ids[str(state)] = add_issue(
            store, state=state, subject=f"Weekly {state}", web_html=web_html(f"Weekly {state}"),
            started_at=datetime(2026, 3, 1 + n, 8, tzinfo=UTC),
        )
        add_recipient(store, ids[str(state)], f"reader-{n}@example.org", message_id=f"m{n}")
    ids["daily"] = add_issue(
        store, list_id="daily", subject="Daily one", web_html=web_html("Daily one"),
        started_at=datetime(2026, 3, 20, 8, tzinfo=UTC),
    )
    ids["unrendered"] = add_issue(store, subject="Sent without a web version")
    return ids


@pytest.fixture
def web(settings: Settings, store: Store) -> Iterator[WebApp]:
    with WebApp(create_app(settings, store, site=SITE)) as running:
        yield running


ADDRESS = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
VISIBLE = ("sent", "partially-failed", "sending")
HIDDEN = ("draft", "queued", "paused", "cancelled")


def page_of(web: WebApp, path: str) -> lxml_html.HtmlElement:
    answer = web.session.get(web.url(path))
    assert answer.status_code == 200, (path, answer.status_code)
    return lxml_html.document_fromstring(answer.text)


def links(document: lxml_html.HtmlElement, selector: str) -> list[tuple[str, str]]:
    """(href, text) of the links the CSS selector finds, text with its spaces collapsed."""
    return [(a.get("href"), " ".join(a.text_content().split()))
            for a in document.cssselect(selector)]


# -- which issues are shown ---------------------------------------------------------------


def test_index_lists_sent_issues_per_list(web: WebApp, published: dict[str, int]) -> None:
    page = web.session.get(web.url("/archive/"))

    assert page.status_code == 200
    for state in VISIBLE:
        assert f"Weekly {state}" in page.text
        assert f'href="/archive/weekly/{published[state]}"' in page.text
    for state in HIDDEN:
        assert f"Weekly {state}" not in page.text
    assert "Sent without a web version" not in page.text
    assert page.text.index("Daily notes") < page.text.index("Weekly digest")  # by list title
    assert '<time datetime="2026-03-20T08:00:00+00:00">2026-03-20</time>' in page.text


def test_list_page_orders_newest_first(web: WebApp, published: dict[str, int]) -> None:
    page = web.session.get(web.url("/archive/weekly/"))

    assert page.status_code == 200
    # Started on 6, 5 and 3 March (the fixture dates issues in IssueState order).
    newest_first = ["Weekly partially-failed", "Weekly sent", "Weekly sending"]
    positions = [page.text.index(subject) for subject in newest_first]
    assert positions == sorted(positions)
    assert web.session.get(web.url("/archive/nobody/")).status_code == 404


def test_issue_page_serves_the_web_version(web: WebApp, published: dict[str, int]) -> None:
    page = web.session.get(web.url(f"/archive/weekly/{published['sent']}"))

    assert page.status_code == 200
    document = lxml_html.document_fromstring(page.text)
    assert document.find("body").get("style") == "margin:0"
    assert [h.text for h in document.iter("h1")] == ["Weekly sent"]
    policy = page.headers["Content-Security-Policy"]
    assert "script-src" not in policy and "default-src 'none'" in policy
    assert "style-src 'unsafe-inline'" in policy and "'self'" not in policy
    assert page.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("state", HIDDEN)
def test_unsent_issues_are_not_found(web: WebApp, published: dict[str, int], state: str) -> None:
    assert web.session.get(web.url(f"/archive/weekly/{published[state]}")).status_code == 404


def test_an_issue_is_only_found_under_its_own_list(web: WebApp, published: dict[str, int]) -> None:
    assert web.session.get(web.url(f"/archive/daily/{published['sent']}")).status_code == 404
    assert web.session.get(web.url(f"/archive/weekly/{published['unrendered']}")).status_code == 404
    assert web.session.get(web.url("/archive/weekly/999999")).status_code == 404


def test_no_archive_page_shows_an_address(web: WebApp, published: dict[str, int]) -> None:
    paths = ["/archive/", "/archive/weekly/", "/archive/daily/", "/"]
    paths += [f"/archive/weekly/{published[state]}" for state in VISIBLE]
    paths += ["/archive/weekly/feed.atom", "/archive/daily/feed.atom"]
    for path in paths:
        page = web.session.get(web.url(path))
        assert page.status_code == 200, path
        assert ADDRESS.search(page.text) is None, path  # the stylesheets' @media aside


# -- the publication's own pages ----------------------------------------------------------


def test_a_list_page_has_its_title_description_feed_and_sign_up(
    archive_site: WebApp, archive: Archive
) -> None:
    document = page_of(archive_site, "/archive/weekly/")

    assert document.findtext(".//h1") == "The Kellmouth Tide — weekly digest"
    assert document.findtext(".//p[@class='description']") == (
        "Everything from the past week in one email, Monday at eight.")
    assert links(document, "a.cta") == [("/subscribe/weekly", "Subscribe")]
    (alternate,) = document.cssselect("head link[rel=alternate]")
    assert alternate.get("type") == "application/atom+xml"
    assert alternate.get("href") == "/archive/weekly/feed.atom"
    assert ("/archive/weekly/feed.atom", "Atom feed") in links(document, "main a")
    listed = links(document, "ul.issues a")
    assert listed == [(f"/archive/weekly/{i}", s) for i, s in
                      zip(reversed(archive.ids), reversed(SUBJECTS), strict=True)]
    dates = [t.get("datetime") for t in document.cssselect("ul.issues time")]
    assert dates[-1] == FIRST_SENT.isoformat() and dates == sorted(dates, reverse=True)
    for href, _ in listed:
        assert archive_site.session.get(archive_site.url(href)).status_code == 200


def test_a_list_without_sign_ups_or_issues_still_has_its_page(archive_site: WebApp) -> None:
    document = page_of(archive_site, "/archive/every-article/")

    assert document.findtext(".//h1") == "The Kellmouth Tide — every article"
    assert document.cssselect("a.cta") == []  # it takes no sign-ups
    assert "Nothing has been sent to this list yet." in document.text_content()
    feed = archive_site.session.get(archive_site.url("/archive/every-article/feed.atom"))
    assert feed.status_code == 200


def test_the_archive_index_shows_every_list(archive_site: WebApp, archive: Archive) -> None:
    document = page_of(archive_site, "/archive/")

    headings = links(document, "h2 a")
    assert headings == [("/archive/every-article/", "The Kellmouth Tide — every article"),
                        ("/archive/weekly/", "The Kellmouth Tide — weekly digest")]
    assert links(document, "a.cta") == [("/subscribe/weekly", "Subscribe")]
    assert (f"/archive/weekly/{archive.ids[-1]}", SUBJECTS[-1]) in links(document, "ul.issues a")


def test_each_issue_links_to_the_older_and_newer_ones(
    archive_site: WebApp, archive: Archive
) -> None:
    oldest, middle, newest = archive.ids
    expected = {oldest: (None, middle), middle: (oldest, newest), newest: (middle, None)}
    for issue_id, (older, newer) in expected.items():
        document = page_of(archive_site, f"/archive/weekly/{issue_id}")
        top = document.cssselect("nav.archive-nav")[0]
        assert links(top, "a")[0] == ("/archive/weekly/", "All issues")
        assert [a.get("href") for a in top.cssselect("a[rel=prev]")] == (
            [f"/archive/weekly/{older}"] if older else [])
        assert [a.get("href") for a in top.cssselect("a[rel=next]")] == (
            [f"/archive/weekly/{newer}"] if newer else [])
        bottom = links(document, "nav.archive-nav-bottom a")
        wanted = [(f"/archive/weekly/{n}", f"{label} {SUBJECTS[archive.ids.index(n)]}")
                  for n, label in ((older, "Older issue"), (newer, "Newer issue")) if n]
        assert bottom == wanted


def test_the_issue_page_keeps_the_web_edition_whole(archive_site: WebApp, archive: Archive) -> None:
    """Everything the stored web edition holds is still there, in the same order, with the
    two bars added at the start and the end of its body."""
    with archive.store.engine.connect() as conn:
        original = published_html(conn, "weekly", archive.ids[0])
    assert original is not None
    served = page_of(archive_site, f"/archive/weekly/{archive.ids[0]}")
    before = lxml_html.document_fromstring(original)

    body = served.find("body")
    assert "archive-nav-top" in body[0].get("class")
    assert "archive-nav-bottom" in body[-1].get("class")
    for nav in (body[0], body[-1]):
        nav.drop_tree()
    assert lxml_html.tostring(body) == lxml_html.tostring(before.find("body"))
    styles = [s.text for s in served.iter("style")]
    assert styles[:-1] == [s.text for s in before.iter("style")]  # the email's, then ours
    assert ".archive-nav" in styles[-1]
    assert served.findtext(".//title") == SUBJECTS[0]


def test_an_issue_page_follows_a_newly_published_issue(
    archive_site: WebApp, archive: Archive, archive_clock: Clock
) -> None:
    """Once a second (by the app's clock) the archive rereads the list: the issue that was the
    newest then links to the new one, under a new ETag."""
    path = f"/archive/weekly/{archive.ids[-1]}"
    before = archive_site.session.get(archive_site.url(path))
    assert page_of(archive_site, path).cssselect("a[rel=next]") == []

    newer = archive.publish("Ferry times change", "New times.", FIRST_SENT + timedelta(days=9))
    archive_clock.advance(1.0)
    after = archive_site.session.get(archive_site.url(path),
                                     headers={"If-None-Match": before.headers["ETag"]})

    assert after.status_code == 200
    assert after.headers["ETag"] != before.headers["ETag"]
    document = lxml_html.document_fromstring(after.text)
    assert [a.get("href") for a in document.cssselect("a[rel=next]")] == [
        f"/archive/weekly/{newer}"]
    listed = links(page_of(archive_site, "/archive/weekly/"), "ul.issues a")
    assert listed[0] == (f"/archive/weekly/{newer}", "Ferry times change")


# -- hostile subjects, readers' data ------------------------------------------------------


def test_a_hostile_subject_stays_text(archive_site: WebApp, archive: Archive) -> None:
    hostile = archive.ids[1]
    paths = ["/archive/", "/archive/weekly/", f"/archive/weekly/{hostile}",
             f"/archive/weekly/{archive.ids[0]}", f"/archive/weekly/{archive.ids[2]}"]
    for path in paths:
        answer = archive_site.session.get(archive_site.url(path))
        assert answer.status_code == 200
        assert "<script>alert" not in answer.text and "<img src=x" not in answer.text, path
        document = lxml_html.document_fromstring(answer.text)
        assert all("alert" not in (s.text or "") for s in document.iter("script")), path
        assert [i for i in document.iter("img") if i.get("onerror")] == [], path
        assert XSS_SUBJECT in document.text_content(), path


def test_no_page_holds_a_readers_address_or_name(archive_site: WebApp, archive: Archive) -> None:
    """Every member of every list received every issue; none of them shows anywhere. (One
    member of the example shares her name with an article's author: bylines are public.)"""
    bylines = " ".join(path.read_text() for path in (archive.settings.home / "articles").iterdir())
    paths = ["/archive/", "/archive/weekly/", "/archive/weekly/feed.atom",
             "/archive/every-article/", "/archive/weekly/0", "/archive/nobody/"]
    paths += [f"/archive/weekly/{issue_id}" for issue_id in archive.ids]
    assert len([n for _, n in archive.readers if n and n not in bylines]) >= 5
    for path in paths:
        text = archive_site.session.get(archive_site.url(path)).text
        for email, name in archive.readers:
            assert email not in text and email.split("@")[0] not in text, (path, email)
            assert not name or name in bylines or name not in text, (path, name)


# -- not found ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", [
    "/archive/nobody/", "/archive/nobody/feed.atom", "/archive/nobody/1",
    "/archive/weekly/999999", "/archive/weekly/feed.rss", "/archive/weekly/1/extra",
])
def test_what_is_not_there_gets_the_styled_404(archive_site: WebApp, path: str) -> None:
    answer = archive_site.session.get(archive_site.url(path))

    assert answer.status_code == 404
    assert answer.headers["Content-Type"] == "text/html; charset=utf-8"
    assert answer.headers["Cache-Control"] == "no-store" and "ETag" not in answer.headers
    document = lxml_html.document_fromstring(answer.text)
    assert document.findtext(".//h1") == "Not found"
    assert document.cssselect("link[rel=stylesheet]")[0].get("href") == "/assets/web.css"
    assert ("/archive/", "Past issues") in links(document, "main a")
    assert document.cssselect("header.site")[0].text_content().strip() == "The Kellmouth Tide"


# -- cache validators ---------------------------------------------------------------------


def archive_paths(archive: Archive) -> list[str]:
    return ["/archive/", "/archive/weekly/", "/archive/weekly/feed.atom",
            f"/archive/weekly/{archive.ids[0]}", "/archive/every-article/"]


def test_every_archive_answer_has_a_strong_etag(archive_site: WebApp, archive: Archive) -> None:
    seen = {}
    for path in archive_paths(archive):
        first = archive_site.session.get(archive_site.url(path))
        again = archive_site.session.get(archive_site.url(path))
        etag = first.headers["ETag"]
        assert re.fullmatch(r'"[0-9a-f]{32}"', etag), path  # strong: no W/
        assert again.headers["ETag"] == etag and again.content == first.content, path
        assert first.headers["Cache-Control"] == "public, max-age=300", path
        seen[etag] = path
    assert len(seen) == len(archive_paths(archive))  # different bytes, different ETags


@pytest.mark.parametrize("form", ["{}", "W/{}", '"other", {}', "*"])
def test_if_none_match_with_the_etag_gets_304(
    archive_site: WebApp, archive: Archive, form: str
) -> None:
    for path in archive_paths(archive):
        etag = archive_site.session.get(archive_site.url(path)).headers["ETag"]
        answer = archive_site.session.get(archive_site.url(path),
                                          headers={"If-None-Match": form.format(etag)})
        assert answer.status_code == 304, (path, form)
        assert answer.content == b""
        assert answer.headers["ETag"] == etag
        assert answer.headers["Cache-Control"] == "public, max-age=300"


def test_if_none_match_with_another_etag_gets_the_page(
    archive_site: WebApp, archive: Archive
) -> None:
    for path in archive_paths(archive):
        answer = archive_site.session.get(archive_site.url(path),
                                          headers={"If-None-Match": '"0123", W/"x"'})
        assert answer.status_code == 200 and answer.content, path
