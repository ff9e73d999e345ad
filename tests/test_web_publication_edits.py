"""``newsletter serve`` follows an admin's edits of ``subscribers/publication.toml`` with no
restart: a list that starts or stops taking sign-ups, a title. An edit that leaves the file
broken does not take the readers' pages down: they go on as the file last read."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import requests
from lxml import html as lxml_html

from newsletter.config import Settings
from newsletter.store import Store, suppressions
from newsletter.tokens import TokenSigner
from newsletter.web import create_app
from tests.archive_support import Archive
from tests.servers.webapp import WebApp
from tests.signup_support import MEMBER, Clock, outbox_rows

STARTED = re.compile(r'name="started" value="([^"]+)"')
NEW_LIST_SIGNUPS = ('members = ["every-article.csv"]\n',
                    'members = ["every-article.csv"]\nsignups = "every-article-signups.csv"\n')


def edit(settings: Settings, old: str, new: str) -> None:
    path = settings.subscribers_dir / "publication.toml"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.fixture
def clock(store: Store) -> Clock:
    store.clock = moved = Clock()
    return moved


@pytest.fixture
def web(settings: Settings, store: Store, clock: Clock) -> Iterator[WebApp]:
    with WebApp(create_app(settings, store)) as running:
        yield running


def sign_up(web: WebApp, clock: Clock, list_id: str, email: str) -> requests.Response:
    form = web.session.get(web.url(f"/subscribe/{list_id}"))
    assert form.status_code == 200, form.status_code
    started = STARTED.search(form.text)
    assert started
    clock.advance(seconds=10)  # a person takes a while to fill the form in
    return web.session.post(web.url(f"/subscribe/{list_id}"),
                            data={"email": email, "started": started.group(1)})


def test_a_list_that_starts_taking_sign_ups_gets_its_form_without_a_restart(
    settings: Settings, store: Store, web: WebApp, clock: Clock
) -> None:
    assert web.session.get(web.url("/subscribe/every-article")).status_code == 404

    edit(settings, *NEW_LIST_SIGNUPS)
    answer = sign_up(web, clock, "every-article", "new@example.org")

    assert answer.status_code == 200 and "Check your inbox" in answer.text
    [queued] = outbox_rows(store)
    assert (queued["list_id"], queued["to_email"]) == ("every-article", "new@example.org")
    assert "/subscribe/every-article/confirm/" in queued["text"]

    edit(settings, *reversed(NEW_LIST_SIGNUPS))
    assert web.session.get(web.url("/subscribe/every-article")).status_code == 404


def test_an_edit_that_breaks_the_file_leaves_the_readers_pages_as_they_were(
    settings: Settings, store: Store, web: WebApp, clock: Clock
) -> None:
    assert web.session.get(web.url("/subscribe/weekly")).status_code == 200
    edit(settings, "[lists.every-article]", "[lists.every-article")  # saved half-way

    answer = sign_up(web, clock, "weekly", "new@example.org")

    assert answer.status_code == 200 and "Check your inbox" in answer.text
    assert [row["to_email"] for row in outbox_rows(store)] == ["new@example.org"]
    front = web.session.get(web.url("/"))
    assert front.status_code == 200 and "The Kellmouth Tide" in front.text
    token = TokenSigner(settings.secret_key.reveal()).sign(MEMBER, "weekly")
    own_page = web.session.get(web.url(f"/subscription/{token}"))
    assert own_page.status_code == 200 and "weekly digest" in own_page.text
    leave = web.session.post(web.url(f"/unsubscribe/{token}"),
                             data={"List-Unsubscribe": "One-Click"})
    assert leave.status_code == 200
    with store.engine.connect() as conn:
        assert suppressions.is_suppressed(conn, MEMBER, "weekly")
    assert "weekly digest" in web.session.get(web.url(f"/unsubscribe/{token}")).text


def heading(web: WebApp, path: str) -> str:
    answer = web.session.get(web.url(path))
    assert answer.status_code == 200, (path, answer.status_code)
    return str(lxml_html.document_fromstring(answer.text).findtext(".//h1"))


def test_an_edited_list_title_shows_on_the_archive_s_kept_pages(
    archive_site: WebApp, archive: Archive
) -> None:
    issue = f"/archive/weekly/{archive.ids[-1]}"
    feed = "/archive/weekly/feed.atom"
    assert heading(archive_site, "/archive/weekly/") == "The Kellmouth Tide — weekly digest"
    archive_site.session.get(archive_site.url(issue))
    assert "weekly digest" in archive_site.session.get(archive_site.url(feed)).text

    edit(archive.settings, "— weekly digest", "— the Friday paper")

    assert heading(archive_site, "/archive/weekly/") == "The Kellmouth Tide — the Friday paper"
    assert "the Friday paper" in archive_site.session.get(archive_site.url(issue)).text
    assert "the Friday paper" in archive_site.session.get(archive_site.url(feed)).text
    assert "the Friday paper" in archive_site.session.get(archive_site.url("/archive/")).text
