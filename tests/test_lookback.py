"""A new source sends only recent articles on its first fetch; a source may set its own window."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from newsletter.config import load_settings
from newsletter.publisher import Publisher
from newsletter.store import Store
from tests.schedule_helpers import ListSpec, make_home, open_publication
from tests.servers.feedserver import FeedServer

ARTICLE = """\
---
title: "{title}"
date: {date}
author: Test
summary: Something happened.
---

Something happened in the harbour.
"""


def publication(home: Path, lookback: str) -> Publisher:
    shutil.rmtree(home / "articles")
    (home / "articles").mkdir()
    now = datetime.now(UTC)
    for title, age in (("Old news", 30), ("Fresh news", 1)):
        date = (now - timedelta(days=age)).strftime("%Y-%m-%dT%H:%M:%SZ")
        slug = title.lower().replace(" ", "-")
        (home / "articles" / f"{slug}.md").write_text(ARTICLE.format(title=title, date=date))
    toml = home / "subscribers" / "publication.toml"
    text = toml.read_text(encoding="utf-8").replace("lookback_days = 36500", lookback)
    toml.write_text(text, encoding="utf-8")
    settings = load_settings(home, environ={})
    return Publisher(settings, Store.open(settings.database_url))


@pytest.mark.parametrize(
    ("lookback", "offered", "archived"),
    [
        ("", ["Fresh news"], 1),  # the default: NEWSLETTER_LOOKBACK_DAYS = 7
        ("lookback_days = 60", ["Old news", "Fresh news"], 0),
    ],
)
def test_first_fetch_offers_only_the_look_back_window(
    home: Path, lookback: str, offered: list[str], archived: int
) -> None:
    publisher = publication(home, lookback)
    try:
        report = publisher.collect()
        assert report.sources[0].archived == archived
        (issue_id,) = publisher.draft("weekly")
        titles = [a.title for a in publisher.content(issue_id).articles]
        assert titles == offered
        assert publisher.collect().new == 0 and publisher.draft("weekly") == []
    finally:
        publisher.store.close()


# -- items without a date -----------------------------------------------------------------------
FEED_SOURCE = """[sources.posts]
type = "feed"
url = "{url}"
allow_private_network = true  # the test feed is served on 127.0.0.1
"""


def undated_rss(count: int, start: int = 0) -> str:
    items = "".join(
        f"<item><title>Undated {n}</title><link>https://undated.example.org/{n}</link>"
        f"<description>Story {n}.</description></item>"
        for n in range(start, start + count)
    )
    channel = f"<channel><title>Undated</title>{items}</channel>"
    return f'<?xml version="1.0"?><rss version="2.0">{channel}</rss>'


def feed_publication(tmp_path: Path, url: str) -> Publisher:
    home = make_home(tmp_path, [ListSpec("weekly")])
    toml = home / "subscribers" / "publication.toml"
    folder = '[sources.posts]\ntype = "folder"\npath = "articles"\n'
    text = toml.read_text(encoding="utf-8").replace(folder, FEED_SOURCE.format(url=url))
    toml.write_text(text, encoding="utf-8")
    _, _, publisher = open_publication(home, f"sqlite:///{tmp_path / 'undated.db'}")
    return publisher


def test_undated_items_of_a_new_feed_are_archive_and_later_ones_are_news(tmp_path: Path) -> None:
    with FeedServer() as server:
        route = server.route("/feed.xml", undated_rss(30), content_type="application/rss+xml")
        publisher = feed_publication(tmp_path, server.url("/feed.xml"))
        try:
            first = publisher.collect()
            assert (first.sources[0].new, first.sources[0].archived) == (0, 30)
            assert publisher.draft("weekly") == []

            route.body = undated_rss(31).encode()  # one more item, still without a date
            second = publisher.collect()
            assert (second.sources[0].new, second.sources[0].unchanged) == (1, 30)
            (issue_id,) = publisher.draft("weekly")
            titles = [a.title for a in publisher.content(issue_id).articles]
            assert titles == ["Undated 30"]
        finally:
            publisher.store.close()


def test_an_undated_markdown_file_is_reported_and_never_sent(tmp_path: Path) -> None:
    home = make_home(tmp_path, [ListSpec("weekly")])
    (home / "articles" / "no-date.md").write_text("---\ntitle: No date\n---\nBody.\n")
    _, store, publisher = open_publication(home, f"sqlite:///{tmp_path / 'folder.db'}")
    try:
        report = publisher.collect()
        assert report.sources[0].problems == ("no-date.md: front matter needs a date",)
        assert publisher.draft("weekly") == []
    finally:
        store.close()
