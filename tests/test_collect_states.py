"""What a pass writes of each source's fetch: a pass where every feed answers 304 is one
transaction, and a failure keeps the validators of the last fetch that worked. On SQLite
and PostgreSQL (the states are written as one UPDATE over many rows)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import event, func, select

from newsletter.config import Settings
from newsletter.sources.base import SourceSpec
from newsletter.sources.collect import collect
from newsletter.store import Store
from newsletter.store.tables import articles, collections, source_state
from tests.servers.feedserver import FeedServer

FIRST = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
SECOND = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def rss(name: str, items: int = 2) -> str:
    entries = "".join(
        f"<item><title>{name} {n}</title><link>https://{name}.example.org/{n}</link>"
        f"<guid>{name}-{n}</guid></item>"
        for n in range(items)
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel>{entries}</channel></rss>'


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as running:
        yield running


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path, collect_concurrency=4)


def feeds(server: FeedServer, *names: str) -> dict[str, SourceSpec]:
    return {
        name: SourceSpec(
            id=name, type="feed", url=server.url(f"/{name}.xml"), allow_private_network=True
        )
        for name in names
    }


def states(store: Store) -> dict[str, tuple[str, str, str, datetime | None]]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(source_state)).all()
    return {
        row.source_id: (row.last_status, row.etag, row.last_error, row.last_checked_at)
        for row in rows
    }


def commits_during(store: Store) -> list[None]:
    """One entry per transaction committed on ``store`` from now on."""
    committed: list[None] = []
    event.listen(store.engine, "commit", lambda _conn: committed.append(None))
    return committed


def test_a_pass_where_every_feed_answers_304_commits_one_write(
    server: FeedServer, settings: Settings, store: Store
) -> None:
    names = [f"feed{n}" for n in range(6)]
    for name in names:
        server.route(f"/{name}.xml", rss(name), etag=f'"{name}-v1"')
    store.clock = lambda: FIRST
    collect(settings, store, feeds(server, *names))
    store.clock = lambda: SECOND
    committed = commits_during(store)

    report = collect(settings, store, feeds(server, *names))

    assert [s.status for s in report.sources] == ["not-modified"] * 6
    assert len(committed) == 2  # reading the validators, then every state and the report
    assert states(store) == {
        name: ("not-modified", f'"{name}-v1"', "", SECOND) for name in names
    }
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(collections)).scalar() == 2


def test_a_failure_keeps_the_validators_and_a_source_never_read_stays_unrecorded(
    server: FeedServer, settings: Settings, store: Store
) -> None:
    server.route("/steady.xml", rss("steady"), etag='"steady-v1"')
    server.route("/broken.xml", rss("broken"), etag='"broken-v1"')
    server.route("/edited.xml", rss("edited"), etag='"edited-v1"')
    server.route("/never.xml", "down", status=503)
    specs = feeds(server, "steady", "broken", "edited", "never")
    store.clock = lambda: FIRST
    collect(settings, store, specs)
    server.route("/broken.xml", "down", status=503)
    server.route("/edited.xml", rss("edited", items=3), etag='"edited-v2"')
    store.clock = lambda: SECOND

    report = collect(settings, store, specs)

    assert [(s.source_id, s.status, s.new) for s in report.sources] == [
        ("steady", "not-modified", 0),
        ("broken", "error", 0),
        ("edited", "ok", 1),
        ("never", "error", 0),
    ]
    found = states(store)
    assert set(found) == {"steady", "broken", "edited"}  # "never" looks back when it works
    assert found["steady"] == ("not-modified", '"steady-v1"', "", SECOND)
    assert found["edited"] == ("ok", '"edited-v2"', "", SECOND)
    status, etag, error, checked = found["broken"]
    assert (status, etag, checked) == ("error", '"broken-v1"', SECOND)
    assert "answered HTTP 503" in error
    with store.engine.connect() as conn:
        edited = conn.execute(select(articles.c.uid).where(articles.c.source_id == "edited"))
        assert sorted(edited.scalars()) == ["edited-0", "edited-1", "edited-2"]
