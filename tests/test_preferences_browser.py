"""The reader's own page in a real browser (the system's Chromium, driven by Playwright),
reached as a reader reaches it: from the "Manage your subscription" link of an email the
outbox provider wrote. Switch a list off and one on, change the name, leave every list;
the one-click unsubscribe and its page; a form on another site that posts to the page;
axe-core on every page, screenshots at 1280 and 375 px in the test's folder.

Every wait is Playwright's own (auto-waiting and ``expect``): nothing sleeps.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner
from lxml import html as lxml_html
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from newsletter.cli import cli
from newsletter.config import Settings
from newsletter.store import Store
from newsletter.web import create_app
from tests.desk_browser import Visit, needs_chromium
from tests.preferences_support import NORA, SIGNUPS, open_signups, snapshot, suppression_set
from tests.servers.webapp import WebApp

pytestmark = needs_chromium


def run(home: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--home", str(home), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def sent_message(home: Path, address: str) -> EmailMessage:
    """The one message the outbox provider wrote to ``address``."""
    [path] = (home / "var" / "outbox").glob(f"issue-*/*-{address}.eml")
    parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def manage_link(message: EmailMessage) -> str:
    """The footer's "Manage your subscription" link, the same in both parts."""
    html_part, text_part = message.get_body(("html",)), message.get_body(("plain",))
    assert html_part is not None and text_part is not None
    document = lxml_html.document_fromstring(html_part.get_content())
    [link] = document.xpath("//a[normalize-space(text())='Manage your subscription']/@href")
    assert link in text_part.get_content()
    return str(link)


@pytest.fixture
def emailed(home: Path) -> str:
    """An issue of every-article sent through the outbox provider; the path of Nora's link."""
    open_signups(home)
    run(home, "collect")
    run(home, "issue", "draft", "every-article", "--article", "1")
    run(home, "issue", "queue", "1")
    assert "5 sent" in run(home, "send")
    link = manage_link(sent_message(home, NORA))
    assert link.startswith("https://news.example.org/subscription/")
    return urlsplit(link).path


@pytest.fixture
def store(settings: Settings, emailed: str) -> Iterator[Store]:
    """The database the send wrote (this test's SQLite file)."""
    opened = Store.open(settings.database_url)
    yield opened
    opened.close()


@pytest.fixture
def web(settings: Settings, store: Store) -> Iterator[WebApp]:
    with WebApp(create_app(settings, store)) as running:
        yield running


def test_a_reader_manages_their_subscription_from_an_email(
    emailed: str, web: WebApp, store: Store, home: Path, browser: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    visit = Visit(browser, web, tmp_path)
    page = visit.page
    weekly = page.get_by_role("checkbox", name="The Kellmouth Tide — weekly digest")
    every = page.get_by_role("checkbox", name="The Kellmouth Tide — every article")
    status = page.get_by_role("status")

    page.goto(web.url(emailed))
    expect(page.get_by_role("heading", name="Your subscription")).to_be_visible()
    expect(every).to_be_checked()
    expect(weekly).not_to_be_checked()
    expect(page.get_by_label("Your name")).to_have_value("Nora Penhallow")
    page.reload()  # a GET, twice: nothing changed
    assert suppression_set(store) == set()
    assert not (home / "subscribers" / SIGNUPS).exists()
    visit.check("subscription")

    # One list off, one on, a new name: one press of the button.
    every.uncheck()
    weekly.check()
    page.get_by_label("Your name").fill("Nora P.")
    page.get_by_role("button", name="Save changes").click()
    expect(status).to_contain_text("Saved.")
    expect(status).to_contain_text("weekly digest: switched on.")
    expect(status).to_contain_text("every article: switched off.")
    expect(status).to_contain_text("Your name is changed.")
    expect(weekly).to_be_checked()
    expect(every).not_to_be_checked()
    expect(page.get_by_label("Your name")).to_have_value("Nora P.")
    visit.check("subscription-saved")
    assert suppression_set(store) == {(NORA, "every-article", "unsubscribed", "preferences")}
    signups = (home / "subscribers" / SIGNUPS).read_text(encoding="utf-8")
    assert signups == f"email,name\n{NORA},Nora P.\n"
    assert f"{NORA},Nora P.,Kellmouth" in (home / "subscribers" / "every-article.csv").read_text(
        encoding="utf-8"
    )

    # Leave every list: the page says so, and offers no button to leave again.
    page.get_by_role("button", name="Leave every list").click()
    expect(status).to_contain_text("You have left every list: nothing is sent to you now.")
    expect(weekly).not_to_be_checked()
    expect(page.get_by_role("button", name="Leave every list")).to_have_count(0)
    expect(page.locator(".choice.unsubscribed")).to_have_count(2)
    visit.check("subscription-left")
    assert (NORA, "*", "unsubscribed", "preferences") in suppression_set(store)

    # Back to one list.
    weekly.check()
    page.get_by_role("button", name="Save changes").click()
    expect(status).to_contain_text("weekly digest: switched on.")
    expect(weekly).to_be_checked()
    expect(every).not_to_be_checked()
    assert suppression_set(store) == {(NORA, "every-article", "unsubscribed", "preferences")}


def test_unsubscribing_leads_to_the_readers_page_which_shows_it(
    emailed: str, web: WebApp, store: Store, browser: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    token = emailed.rsplit("/", 1)[1]
    visit = Visit(browser, web, tmp_path)
    page = visit.page

    page.goto(web.url(f"/unsubscribe/{token}"))
    visit.check("unsubscribe")
    page.get_by_role("button", name="Unsubscribe").click()
    expect(page.get_by_role("heading", name="You are unsubscribed")).to_be_visible()
    visit.check("unsubscribed")
    page.get_by_role("link", name="Manage your subscription").click()
    expect(page.get_by_role("heading", name="Your subscription")).to_be_visible()
    expect(page.locator(".choice.unsubscribed")).to_contain_text("Unsubscribed.")
    every = page.get_by_role("checkbox", name="The Kellmouth Tide — every article")
    expect(every).not_to_be_checked()

    page.goto(web.url(f"/unsubscribe/{token}"))  # the email's link again
    expect(page.get_by_role("heading", name="You are already unsubscribed")).to_be_visible()
    expect(page.get_by_role("button", name="Unsubscribe")).to_have_count(0)
    visit.check("unsubscribe-already")

    page.goto(web.url(f"/subscription/{token[:-3]}"))
    expect(page.get_by_role("heading", name="This link is not valid")).to_be_visible()
    visit.check("subscription-invalid")
    assert suppression_set(store) == {(NORA, "every-article", "unsubscribed", "one-click")}


def test_a_form_on_another_site_cannot_change_the_page(
    emailed: str, web: WebApp, store: Store, home: Path, browser: Any
) -> None:
    from playwright.sync_api import expect

    before = snapshot(store, home)
    target = web.url(emailed)
    with WebApp(_other_site(target)) as other:
        context = browser.new_context()
        page = context.new_page()
        page.goto(other.url("/"))
        page.get_by_role("button", name="Win a prize").click()
        expect(page.get_by_role("heading", name="Nothing was changed")).to_be_visible()
        context.close()

    assert snapshot(store, home) == before


def _other_site(target: str) -> Starlette:
    """A page on another origin (another port) whose button posts "leave every list"."""
    form = (
        f'<!doctype html><title>Prize</title><form method="post" action="{target}">'
        '<input type="hidden" name="action" value="leave-all">'
        "<button>Win a prize</button></form>"
    )

    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(form)

    return Starlette(routes=[Route("/", page)])
