"""Screenshots of the desk for the docs: an issue's page at 1280 px and on a 375 px phone.

    python bench/desk_screenshot.py [--out docs]

Builds a demo publication from this repository's example in a temporary folder (SQLite,
the outbox provider, an admin account), collects its articles, drafts the weekly digest
and sends it to the end, then serves the app with ``newsletter serve`` on 127.0.0.1. The
system's Chromium (``/usr/bin/chromium``, driven by Playwright) signs in through the
sign-in form and photographs the weekly issue's page as the browser's window shows it:
``desk-issue.png`` (1280 px wide) and ``desk-phone.png`` (375 px). Nothing leaves the
machine: the page's policy and the browser refuse any other address.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from desk import served
from send import REPO, example_home

from newsletter.config import load_settings
from newsletter.editor import editing
from newsletter.publisher import Publisher
from newsletter.store import Store
from newsletter.web.desk import accounts

CHROMIUM = "/usr/bin/chromium"
#: Paint the sandboxed preview frames with the page (headless Chromium would leave them
#: blank in a screenshot taken as soon as they come into view).
CHROMIUM_ARGS = ["--disable-features=IsolateSandboxedIframes"]
USER, PASSWORD = "ada", "a demo password, long enough"
#: The publication's settings: the outbox, so nothing leaves the machine.
ENVIRONMENT = {"NEWSLETTER_PROVIDER": "outbox"}
#: Served over plain http on the loopback, where the session cookie goes without ``Secure``.
SERVING = {**ENVIRONMENT, "NEWSLETTER_PUBLIC_URL": "http://127.0.0.1"}
#: Each picture: its file, the window's width and height.
SHOTS = (("desk-issue.png", 1280, 960), ("desk-phone.png", 375, 812))




def prepare(home: Path) -> int:
    """Collect, draft the weekly, send it to the end; an admin to sign in as. Its id."""
    settings = load_settings(home, environ=ENVIRONMENT)
    store = Store.open(settings.database_url)
    try:
        publisher = Publisher(settings, store)
        publisher.collect()
        [issue_id] = publisher.draft("weekly")
        editing.queue(publisher, issue_id)
        for report in publisher.send_due():
            print(f"issue {report.issue_id}: {report.final_state} {report.counts}",
                  file=sys.stderr)
        accounts.add(store, USER, "admin", PASSWORD)
        return issue_id
    finally:
        store.close()


def sign_in(page: Any, base: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{base}/desk/signin")
    page.get_by_label("Name").fill(USER)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Issues", exact=True)).to_be_visible()


def only_local(base: str) -> Any:
    def route(request_route: Any) -> None:
        if request_route.request.url.startswith(base):
            request_route.continue_()
        else:
            request_route.abort()
    return route


def shoot(browser: Any, base: str, size: tuple[int, int], path: Path,
          reach: Callable[[Any], None]) -> None:
    """A window of ``size`` that may only reach ``base``, brought to a page by ``reach``,
    saved as ``path``."""
    width, height = size
    context = browser.new_context(viewport={"width": width, "height": height})
    context.route("**/*", only_local(base))
    try:
        page = context.new_page()
        reach(page)
        page.screenshot(path=path)
        print(path)
    finally:
        context.close()


def photograph(base: str, issue_id: int, out: Path) -> None:
    """Sign in, open the issue's page and save each of ``SHOTS``."""
    from playwright.sync_api import expect, sync_playwright

    def issue_page(page: Any) -> None:
        sign_in(page, base)
        page.goto(f"{base}/desk/issues/{issue_id}")
        expect(page.locator("section.progress")).to_have_attribute("data-live", "no")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=CHROMIUM_ARGS)
        try:
            for name, width, height in SHOTS:
                shoot(browser, base, (width, height), out / name, issue_page)
        finally:
            browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs")
    args = parser.parse_args()
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="desk-shot-") as root:
        home = example_home(Path(root))
        issue_id = prepare(home)
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
        with served(home, {**env, **SERVING}, workers=1) as (base, _):
            photograph(base, issue_id, out)


if __name__ == "__main__":
    main()
