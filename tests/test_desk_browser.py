"""The desk in a real browser (the system's Chromium, driven by Playwright): sign in, the
issues list, an issue, queue, pause, resume, sign out; axe-core on every page; hostile
article markup that must stay text; screenshots at 1280 and 375 px in the test's folder.

Every wait is Playwright's own (auto-waiting and ``expect``): nothing sleeps.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.desk_browser import WIDTHS, Visit, chromium, needs_chromium
from tests.desk_support import (
    ADMIN,
    PASSWORD,
    XSS_TITLE,
    Desk,
)
from tests.servers.webapp import WebApp


@pytest.fixture
def web(desk_web: WebApp) -> WebApp:
    return desk_web

pytestmark = needs_chromium


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def test_an_editor_works_an_issue_in_the_browser(
    desk: Desk, web: WebApp, browser: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    visit = Visit(browser, web, tmp_path)
    page = visit.page

    page.goto(web.url(f"/desk/issues/{desk.issue_id}"))
    expect(page).to_have_url(web.url(f"/desk/signin?next=/desk/issues/{desk.issue_id}"))
    expect(page.get_by_role("heading", name="Sign in to the desk")).to_be_visible()
    visit.check("signin")

    page.get_by_label("Name").fill(ADMIN)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong name or password.")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(web.url(f"/desk/issues/{desk.issue_id}"))

    page.get_by_role("link", name="Issues").first.click()
    expect(page.get_by_role("heading", name="Issues", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name=XSS_TITLE)).to_be_visible()  # shown as text
    visit.check("issues")

    page.get_by_role("link", name=XSS_TITLE).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        f"Issue {desk.xss_issue_id}: {XSS_TITLE}"
    )
    preview = page.frame_locator("iframe.preview")
    expect(preview.locator("body")).to_contain_text("Body")
    visit.check("issue-hostile")

    page.goto(web.url(f"/desk/issues/{desk.issue_id}"))
    for button, notice, state in [
        ("Queue", "Queued.", "queued"),
        ("Pause", "Paused.", "paused"),
        ("Resume", "Resumed: queued again.", "queued"),
    ]:
        page.get_by_role("button", name=button, exact=True).click()
        expect(page.get_by_role("status")).to_have_text(notice)
        expect(page.locator("dl.facts .state")).to_have_text(state)
        assert desk.state() == state
    expect(page.locator("table.history")).to_contain_text(f"desk:{ADMIN}")
    expect(page.frame_locator("iframe.preview").locator("body")).to_contain_text("Kellmouth")
    visit.check("issue")

    page.get_by_role("link", name="Users").click()
    expect(page.get_by_role("heading", name="Users")).to_be_visible()
    visit.check("users")

    page.goto(web.url("/desk/issues/999999"))
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    visit.check("not-found")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in to the desk")).to_be_visible()
    page.goto(web.url("/desk/issues"))
    expect(page).to_have_url(web.url("/desk/signin?next=/desk/issues"))

    assert visit.dialogs == []
    assert visit.checked == ["signin", "issues", "issue-hostile", "issue", "users", "not-found"]
    for name in visit.checked:
        for width in WIDTHS:
            assert (tmp_path / f"{name}-{width}.png").stat().st_size > 1000
    visit.context.close()


def test_hostile_markup_never_runs_in_the_desk(
    desk: Desk, web: WebApp, browser: Any, tmp_path: Path
) -> None:
    """The preview frame is sandboxed (no scripts, no origin) even when its HTML carries a
    script, and the title is text everywhere: no dialog opens."""
    from playwright.sync_api import expect

    visit = Visit(browser, web, tmp_path)
    page = visit.page
    page.goto(web.url("/desk/signin"))
    page.get_by_label("Name").fill(ADMIN)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Issues", exact=True)).to_be_visible()

    page.goto(web.url(f"/desk/issues/{desk.xss_issue_id}"))
    frame = page.frame_locator("iframe.preview")
    expect(frame.locator("body")).to_contain_text("Body")
    assert page.locator("iframe.preview").get_attribute("sandbox") == ""
    expect(page.locator("ol.articles .title")).to_have_text(XSS_TITLE)
    assert page.locator("img[src=x]").count() == 0

    page.goto(web.url(f"/desk/issues/{desk.xss_issue_id}/preview"))  # opened alone
    expect(page.locator("body")).to_contain_text("Body")
    assert page.evaluate("() => window.origin") == "null"  # the policy's own sandbox

    assert visit.dialogs == []
    visit.context.close()
