"""The public archive: only issues that went out, only their web version, no addresses."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from newsletter.config import Settings
from newsletter.models import IssueState
from newsletter.store import Store
from newsletter.web import create_app
from tests.servers.webapp import SITE, WebApp, add_issue, add_recipient


def web_html(title: str) -> str:
    return f"<!doctype html><html><body style=\"margin:0\"><h1>{title}</h1></body></html>"


@pytest.fixture
def published(store: Store) -> dict[str, int]:
    """One issue in every state, on two lists, with recipients whose addresses must not leak."""
    ids = {}
    for n, state in enumerate(IssueState):
        ids[str(state)] = add_issue(
            store, state=state, subject=f"Weekly {state}", web_html=web_html(f"Weekly {state}"),
            started_at=datetime(2026, 3, 1 + n, 8, tzinfo=UTC),
        )
        add_recipient(store, ids[str(state)], f"reader-{n}@example.org", message_id=f"m{n}")
    ids["daily"] = add_issue(
        store, list_id="daily", subject="Daily one", web_html=web_html("Daily one"),
        started_at=datetime(2026, 3, 20, 8, tzinfo=UTC),
    )
    ids["unrendered"] = add_issue(store, subject="Sent without a web version")
    return ids


@pytest.fixture
def web(settings: Settings, store: Store) -> Iterator[WebApp]:
    with WebApp(create_app(settings, store, site=SITE)) as running:
        yield running


VISIBLE = ("sent", "partially-failed", "sending")
HIDDEN = ("draft", "queued", "paused", "cancelled")


def test_index_lists_sent_issues_per_list(web: WebApp, published: dict[str, int]) -> None:
    page = web.session.get(web.url("/archive/"))

    assert page.status_code == 200
    for state in VISIBLE:
        assert f"Weekly {state}" in page.text
        assert f'href="/archive/weekly/{published[state]}"' in page.text
    for state in HIDDEN:
        assert f"Weekly {state}" not in page.text
    assert "Sent without a web version" not in page.text
    assert page.text.index("Daily notes") < page.text.index("Weekly digest")  # by list title
    assert '<time datetime="2026-03-20T08:00:00+00:00">2026-03-20</time>' in page.text


def test_list_page_orders_newest_first(web: WebApp, published: dict[str, int]) -> None:
    page = web.session.get(web.url("/archive/weekly/"))

    assert page.status_code == 200
    # Started on 6, 5 and 3 March (the fixture dates issues in IssueState order).
    newest_first = ["Weekly partially-failed", "Weekly sent", "Weekly sending"]
    positions = [page.text.index(subject) for subject in newest_first]
    assert positions == sorted(positions)
    assert web.session.get(web.url("/archive/nobody/")).status_code == 404


def test_issue_page_serves_the_web_version(web: WebApp, published: dict[str, int]) -> None:
    page = web.session.get(web.url(f"/archive/weekly/{published['sent']}"))

    assert page.status_code == 200
    assert page.text == web_html("Weekly sent")
    policy = page.headers["Content-Security-Policy"]
    assert "script-src" not in policy and "default-src 'none'" in policy
    assert "style-src 'unsafe-inline'" in policy
    assert page.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("state", HIDDEN)
def test_unsent_issues_are_not_found(web: WebApp, published: dict[str, int], state: str) -> None:
    assert web.session.get(web.url(f"/archive/weekly/{published[state]}")).status_code == 404


def test_an_issue_is_only_found_under_its_own_list(web: WebApp, published: dict[str, int]) -> None:
    assert web.session.get(web.url(f"/archive/daily/{published['sent']}")).status_code == 404
    assert web.session.get(web.url(f"/archive/weekly/{published['unrendered']}")).status_code == 404
    assert web.session.get(web.url("/archive/weekly/999999")).status_code == 404


def test_no_archive_page_shows_an_address(web: WebApp, published: dict[str, int]) -> None:
    paths = ["/archive/", "/archive/weekly/", "/archive/daily/", "/"]
    paths += [f"/archive/weekly/{published[state]}" for state in VISIBLE]
    for path in paths:
        page = web.session.get(web.url(path))
        assert page.status_code == 200, path
        assert "@" not in page.text, path
