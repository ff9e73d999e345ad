"""What the desk's browser tests share: the system's Chromium driven by Playwright, and a tab
that checks each page with axe-core and takes its screenshots at 1280 and 375 px.

Every wait is Playwright's own (auto-waiting and ``expect``): nothing sleeps.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.desk_support import PASSWORD
from tests.servers.webapp import WebApp

CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium at /usr/bin")
WIDTHS = (1280, 375)


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium, closed after."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield launched
        finally:
            launched.close()


class Visit:
    """One browser tab on the desk that records every dialog and checks each page."""

    def __init__(self, browser: Any, web: WebApp, shots: Path) -> None:
        from axe_playwright_python.sync_playwright import Axe

        self.base = web.url("")
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
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

    def check(self, name: str) -> None:
        """axe-core finds nothing serious or critical; screenshots at each width."""
        results = self.axe.run(self.page)
        bad = [
            (v["id"], v["impact"], [n["target"] for n in v["nodes"]])
            for v in results.response["violations"]
            if v["impact"] in ("serious", "critical")
        ]
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

    def sign_in(self, web: WebApp, name: str, password: str = PASSWORD) -> None:
        """Through the sign-in form, as a person would; back on the issues list."""
        from playwright.sync_api import expect

        self.page.goto(web.url("/desk/signin"))
        self.page.get_by_label("Name").fill(name)
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Sign in").click()
        expect(self.page.get_by_role("heading", name="Issues", exact=True)).to_be_visible()
