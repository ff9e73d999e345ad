"""What the desk's browser tests share: the system's Chromium, and a tab that checks each
page with axe-core and saves screenshots at the desk's two widths. The ``browser`` fixture
that launches Chromium is in conftest.py.

Every wait is Playwright's own (auto-waiting and ``expect``): nothing sleeps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.desk_support import PASSWORD
from tests.servers.webapp import WebApp

CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium at /usr/bin")
WIDTHS = (1280, 375)
#: A sandboxed frame (the desk's previews) runs in a process of its own, which headless
#: Chromium paints some frames after it comes into view: a screenshot taken at once shows
#: it blank. In the page's process it is painted with the page; the sandbox is the same.
CHROMIUM_ARGS = ["--disable-features=IsolateSandboxedIframes"]


class Visit:
    """One browser tab on the app (the desk, or a reader's pages in ``scheme``) that records
    every dialog and checks each page."""

    def __init__(self, browser: Any, web: WebApp, shots: Path, *, scheme: str = "light") -> None:
        from axe_playwright_python.sync_playwright import Axe

        self.base = web.url("")
        self.context = browser.new_context(viewport={"width": 1280, "height": 900},
                                           color_scheme=scheme)
        # Only the desk itself: anything else a page asks for (an email's remote picture)
        # is refused here, besides by the pages' policies.
        self.context.route("**/*", self._only_local)
        self.page = self.context.new_page()
        self.dialogs: list[str] = []
        self.page.on("dialog", self._dialog)
        self.axe = Axe()
        self.shots = shots
        self.checked: list[str] = []

    def _only_local(self, route: Any) -> None:
        url = route.request.url
        if url.startswith(self.base) or url.startswith("data:"):
            route.continue_()
        else:
            route.abort()

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def sign_in(self, name: str, password: str = PASSWORD) -> None:
        """Through the sign-in form, which then shows the issues list."""
        from playwright.sync_api import expect

        self.page.goto(f"{self.base}/desk/signin")
        self.page.get_by_label("Name").fill(name)
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Sign in").click()
        expect(self.page.get_by_role("heading", name="Issues", exact=True)).to_be_visible()

    def serious_findings(self) -> list[tuple[str, str, list[Any]]]:
        """axe-core's serious and critical findings on the page as it is now."""
        results = self.axe.run(self.page)
        return [
            (v["id"], v["impact"], [n["target"] for n in v["nodes"]])
            for v in results.response["violations"]
            if v["impact"] in ("serious", "critical")
        ]

    def check(self, name: str) -> None:
        """axe-core finds nothing serious or critical; screenshots at each width."""
        bad = self.serious_findings()
        assert bad == [], f"{name}: {bad}"
        frames = self.page.locator("iframe.preview")
        for width in WIDTHS:
            self.page.set_viewport_size({"width": width, "height": 900})
            self.page.screenshot(path=self.shots / f"{name}-{width}.png", full_page=True)
            if frames.count():  # and the preview as a viewport shows it at this width
                frames.scroll_into_view_if_needed()
                self.page.screenshot(path=self.shots / f"{name}-preview-{width}.png")
                self.page.evaluate("() => window.scrollTo(0, 0)")
        self.page.set_viewport_size({"width": 1280, "height": 900})
        self.checked.append(name)
