"""The articles, lists, status and suppressions pages in a real browser (the system's
Chromium, driven by Playwright): drafting from ticked articles, suppressing and lifting;
axe-core on every page, screenshots at 1280 and 375 px, markup that stays text and no
dialog ever opening."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from newsletter.editor import editing
from newsletter.models import SuppressionReason
from newsletter.store import suppressions
from tests.desk_browser import WIDTHS, Visit, needs_chromium
from tests.desk_support import ADMIN, XSS_TITLE, Desk, schedule_jobs
from tests.servers.webapp import WebApp

pytestmark = needs_chromium
MARKUP = '<img src=x onerror="alert(2)">'


@pytest.fixture
def web(desk_web: WebApp) -> WebApp:
    return desk_web


def test_the_four_pages_in_the_browser(
    desk: Desk, web: WebApp, browser: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    schedule_jobs(desk)
    with desk.store.engine.begin() as conn:
        suppressions.add(conn, "bounced@example.com", SuppressionReason.BOUNCED_HARD,
                         source="webhook:mailgun", detail=MARKUP, at=desk.store.now())
    visit = Visit(browser, web, tmp_path)
    page = visit.page
    visit.sign_in(ADMIN)

    # -- articles: hostile title as text; draft from two ticked articles -----------------
    page.get_by_role("link", name="Articles").click()
    expect(page.get_by_role("heading", name="Articles", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name=XSS_TITLE)).to_be_visible()
    visit.check("articles")
    boxes = page.locator('input[name="article"]')
    chosen = [int(boxes.nth(n).get_attribute("value") or 0) for n in (1, 3)]
    for article_id in chosen:
        page.locator(f"#article-{article_id}").check()
    page.get_by_role("button", name="Draft the issue").click()
    expect(page.get_by_role("alert")).to_have_text("List: choose the list the issue is for")
    expect(page.locator(f"#article-{chosen[0]}")).to_be_checked()  # kept as it was sent
    page.get_by_label("List").select_option("every-article")
    page.get_by_label("Again").check()
    page.get_by_role("button", name="Draft the issue").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Issue ")
    issue_id = int(page.url.rsplit("/", 1)[1])
    with desk.store.engine.connect() as conn:
        assert [a.id for a in editing.articles_of(conn, issue_id)] == chosen

    # -- lists and status ----------------------------------------------------------------
    page.get_by_role("link", name="Lists").click()
    expect(page.get_by_role("heading", name="Lists", exact=True)).to_be_visible()
    expect(page.locator("section.list").first).to_contain_text("Members")
    visit.check("lists")
    page.get_by_role("link", name="Status").click()
    expect(page.get_by_role("heading", name="Status", exact=True)).to_be_visible()
    expect(page.get_by_role("heading", name="Next runs")).to_be_visible()
    visit.check("status")

    # -- suppressions: add with markup, then lift a hard bounce with its box ticked -------
    page.get_by_role("link", name="Suppressions").click()
    expect(page.get_by_role("heading", name="Suppressions", exact=True)).to_be_visible()
    expect(page.locator("table.suppressions")).to_contain_text(MARKUP)  # as text
    visit.check("suppressions")
    page.get_by_label("Address", exact=True).fill("reader@example.org")
    page.get_by_label("Why (for whoever reads this list later)").fill(MARKUP)
    page.get_by_role("button", name="Suppress", exact=True).click()
    expect(page.get_by_role("status")).to_have_text(
        "Suppressed: it gets no mail there from now on.")
    expect(page.locator("table.suppressions")).to_contain_text("reader@example.org")
    page.goto(web.url("/desk/suppressions?q=bounced"))
    page.get_by_label("I understand: this address bounced hard").check()
    page.get_by_role("button", name="Lift the suppression of bounced@example.com").click()
    expect(page.get_by_role("status")).to_have_text(
        "Lifted: it gets mail again from the lists it is a member of.")
    with desk.store.engine.connect() as conn:
        assert not suppressions.is_suppressed(conn, "bounced@example.com", "weekly")
        assert suppressions.is_suppressed(conn, "reader@example.org", "weekly")
    visit.check("suppressions-lifted")

    assert visit.dialogs == []
    assert page.locator("img[src=x]").count() == 0
    for name in visit.checked:
        for width in WIDTHS:
            assert (tmp_path / f"{name}-{width}.png").stat().st_size > 1000
    visit.context.close()
