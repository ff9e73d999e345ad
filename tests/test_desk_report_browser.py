"""A send watched in a real browser (the system's Chromium, driven by Playwright): the issues
list and the issue's page follow it to the end through ``progress.js``, then the report and
the recipients page and its CSV download; axe-core on each, screenshots at 1280 and 375 px
in the test's folder.

The send is held mid-way by the test's provider and let go on a condition; every wait in
the browser is Playwright's own (``expect``): nothing sleeps.
"""

from __future__ import annotations

import csv
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from newsletter.editor import report
from newsletter.models import DeliveryStatus, WebhookEvent
from newsletter.store import events as event_store
from tests.desk_browser import WIDTHS, Visit, needs_chromium
from tests.desk_sending import watched_send
from tests.desk_support import ADMIN, XSS_TITLE, Desk
from tests.servers.webapp import WebApp

pytestmark = needs_chromium
#: The progress script asks every two seconds: a few rounds at most between two checks.
LIVE_MS = 20_000


@pytest.fixture
def web(desk_web: WebApp) -> WebApp:
    return desk_web


def provider_events(desk: Desk) -> None:
    """Deliveries within the send's first hour, opens and a click in the next two."""
    start = desk.clock.now
    rows = report.recipients(desk.store, desk.issue_id, status="sent", limit=8).rows
    found = [
        WebhookEvent("gated", f"d{n}", DeliveryStatus.DELIVERED, r.address, r.message_id,
                     start + timedelta(minutes=5 + n))
        for n, r in enumerate(rows)
    ] + [
        WebhookEvent("gated", f"o{n}", DeliveryStatus.OPENED, r.address, r.message_id,
                     start + timedelta(hours=1, minutes=n))
        for n, r in enumerate(rows[:3])
    ] + [WebhookEvent("gated", "c0", DeliveryStatus.CLICKED, rows[0].address,
                      rows[0].message_id, start + timedelta(hours=2))]
    with desk.store.engine.begin() as conn:
        event_store.apply_events(conn, found, soft_bounce_limit=3, now=desk.store.now())


def test_an_editor_watches_a_send_to_its_end(
    desk: Desk, web: WebApp, browser: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    visit = Visit(browser, web, tmp_path)
    page = visit.page
    visit.sign_in(ADMIN)
    with watched_send(desk, hold_at=2) as send:
        assert send.provider.held.wait(60), "the second batch never went out"
        page.reload()
        row = page.locator("table.issues tr", has_text="sending")
        expect(row.locator('[data-field="percent"]')).to_have_text("26 %")  # 6 of 23
        visit.check("issues-sending")

        row.get_by_role("link").click()
        block = page.locator("section.progress")
        expect(block.locator('[data-field="sent"]')).to_have_text("5")
        expect(block.locator('[data-field="pending"]')).to_have_text("17")
        expect(block.locator("progress")).to_have_attribute("value", "6")
        visit.check("issue-sending")

        send.finish()
        expect(block.locator('[data-field="pending"]')).to_have_text("0", timeout=LIVE_MS)
    expect(block).to_have_attribute("data-live", "no", timeout=LIVE_MS)
    expect(block.locator('[data-field="sent"]')).to_have_text("21")
    expect(block.locator('[data-field="failed"]')).to_have_text("1")
    expect(block.locator('[data-field="announce"]')).to_have_text(
        "Partially failed: 23 of 23 recipients done.")
    assert block.locator("progress").evaluate("bar => [bar.value, bar.max]") == [23, 23]

    provider_events(desk)
    block.get_by_role("link", name="Report").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Report on issue")
    expect(page.locator("svg.chart")).to_have_count(3)
    expect(page.get_by_role("row", name="delivered 8")).to_be_visible()
    visit.check("report")

    page.get_by_role("link", name="search them").click()
    page.get_by_label("Address starts with").fill("READER.1")
    page.get_by_label("Status").select_option("sent")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("table.recipients tbody tr")).to_have_count(9)  # 10–19 but 11
    visit.check("recipients")

    with page.expect_download() as caught:
        page.get_by_role("link", name="Download every recipient with the status sent").click()
    saved = tmp_path / caught.value.suggested_filename
    caught.value.save_as(saved)
    rows = list(csv.DictReader(saved.read_text(encoding="utf-8").splitlines()))
    assert saved.name == f"issue-{desk.issue_id}-sent-recipients.csv"
    assert {r["status"] for r in rows} == {"sent"}  # all of them, not only the search's
    assert len(rows) == dict(report.report(desk.store, desk.issue_id).outcomes)["sent"] > 9

    page.get_by_label("Address starts with").fill(XSS_TITLE)
    page.get_by_role("button", name="Search").click()
    expect(page.locator("span.query")).to_have_text(XSS_TITLE)
    expect(page.get_by_label("Address starts with")).to_have_value(XSS_TITLE)
    assert page.locator("img[src=x]").count() == 0

    assert visit.dialogs == []
    for name in visit.checked:
        for width in WIDTHS:
            assert (tmp_path / f"{name}-{width}.png").stat().st_size > 1000
    visit.context.close()
