"""Screenshots of the reader pages for the docs: signing up, one's own page, the archive.

    python bench/reader_screenshot.py [--out docs]

Builds a demo publication from this repository's example in a temporary folder (SQLite,
the outbox provider), collects its articles and sends the weekly digest, then serves the
app with ``newsletter serve`` on 127.0.0.1. The system's Chromium (``/usr/bin/chromium``,
driven by Playwright) fills the weekly list's sign-up form, opens the confirmation link the
outbox received and confirms, opens the "Manage your subscription" link of the weekly
issue's email, and visits the archive. Each page is saved as the window shows it, at
1280 px and on a 375 px phone (``SHOTS``). Nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from desk import served
from desk_screenshot import CHROMIUM, only_local, shoot
from send import REPO, example_home

from newsletter.config import load_settings
from newsletter.editor import editing
from newsletter.publisher import Publisher
from newsletter.store import Store

#: The outbox, and no wait before the form may be sent: a script fills it in at once.
ENVIRONMENT = {"NEWSLETTER_PROVIDER": "outbox", "NEWSLETTER_SIGNUP_MIN_SECONDS": "0"}
SERVING = {**ENVIRONMENT, "NEWSLETTER_PUBLIC_URL": "http://127.0.0.1"}
READER = "rowan.price@example.org"
LINK = re.compile(r"http://127\.0\.0\.1\S*/(?:subscribe/weekly/confirm|subscription)/\S+")
#: Each page: its file stem, and what the browser does to reach it.
WIDTHS = (("", 1280, 900), ("-phone", 375, 812))


def prepare(home: Path) -> int:
    """Collect, draft the weekly and send it to the end; its id."""
    settings = load_settings(home, environ=SERVING)
    store = Store.open(settings.database_url)
    try:
        publisher = Publisher(settings, store)
        publisher.collect()
        [issue_id] = publisher.draft("weekly")
        editing.queue(publisher, issue_id, force=True)  # its links are http on the loopback
        for report in publisher.send_due():
            print(f"issue {report.issue_id}: {report.final_state}", file=sys.stderr)
        return issue_id
    finally:
        store.close()


def messages(folder: Path) -> list[EmailMessage]:
    parsed = []
    for path in sorted(folder.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        parsed.append(message)
    return parsed


def link_of(message: EmailMessage, base: str) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    found = LINK.search(str(body.get_content()))
    assert found, "no link of ours in the message"
    return re.sub(r"^http://127\.0\.0\.1", base, found.group(0))


def wait_for(find: Callable[[], list[EmailMessage]], seconds: float = 30) -> EmailMessage:
    """The first message ``find`` returns, once the server's sender has written it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = find()
        if found:
            return found[0]
        time.sleep(0.1)
    raise SystemExit("no confirmation reached the outbox")


def sign_up(page: Any, base: str, outbox: Path) -> None:
    page.goto(f"{base}/subscribe/weekly")
    page.get_by_label("Email address").fill(READER)
    page.get_by_label("Name").fill("Rowan Price")


def confirm(page: Any, base: str, outbox: Path) -> None:
    from playwright.sync_api import expect

    sign_up(page, base, outbox)
    page.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
    message = wait_for(lambda: messages(outbox / "readers-weekly"))
    page.goto(link_of(message, base))
    page.get_by_role("button", name="Confirm subscription").click()
    expect(page.get_by_role("heading", name="You are subscribed")).to_be_visible()


def preferences(issue_id: int) -> Callable[[Any, str, Path], None]:
    def visit(page: Any, base: str, outbox: Path) -> None:
        page.goto(link_of(messages(outbox / f"issue-{issue_id}-weekly")[0], base))
    return visit


def archive_issue(issue_id: int) -> Callable[[Any, str, Path], None]:
    def visit(page: Any, base: str, outbox: Path) -> None:
        page.goto(f"{base}/archive/weekly/{issue_id}")
    return visit


def archive_list(page: Any, base: str, outbox: Path) -> None:
    page.goto(f"{base}/archive/weekly/")


def photograph(base: str, outbox: Path, issue_id: int, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    pages: list[tuple[str, Callable[[Any, str, Path], None]]] = [
        ("reader-signup", sign_up),
        ("reader-preferences", preferences(issue_id)),
        ("archive-list", archive_list),
        ("archive-issue", archive_issue(issue_id)),
    ]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            confirmed = browser.new_context()
            confirmed.route("**/*", only_local(base))
            confirm(confirmed.new_page(), base, outbox)  # the reader is on the list now
            confirmed.close()
            for stem, reach in pages:
                for suffix, width, height in WIDTHS:
                    shoot(browser, base, (width, height), out / f"{stem}{suffix}.png",
                          lambda page, reach=reach: reach(page, base, outbox))
        finally:
            browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs")
    args = parser.parse_args()
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="reader-shot-") as root:
        home = example_home(Path(root))
        issue_id = prepare(home)
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
        outbox = load_settings(home, environ=SERVING).outbox_path
        with served(home, {**env, **SERVING}, workers=1) as (base, _):
            photograph(base, outbox, issue_id, out)


if __name__ == "__main__":
    main()
