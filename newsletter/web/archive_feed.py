"""A list's Atom feed (RFC 4287), made with feedgen: its newest published issues.

Ids are the issues' archive URLs, which never change (an issue's id is its database row's),
so a feed reader never shows an issue twice. Each entry carries the issue's preheader as its
summary and the body of its web edition as its content: the web edition is rendered for an
anonymous reader, so the feed holds no one's address or name. The feed's author is the
publication. A list with nothing published yet has a valid, empty feed, dated at the Unix
epoch: no date of ours is true of it, and a fixed one keeps its bytes (and ETag) stable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from feedgen.feed import FeedGenerator
from lxml import etree
from lxml import html as lxml_html

from ..store.archive import ArchivedIssue
from .archive_nav import issue_url, list_url
from .pages import Site

#: Entries in a feed: feed readers poll the newest, and older issues are on the list page.
FEED_ENTRIES = 20
EMPTY_FEED_DATE = datetime(1970, 1, 1, tzinfo=UTC)
ATOM_TYPE = "application/atom+xml"


@dataclass(frozen=True, slots=True)
class FeedSource:
    """What a list's feed is made of: the list, its newest issues and their web editions."""

    site: Site
    base_url: str
    list_id: str
    issues: Sequence[ArchivedIssue]
    pages: Mapping[int, str]


def atom_feed(source: FeedSource) -> bytes:
    feed = FeedGenerator()
    _describe(feed, source)
    for issue in source.issues[:FEED_ENTRIES]:
        _add_entry(feed, source, issue)
    return bytes(feed.atom_str(pretty=False))


def _describe(feed: FeedGenerator, source: FeedSource) -> None:
    site, base = source.site, source.base_url
    home = base + list_url(source.list_id)
    feed.id(home)
    feed.title(site.list_title(source.list_id))
    if site.list_description(source.list_id):
        feed.subtitle(site.list_description(source.list_id))
    feed.author({"name": site.name})
    feed.link(href=home, rel="alternate", type="text/html")
    feed.link(href=f"{home}feed.atom", rel="self", type=ATOM_TYPE)
    feed.language(site.language)
    feed.generator("newsletter")
    newest = source.issues[0].sent_at if source.issues else EMPTY_FEED_DATE
    feed.updated(newest)


def _add_entry(feed: FeedGenerator, source: FeedSource, issue: ArchivedIssue) -> None:
    url = source.base_url + issue_url(source.list_id, issue.id)
    entry = feed.add_entry(order="append")
    entry.id(url)
    entry.title(issue.subject)
    entry.link(href=url, rel="alternate", type="text/html")
    entry.published(issue.sent_at)
    entry.updated(issue.sent_at)
    if issue.preheader:
        entry.summary(issue.preheader)
    body = edition_body(source.pages.get(issue.id, ""))
    if body:
        entry.content(body, type="html")


def edition_body(web_html: str) -> str:
    """The part of a web edition a feed reader shows: the email's card (its articles), or
    the whole body for a template without one; "" when there is nothing to read."""
    if not web_html.strip():
        return ""
    try:
        document = lxml_html.document_fromstring(web_html)
    except (etree.ParserError, ValueError):
        return ""  # an entry without content is still an entry: the link leads to the page
    found = document.find_class("card")
    holder = found[0] if found else document.find("body")
    if holder is None:
        return ""
    inner = [holder.text or ""] + [
        lxml_html.tostring(child, encoding="unicode") for child in holder
    ]
    return "".join(inner).strip()
