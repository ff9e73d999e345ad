"""An editor's week at the desk, in a real browser (the system's Chromium, driven by
Playwright), from sign-in to the report on a sent issue.

New articles arrive the way a CMS announces them: Markdown files written into the
publication's folder source, then the API's collect hook. The editor finds them on the
articles page, drafts the weekly from a choice of them, moves one up, rewords the subject,
looks at the phone preview, sends a test (to the outbox, read back as an .eml), queues the
issue and watches it go out to the end, then pauses and resumes another issue queued for
later while the first is still sending, and reads the report.

The send runs as it does in production: in a process of its own, apart from the one
serving the desk, sharing nothing with it but the database and the publication's folder,
with its settings from the environment. ``newsletter send`` in a subprocess sends the due
issues with ``Publisher.send_due``, as ``newsletter run --once`` does under cron (the
daemon's dispatch job sends each through the same ``Publisher.send_issue``); a thread in
the test's process would share its interpreter and its store with the desk. It sends
through the fake provider (Postmark's API on a local port), which holds the batch for one
reader until the test lets it go (``POST /_fake/release``), so the issue is seen mid-send.
The collect hook has also queued an issue of each article the instant list
``every-article`` has not had; the same sender sends those first. The desk keeps the
outbox provider, whose test message is a file.

axe-core checks every page visited (nothing serious or critical), each page is
photographed at 1280 and 375 px in the test's folder and must fit a phone's width, and no
dialog may open: the hostile article of ``tests/desk_support.py`` is listed among the
rest. Every wait is Playwright's own or on a condition: nothing sleeps.
"""

from __future__ import annotations

import email
import email.policy
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from newsletter.devtools.fakeprovider import FakeProviderServer, Fault, FaultKind
from newsletter.editor import editing
from newsletter.web.api import tokens
from tests.desk_browser import WIDTHS, Visit, needs_chromium
from tests.desk_support import EDITOR, XSS_TITLE, Desk
from tests.servers.webapp import WebApp

pytestmark = needs_chromium

#: The articles the CMS publishes this week, newest last.
NEW_ARTICLES = {
    "harbour-wall.md": "Harbour wall repairs begin on Monday",
    "lifeboat-open-day.md": "Lifeboat station opens its doors for a day",
    "library-late.md": "The library stays open late on Thursdays",
}
SUBJECT = "The Tide this week: harbour wall, lifeboat open day"
#: A weekly reader who is on no other list: the fake provider holds the batch naming them.
HELD_READER = "arjun.mehta@example.org"
WEEKLY_READERS = 7
#: The progress script asks every two seconds; a send of a few batches takes a few rounds.
LIVE_MS = 60_000
PROCESS_SECONDS = 120


@pytest.fixture
def web(desk_web: WebApp) -> WebApp:
    return desk_web


def write_articles(desk: Desk) -> None:
    """This week's articles as the CMS writes them into the folder source."""
    day = desk.clock.now.strftime("%Y-%m-%dT%H:%M:%SZ")
    for n, (name, title) in enumerate(NEW_ARTICLES.items()):
        body = f"Paragraph {n} of a story from Kellmouth, with enough words to read.\n"
        text = (f'---\ntitle: "{title}"\ndate: {day}\nauthor: The editor\n'
                f"summary: {title}, in one line.\n---\n\n{body}")
        (desk.settings.home / "articles" / name).write_text(text, encoding="utf-8")


def collect_hook(web: WebApp, token: str) -> dict[str, Any]:
    """``POST /api/v1/collect``, as the CMS's publish hook calls it."""
    answer = web.session.post(web.url("/api/v1/collect"),
                              headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def sender_environment(desk: Desk, fake: FakeProviderServer) -> dict[str, str]:
    """What the scheduler's host would have: the database, the provider and its keys; small
    batches, one at a time, so the held one stops the send mid-way."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    return {
        **inherited, **fake.environment(),
        "NEWSLETTER_DATABASE_URL": desk.settings.database_url,
        "NEWSLETTER_PROVIDER": "postmark",
        "NEWSLETTER_BATCH_SIZE": "3", "NEWSLETTER_CONCURRENCY": "1",
        "NEWSLETTER_PROCESSES": "1", "NEWSLETTER_HTTP_TIMEOUT": str(PROCESS_SECONDS),
    }


@contextmanager
def sender(desk: Desk, fake: FakeProviderServer) -> Iterator[subprocess.Popen[bytes]]:
    """``newsletter send`` in a process of its own, as cron or the daemon runs it."""
    log = desk.settings.home / "send.log"
    command = [sys.executable, "-m", "newsletter", "--home", str(desk.settings.home), "send"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=sender_environment(desk, fake), stdout=out,
                                   stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        fake.released.set()
        if process.poll() is None:
            process.kill()
        process.wait(PROCESS_SECONDS)


def release(fake: FakeProviderServer) -> None:
    """Let the held batch's answer go, as another process would."""
    with requests.Session() as client:
        client.trust_env = False  # straight to the loopback, whatever proxy is set
        answer = client.post(f"{fake.url}/_fake/release", timeout=10)
    assert answer.json() == {"released": True}


def outbox_test_message(desk: Desk, issue_id: int, address: str) -> email.message.EmailMessage:
    """The test send's .eml in the outbox, parsed."""
    folder = desk.settings.outbox_path / f"test-issue-{issue_id}-weekly"
    [path] = [p for p in folder.glob("*.eml") if address in p.name]
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


class Week:
    """The editor's tab, each stage of the week, and the checks made on every page."""

    def __init__(self, visit: Visit, web: WebApp, desk: Desk) -> None:
        self.visit = visit
        self.page = visit.page
        self.web = web
        self.desk = desk

    def check(self, name: str) -> None:
        """axe-core and screenshots (``Visit.check``), and nothing wider than a phone."""
        self.visit.check(name)
        self.page.set_viewport_size({"width": 375, "height": 900})
        wide = self.page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
        self.page.set_viewport_size({"width": 1280, "height": 900})
        assert wide <= 0, f"{name}: {wide} px wider than a 375 px screen"

    def issue(self, issue_id: int) -> None:
        self.page.goto(self.web.url(f"/desk/issues/{issue_id}"))

    def press(self, button: str, notice: str) -> None:
        from playwright.sync_api import expect

        self.page.get_by_role("button", name=button, exact=True).click()
        expect(self.page.get_by_role("status")).to_have_text(notice)

    def state_is(self, state: str) -> None:
        from playwright.sync_api import expect

        expect(self.page.locator("dl.facts .state")).to_have_text(state)

    def article_titles(self) -> list[str]:
        return self.page.locator("ol.articles .title").all_inner_texts()

    @property
    def progress(self) -> Any:
        return self.page.locator("section.progress")

    # -- the stages ------------------------------------------------------------------------
    def new_articles(self) -> None:
        """The articles page lists what the hook collected, and the hostile title as text."""
        from playwright.sync_api import expect

        self.page.get_by_role("link", name="Articles").click()
        expect(self.page.get_by_role("heading", name="Articles", exact=True)).to_be_visible()
        for title in NEW_ARTICLES.values():
            expect(self.page.get_by_role("link", name=title)).to_be_visible()
        expect(self.page.get_by_role("link", name=XSS_TITLE)).to_be_visible()
        self.check("articles")

    def draft_weekly(self, titles: list[str]) -> int:
        """Tick ``titles``, choose the weekly, draft; the new issue's id."""
        from playwright.sync_api import expect

        for title in titles:
            self.page.get_by_label(f": {title}").check()
        self.page.get_by_label("List").select_option("weekly")
        self.page.get_by_role("button", name="Draft the issue").click()
        expect(self.page.get_by_role("heading", level=1)).to_contain_text("Issue ")
        assert sorted(self.article_titles()) == sorted(titles)
        return int(self.page.url.rsplit("/", 1)[1])

    def rework(self, issue_id: int) -> list[str]:
        """The second article moved up and the subject reworded; the articles' new order."""
        from playwright.sync_api import expect

        first, second = self.article_titles()
        self.page.get_by_role("button", name=f"Move up “{second}”").click()
        expect(self.page.get_by_role("status")).to_have_text(f"Moved “{second}” to position 1.")
        assert self.article_titles() == [second, first]
        self.page.get_by_label("Subject", exact=True).fill(SUBJECT)
        self.press("Save", "Saved: subject. The preview shows the issue as it is now.")
        expect(self.page.get_by_role("heading", level=1)).to_have_text(
            f"Issue {issue_id}: {SUBJECT}")
        return [second, first]

    def phone_preview(self, order: list[str]) -> None:
        """At 375 px the phone's frame shows the new subject and the articles in order."""
        from playwright.sync_api import expect

        self.page.set_viewport_size({"width": 375, "height": 900})
        phone = self.page.locator("iframe.preview-phone")
        phone.scroll_into_view_if_needed()
        expect(phone).to_be_visible()
        inside = phone.content_frame
        for n, title in enumerate(order):
            expect(inside.locator(".article-title").nth(n)).to_have_text(title)
        assert inside.locator("title").text_content() == SUBJECT  # in the head: no inner text
        self.page.screenshot(path=self.visit.shots / "phone-preview-375.png")
        self.page.set_viewport_size({"width": 1280, "height": 900})

    def send_test(self, issue_id: int, address: str) -> None:
        """A test to ``address`` through the desk's provider, the outbox, read back."""
        from playwright.sync_api import expect

        self.page.get_by_label("Send to").fill(address)
        self.page.get_by_role("button", name="Send a test").click()
        expect(self.page.get_by_role("status")).to_contain_text("Test sent through outbox")
        message = outbox_test_message(self.desk, issue_id, address)
        assert message["Subject"].startswith("[TEST] ") and SUBJECT in message["Subject"]
        assert [a.addr_spec for a in message["To"].addresses] == [address]

    def queue_now(self) -> None:
        """Queued with no time: the page's progress waits live for the next send."""
        from playwright.sync_api import expect

        self.page.get_by_role("button", name="Queue", exact=True).click()
        self.state_is("queued")
        expect(self.progress).to_have_attribute("data-live", "yes")

    def queue_at(self, issue_id: int, day: str) -> None:
        from playwright.sync_api import expect

        self.issue(issue_id)
        self.page.get_by_label("Date").fill(day)
        self.page.get_by_label("Time").fill("08:00")
        self.page.get_by_role("button", name="Queue", exact=True).click()
        expect(self.page.get_by_role("status")).to_contain_text(f"Queued for {day} 08:00")
        self.state_is("queued")

    def pause_and_resume(self, issue_id: int, day: str) -> None:
        from playwright.sync_api import expect

        self.issue(issue_id)
        self.press("Pause", "Paused.")
        self.state_is("paused")
        self.press("Resume", "Resumed: queued again.")
        self.state_is("queued")
        expect(self.page.locator("dl.facts").first).to_contain_text(f"{day} 08:00")
        self.check("issue-later")

    def report(self, issue_id: int) -> None:
        """The report: every recipient sent, and nothing else."""
        from playwright.sync_api import expect

        self.progress.get_by_role("link", name="Report").click()
        expect(self.page.get_by_role("heading", level=1)).to_have_text(
            f"Report on issue {issue_id}: {SUBJECT}")
        outcomes = self.page.locator("table.figures").first.locator("tbody tr")
        expect(outcomes).to_have_count(1)
        expect(outcomes.first).to_have_accessible_name(f"sent {WEEKLY_READERS}")
        self.check("report")


def test_an_editors_week_at_the_desk(
    desk: Desk, web: WebApp, browser: Any, server: FakeProviderServer, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    token = tokens.create(desk.store, "cms", "editor")
    week = Week(Visit(browser, web, tmp_path), web, desk)
    week.visit.sign_in(EDITOR)
    week.check("issues")

    write_articles(desk)  # Monday: the CMS publishes, then calls the hook
    assert collect_hook(web, token)["new"] == len(NEW_ARTICLES)
    week.new_articles()
    issue_id = week.draft_weekly(list(NEW_ARTICLES.values())[:2])

    order = week.rework(issue_id)  # Tuesday
    week.phone_preview(order)
    week.check("issue-draft")
    week.send_test(issue_id, "editor@example.net")

    week.queue_now()  # Wednesday: this one now, last week's leftover draft for later
    later = (desk.clock.now + timedelta(days=40)).strftime("%Y-%m-%d")
    week.queue_at(desk.issue_id, later)

    server.faults.push("postmark", Fault(FaultKind.SLOW, recipient=HELD_READER,
                                         delay=PROCESS_SECONDS))
    block = week.progress
    with sender(desk, server) as process:
        week.issue(issue_id)
        expect(block).to_have_attribute("data-state", "sending", timeout=LIVE_MS)
        expect(block.locator('[data-field="percent"]')).not_to_have_text("100 %")
        week.check("issue-sending")
        week.pause_and_resume(desk.issue_id, later)  # while the send is held
        assert desk.state(issue_id) == "sending"

        week.issue(issue_id)
        expect(block).to_have_attribute("data-live", "yes")
        release(server)
        expect(block.locator('[data-field="percent"]')).to_have_text("100 %", timeout=LIVE_MS)
        expect(block).to_have_attribute("data-live", "no", timeout=LIVE_MS)
        # The facts above the block follow the send too, without a reload.
        expect(week.page.locator("dl.facts .state")).to_have_text("sent")
        assert process.wait(PROCESS_SECONDS) == 0, (desk.settings.home / "send.log").read_text()
    expect(block.locator('[data-field="sent"]')).to_have_text(str(WEEKLY_READERS))
    expect(block.locator('[data-field="pending"]')).to_have_text("0")
    assert block.locator("progress").evaluate("bar => [bar.value, bar.max]") == [
        WEEKLY_READERS, WEEKLY_READERS]
    assert desk.state(issue_id) == "sent" and desk.state() == "queued"
    assert server.recorder.count("postmark", HELD_READER) == 1
    week.check("issue-sent")
    week.report(issue_id)  # Friday

    with desk.store.engine.connect() as conn:
        assert [a.title for a in editing.articles_of(conn, issue_id)] == order
    assert week.visit.dialogs == []
    assert week.page.locator("img[src=x]").count() == 0
    for name in week.visit.checked:
        for width in WIDTHS:
            assert (tmp_path / f"{name}-{width}.png").stat().st_size > 1000
    week.visit.context.close()
