"""Shared fixtures: a copy of the example publication, settings, and real databases.

Tests that take ``store`` run twice: on a SQLite file and on the machine's PostgreSQL
(each test in a schema of its own, dropped afterwards). Without a reachable PostgreSQL
the second run is skipped locally, but fails in CI, where the server must be up.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from newsletter.config import Settings, load_settings
from newsletter.devtools.fakeprovider import FakeProviderServer
from newsletter.devtools.scratchschema import scratch_schema
from newsletter.store import Store
from tests.archive_support import FIRST_SENT, Archive, make_archive
from tests.archive_support import Clock as ArchiveClock
from tests.archive_support import serve as serve_archive
from tests.desk_browser import CHROMIUM, CHROMIUM_ARGS
from tests.desk_support import Desk, make_desk
from tests.servers.webapp import WebApp

REPO = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

# Tests stand for Ctrl-C by sending SIGINT to the processes they start. A suite started in
# the background (``pytest &``) inherits SIGINT ignored, and so would every such process; a
# handler here is reset to the default in each child, which then reacts as in a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A throw-away copy of the example publication in this repository."""
    target = tmp_path / "publication"
    target.mkdir()
    for name in ("subscribers", "templates", "articles"):
        if (REPO / name).exists():
            shutil.copytree(REPO / name, target / name)
    return target


@pytest.fixture
def settings(home: Path) -> Settings:
    return load_settings(home, environ={})


def _postgres_available() -> bool:
    try:
        engine = create_engine(PG_ADMIN_URL)
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return True
    except Exception:
        return False


def require_postgres() -> None:
    """Skip the calling test without a reachable PostgreSQL, except in CI, where it fails."""
    if not _postgres_available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL at 127.0.0.1:5432 is not reachable in CI")
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is not reachable")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'newsletter.db'}"
        return
    require_postgres()
    with scratch_schema(PG_ADMIN_URL, prefix="t") as url:
        yield url


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = Store.open(database_url)
    yield opened
    opened.close()


@pytest.fixture
def server() -> Iterator[FakeProviderServer]:
    """The fake provider server (all six APIs) on a free loopback port."""
    with FakeProviderServer() as running:
        yield running


@pytest.fixture
def db_settings(settings: Settings, database_url: str) -> Settings:
    """Settings pointing at the parametrised database."""
    return settings.with_changes(database_url=database_url)


@pytest.fixture
def desk(settings: Settings, database_url: str) -> Iterator[Desk]:
    """The example publication with two draft issues and two desk accounts
    (``tests/desk_support.py``), on the parametrised database."""
    yield from make_desk(settings, database_url)


@pytest.fixture
def desk_web(desk: Desk) -> Iterator[WebApp]:
    """The whole web app, desk included, under uvicorn on 127.0.0.1."""
    with WebApp(desk.app()) as running:
        yield running


@pytest.fixture
def archive(settings: Settings, store: Store) -> Archive:
    """The example publication with issues sent to its lists (``tests/archive_support.py``)."""
    return make_archive(settings, store)


@pytest.fixture
def archive_clock() -> ArchiveClock:
    """The archive app's clock, a month after its first issue; a test may move it."""
    return ArchiveClock(FIRST_SENT + timedelta(days=30))


@pytest.fixture
def archive_site(
    archive: Archive, database_url: str, archive_clock: ArchiveClock
) -> Iterator[WebApp]:
    """The example publication's app (its own ``publication.toml``) over ``archive``."""
    with serve_archive(archive.settings, database_url, archive_clock) as web:
        yield web


@pytest.fixture
def browser() -> Iterator[Any]:
    """The system's Chromium, headless, driven by Playwright (``tests/desk_browser_support``)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()
