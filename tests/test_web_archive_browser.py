"""The archive in a real browser (the system's Chromium, driven by Playwright): a reader goes
from the archive to a list, reads its newest issue, walks to older and newer ones through
the links each issue page carries, back to the list, and lands on a 404. Each page, in the
light and the dark scheme, at 375 and 1280 px: axe-core finds nothing serious or critical,
nothing is wider than the window, and a screenshot is saved in the test's folder. The issue
whose subject is hostile markup opens no dialog anywhere.

Every wait is Playwright's own (auto-waiting and ``expect``): nothing sleeps.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from newsletter.config import Settings
from tests.archive_support import FIRST_SENT, SUBJECTS, XSS_SUBJECT, Clock, make_archive, serve
from tests.desk_browser import Visit, needs_chromium
from tests.servers.webapp import WebApp, sqlite_store

pytestmark = needs_chromium
WIDTHS = (375, 1280)
WEEKLY = "The Kellmouth Tide — weekly digest"


class Reader(Visit):
    """One tab, in one colour scheme, that only reaches the app (the web edition's pictures
    are remote: refused, as by no network in CI), and checks each page at both widths."""

    def __init__(self, browser: Any, web: WebApp, scheme: str, shots: Path) -> None:
        super().__init__(browser, web, shots, scheme=scheme)
        self.scheme = scheme

    def check(self, name: str) -> None:
        """At each width: no serious or critical axe finding, no sideways scrolling, and a
        screenshot of the whole page."""
        for width in WIDTHS:
            self.page.set_viewport_size({"width": width, "height": 900})
            bad = self.serious_findings()
            assert bad == [], f"{name}, {self.scheme}, {width} px: {bad}"
            wide = self.page.evaluate("() => document.documentElement.scrollWidth")
            assert wide <= width, f"{name}, {self.scheme}: {wide} px wide at {width} px"
            self.page.screenshot(path=self.shots / f"{name}-{self.scheme}-{width}.png",
                                 full_page=True)
        self.page.set_viewport_size({"width": 1280, "height": 900})

    def close(self) -> None:
        self.context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_a_reader_walks_the_archive(
    settings: Settings, browser: Any, tmp_path: Path, scheme: str
) -> None:
    from playwright.sync_api import expect

    with sqlite_store(tmp_path) as store:
        archive = make_archive(settings, store)
        url = f"sqlite:///{tmp_path / 'web.db'}"
        with serve(settings, url, Clock(FIRST_SENT + timedelta(days=30))) as web:
            reader = Reader(browser, web, scheme, tmp_path)
            page = reader.page
            oldest, hostile, newest = archive.ids

            page.goto(web.url("/archive/"))
            expect(page.get_by_role("heading", level=1)).to_have_text("Archive")
            reader.check("index")

            page.get_by_role("link", name=WEEKLY).click()
            expect(page).to_have_url(web.url("/archive/weekly/"))
            expect(page.get_by_role("link", name="Subscribe")).to_have_attribute(
                "href", "/subscribe/weekly")
            expect(page.get_by_role("link", name=XSS_SUBJECT)).to_be_visible()
            reader.check("list")

            page.get_by_role("link", name=SUBJECTS[-1]).click()
            expect(page).to_have_url(web.url(f"/archive/weekly/{newest}"))
            expect(page.get_by_role("link", name="Newer →")).to_have_count(0)
            reader.check("issue-newest")

            page.get_by_role("link", name="← Older").click()
            expect(page).to_have_url(web.url(f"/archive/weekly/{hostile}"))
            expect(page).to_have_title(XSS_SUBJECT)
            reader.check("issue-hostile")

            page.get_by_role("link", name=f"Older issue {SUBJECTS[0]}").click()
            expect(page).to_have_url(web.url(f"/archive/weekly/{oldest}"))
            expect(page.get_by_role("link", name="← Older")).to_have_count(0)
            reader.check("issue-oldest")

            page.get_by_role("link", name="Newer →").click()
            expect(page).to_have_url(web.url(f"/archive/weekly/{hostile}"))
            page.get_by_role("link", name="All issues").click()
            expect(page).to_have_url(web.url("/archive/weekly/"))

            page.goto(web.url("/archive/weekly/999999"))
            expect(page.get_by_role("heading", level=1)).to_have_text("Not found")
            reader.check("not-found")

            assert reader.dialogs == []
            reader.close()
