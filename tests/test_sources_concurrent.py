"""Collecting many feeds at once: hosts side by side, one kept-alive connection per host,
the address guard on every fetch, and a fetch state never stored without its articles."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, text

from newsletter.config import Settings
from newsletter.sources.base import SourceSpec
from newsletter.sources.collect import collect
from newsletter.store import Store
from newsletter.store.tables import articles, source_state
from tests.servers.feedserver import FeedServer

#: How long the barrier test waits for every request before failing (never reached when the
#: feeds are fetched concurrently; it only bounds a failing run).
BARRIER_SECONDS = 20.0


def rss(name: str, items: int = 2) -> str:
    entries = "".join(
        f"<item><title>{name} {n}</title><link>https://{name}.example.org/{n}</link>"
        f"<guid>{name}-{n}</guid></item>"
        for n in range(items)
    )
    channel = f"<channel><title>{name}</title>{entries}</channel>"
    return f'<?xml version="1.0"?><rss version="2.0">{channel}</rss>'


def feed(source_id: str, url: str, *, private: bool = True) -> SourceSpec:
    return SourceSpec(id=source_id, type="feed", url=url, allow_private_network=private)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path, feed_timeout=BARRIER_SECONDS * 2, collect_concurrency=8)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 'collect.db'}")
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def servers() -> Iterator[list[FeedServer]]:
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(FeedServer()) for _ in range(4)]


def test_feeds_on_different_hosts_are_fetched_at_the_same_time(
    servers: list[FeedServer], settings: Settings, store: Store
) -> None:
    # Each server holds its answer until all four requests have arrived: only fetches in
    # flight together get past it; one at a time, the first waits out the barrier and fails.
    barrier = threading.Barrier(len(servers), timeout=BARRIER_SECONDS)
    specs = {}
    for number, server in enumerate(servers):
        server.route("/feed.xml", rss(f"site{number}"), barrier=barrier)
        specs[f"site{number}"] = feed(f"site{number}", server.url("/feed.xml"))

    report = collect(settings, store, specs)

    assert [(s.source_id, s.status, s.archived) for s in report.sources] == [
        (f"site{n}", "ok", 2) for n in range(len(servers))
    ]


def test_the_feeds_of_one_host_share_one_kept_alive_connection(
    servers: list[FeedServer], settings: Settings, store: Store
) -> None:
    server = servers[0]
    specs = {}
    for number in range(5):
        server.route(f"/{number}.xml", rss(f"feed{number}"), etag=f'"v{number}"')
        specs[f"feed{number}"] = feed(f"feed{number}", server.url(f"/{number}.xml"))

    first = collect(settings, store, specs)
    opened_first = server.connections_opened
    second = collect(settings, store, specs)  # every answer a 304 this time

    assert [s.status for s in first.sources] == ["ok"] * 5
    assert [s.status for s in second.sources] == ["not-modified"] * 5
    assert len(server.requests) == 10
    assert (opened_first, server.connections_opened) == (1, 2)  # one per pass


def test_a_failing_feed_does_not_stop_the_others_and_the_report_keeps_the_file_order(
    servers: list[FeedServer], settings: Settings, store: Store
) -> None:
    fast, slow, broken = servers[:3]
    fast.route("/feed.xml", rss("fast"))
    slow.route("/feed.xml", rss("slow"), delay=0.3)  # finishes last, reported second
    broken.route("/feed.xml", "oops", status=500)
    specs = {
        "broken": feed("broken", broken.url("/feed.xml")),
        "slow": feed("slow", slow.url("/feed.xml")),
        "fast": feed("fast", fast.url("/feed.xml")),
        "gone": feed("gone", fast.url("/missing.xml")),
    }

    report = collect(settings, store, specs)

    assert [(s.source_id, s.status, s.archived) for s in report.sources] == [
        ("broken", "error", 0),
        ("slow", "ok", 2),
        ("fast", "ok", 2),
        ("gone", "error", 0),
    ]
    assert report.sources[0].error.endswith("answered HTTP 500 Internal Server Error")


def test_the_address_guard_holds_for_every_concurrent_fetch_and_redirect(
    servers: list[FeedServer], settings: Settings, store: Store
) -> None:
    server, other = servers[:2]
    server.route("/feed.xml", rss("open"))
    server.route("/moved", status=302, headers={"Location": "http://169.254.169.254/latest/"})
    other.route("/feed.xml", rss("other"))
    # The same host as an opted-in source: a shared session would let this one through.
    specs = {
        "open": feed("open", server.url("/feed.xml")),
        "closed": feed("closed", server.url("/feed.xml"), private=False),
        "moved": feed("moved", server.url("/moved")),
        "hop": feed("hop", other.url("/feed.xml"), private=False),
    }

    report = collect(settings, store, specs)

    by_id = {s.source_id: s for s in report.sources}
    assert by_id["open"].status == "ok"
    assert by_id["closed"].error.startswith(f"refused {server.url('/feed.xml')}: 127.0.0.1")
    assert by_id["moved"].error.startswith("refused http://169.254.169.254/latest/ (redirected")
    assert by_id["hop"].error.startswith(f"refused {other.url('/feed.xml')}: 127.0.0.1")
    assert [r.path for r in server.requests].count("/feed.xml") == 1  # only the opted-in one
    assert other.requests == []


def test_no_fetch_state_is_stored_when_the_articles_are_not(
    servers: list[FeedServer], settings: Settings, store: Store
) -> None:
    server = servers[0]
    server.route("/good.xml", rss("good"), etag='"g"')
    server.route("/bad.xml", rss("bad"), etag='"b"')
    with store.engine.begin() as conn:  # the articles' write fails, as a full disk would
        conn.execute(
            text(
                "CREATE TRIGGER refuse_bad BEFORE INSERT ON articles WHEN NEW.source_id = 'bad' "
                "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
            )
        )
    specs = {"bad": feed("bad", server.url("/bad.xml"))}

    with pytest.raises(Exception, match="disk full"):
        collect(settings, store, specs)

    with store.engine.begin() as conn:
        assert conn.execute(select(source_state)).all() == []
        assert conn.execute(select(articles)).all() == []
