"""A reader signs up in a real browser (Playwright driving the system's Chromium): the form,
the confirmation email found in the outbox provider's folder, its link, the button, and the
reader in the list's next audience. axe-core checks every page (no serious or critical
findings) and each is saved at 375 and 1280 px."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from newsletter.config import Settings
from newsletter.publisher import Publisher
from newsletter.store import Store
from newsletter.web import create_app
from tests.desk_browser import Visit, needs_chromium
from tests.servers.webapp import WebApp
from tests.signup_support import LIST, Clock, link_in, sent_messages, take_signups, text_of

pytestmark = needs_chromium
READER = "Rowan.Price@example.org"


@pytest.fixture
def served(settings: Settings, tmp_path: Path) -> Iterator[tuple[WebApp, Store, Clock, Settings]]:
    configured = take_signups(settings)
    store = Store.open(f"sqlite:///{tmp_path / 'signup.db'}")
    clock = Clock(datetime.now(UTC))
    store.clock = clock
    try:
        with WebApp(create_app(configured, store), lifespan="on") as web:
            yield web, store, clock, configured
    finally:
        store.close()


def wait_for_message(settings: Settings, count: int) -> EmailMessage:
    """The ``count``-th message of the list's readers, once the sender has written it."""
    arrived = threading.Event()
    for _ in range(600):  # up to a minute
        if len(sent_messages(settings)) >= count:
            arrived.set()
            break
        arrived.wait(0.1)
    assert arrived.is_set(), "no message reached the outbox"
    return sent_messages(settings)[count - 1]


def test_a_reader_signs_up_confirms_and_is_in_the_next_audience(
    browser: Any, served: tuple[WebApp, Store, Clock, Settings], tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    web, store, clock, settings = served
    visit = Visit(browser, web, tmp_path)
    page = visit.page
    page.goto(web.url(f"/subscribe/{LIST}"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("Subscribe to")
    visit.check("subscribe")

    page.get_by_label("Email address").fill("rowan@example")  # the browser lets it by
    page.get_by_label("Name").fill("Rowan Price")
    clock.advance(seconds=10)  # a person takes a few seconds to fill it
    page.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_role("alert")).to_contain_text("cannot be used")
    visit.check("subscribe-problem")

    page.get_by_label("Email address").fill(READER)
    clock.advance(seconds=10)
    page.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
    visit.check("subscribe-sent")

    message = wait_for_message(settings, 1)
    assert message["To"] == "Rowan.Price@example.org"
    link = link_in(text_of(message)).replace("https://news.example.org", web.url(""))
    page.goto(link)
    expect(page.get_by_role("heading", name="Confirm your subscription")).to_be_visible()
    expect(page.get_by_text("r***@example.org")).to_be_visible()
    visit.check("subscribe-confirm")
    page.get_by_role("button", name="Confirm subscription").click()
    expect(page.get_by_role("heading", name="You are subscribed")).to_be_visible()
    visit.check("subscribe-confirmed")

    page.goto(link)  # the link has done its work
    expect(page.get_by_role("heading", name="This link cannot be used any more")).to_be_visible()
    visit.check("subscribe-used")
    page.goto(web.url(f"/subscribe/{LIST}?embed=1"))
    visit.check("subscribe-embed")

    publisher = Publisher(settings, store)
    publisher.apply_signups(LIST)  # what every send does before it freezes its audience
    audience = {r.email: r.name for r in publisher.audience(publisher.config.list(LIST))}
    assert audience["Rowan.Price@example.org"] == "Rowan Price"
    assert len(visit.checked) == 7
