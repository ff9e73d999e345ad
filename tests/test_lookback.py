"""A new source sends only recent articles on its first fetch; a source may set its own window."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from newsletter.config import load_settings
from newsletter.publisher import Publisher
from newsletter.store import Store

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
