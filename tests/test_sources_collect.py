"""Collecting a feed with entries that have nothing to show: skipped, each named in one line."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from tests.schedule_helpers import ListSpec, make_home, open_publication
from tests.servers.feedserver import FeedServer

FEED = """<?xml version="1.0"?>
<rss version="2.0"><channel><title>Harbour</title>
<item><title>Quay reopens</title><link>https://harbour.example.org/quay</link>
<pubDate>{published}</pubDate></item>
<item><guid isPermaLink="false">blank-1</guid></item>
</channel></rss>
"""
SOURCE = """[sources.posts]
type = "feed"
url = "{url}"
allow_private_network = true
"""


def test_an_empty_entry_is_skipped_with_one_warning_naming_source_and_entry(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    home = make_home(tmp_path, [ListSpec("weekly")])
    toml = home / "subscribers" / "publication.toml"
    folder = '[sources.posts]\ntype = "folder"\npath = "articles"\n'
    with FeedServer() as server:
        url = server.url("/feed.xml")
        published = format_datetime(datetime.now(UTC) - timedelta(hours=1))
        server.route("/feed.xml", FEED.format(published=published), content_type="text/xml")
        toml.write_text(toml.read_text().replace(folder, SOURCE.format(url=url)))
        _, store, publisher = open_publication(home, f"sqlite:///{tmp_path / 'collect.db'}")
        try:
            with caplog.at_level(logging.WARNING, logger="newsletter.sources.collect"):
                report = publisher.collect()
            (issue_id,) = publisher.draft("weekly")
            titles = [a.title for a in publisher.content(issue_id).articles]
        finally:
            store.close()

    problem = f"{url} entry 2 (id blank-1): no title, no content and no link; skipped"
    assert report.sources[0].problems == (problem,)
    assert (report.sources[0].new, report.sources[0].archived) == (1, 0)
    assert [r.getMessage() for r in caplog.records] == [f"source posts: {problem}"]
    assert titles == ["Quay reopens"]
