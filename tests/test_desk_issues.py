"""The desk's issue pages over real HTTP, on SQLite and PostgreSQL: the list and its
filters, an issue's page, the state actions (the library's own functions, recorded as the
signed-in user), the state machine's refusals as messages, and the preview's isolation."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
import requests

from newsletter.editor import editing
from newsletter.store import issues as issue_store
from tests.desk_support import (
    ADMIN,
    EDITOR,
    XSS_TITLE,
    Desk,
    csrf_of,
    sign_in,
)
from tests.servers.webapp import WebApp


@pytest.fixture
def web(desk_web: WebApp) -> WebApp:
    return desk_web


def editor(web: WebApp, name: str = EDITOR) -> requests.Session:
    client = requests.Session()
    client.trust_env = False
    assert sign_in(web, name, session=client).status_code == 303
    return client


def act(web: WebApp, client: requests.Session, issue_id: int, action: str,
        page: str | None = None) -> requests.Response:
    """Press an action's button: the token comes from the issue's page (or ``page``)."""
    if page is None:
        page = client.get(web.url(f"/desk/issues/{issue_id}")).text
    return client.post(web.url(f"/desk/issues/{issue_id}/{action}"),
                       data={"csrf": csrf_of(page)}, allow_redirects=False)


def alert(response: requests.Response) -> str:
    """The text of the page's alert box, tags dropped and spaces squeezed."""
    found = re.search(r'<div class="alert" role="alert">(.*?)</div>', response.text, re.S)
    if not found:
        return ""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", found.group(1))).split())


def test_the_list_shows_each_issue_and_filters(desk: Desk, web: WebApp) -> None:
    client = editor(web)
    send_at = desk.clock.now + timedelta(days=2)
    editing.queue(desk.publisher, desk.issue_id, send_at)

    everything = client.get(web.url("/desk/issues")).text
    queued = client.get(web.url("/desk/issues"), params={"state": "queued"}).text
    other_list = client.get(web.url("/desk/issues"), params={"list": "every-article"}).text
    none_sent = client.get(web.url("/desk/issues"), params={"state": "sent"}).text
    nonsense = client.get(web.url("/desk/issues"), params={"state": "<b>", "list": "x" * 500})

    local = send_at.astimezone(ZoneInfo("Europe/London"))
    assert f"{local:%Y-%m-%d %H:%M %Z}" in everything  # the weekly list's time
    assert f'href="/desk/issues/{desk.issue_id}"' in everything
    assert f'href="/desk/issues/{desk.xss_issue_id}"' in everything
    assert f'href="/desk/issues/{desk.issue_id}"' in queued
    assert f'href="/desk/issues/{desk.xss_issue_id}"' not in queued
    assert f'href="/desk/issues/{desk.xss_issue_id}"' in other_list
    assert f'href="/desk/issues/{desk.issue_id}"' not in other_list
    assert "No issues match." in none_sent
    assert nonsense.status_code == 200 and "<b>" not in nonsense.text


def test_actions_call_the_library_and_record_who(desk: Desk, web: WebApp) -> None:
    client = editor(web)
    steps = [("queue", "queued"), ("pause", "paused"), ("resume", "queued"),
             ("unqueue", "draft"), ("cancel", "cancelled")]
    for action, state in steps:
        response = act(web, client, desk.issue_id, action)
        assert response.status_code == 303, (action, response.text)
        assert response.headers["Location"] == f"/desk/issues/{desk.issue_id}?done={action}"
        assert desk.state() == state, action
    with desk.store.engine.connect() as conn:
        history = issue_store.events(conn, desk.issue_id)
    assert [e["to"] for e in history] == ["draft", *[s for _, s in steps]]
    assert {e["by"] for e in history[1:]} == {f"desk:{EDITOR}"}
    page = client.get(web.url(f"/desk/issues/{desk.issue_id}")).text
    assert page.count(f"desk:{EDITOR}") == len(steps)
    done = client.get(web.url(f"/desk/issues/{desk.issue_id}?done=cancel")).text
    assert 'role="status">Cancelled.<' in done


def test_a_refused_move_shows_the_state_machines_message(desk: Desk, web: WebApp) -> None:
    client = editor(web)

    response = act(web, client, desk.issue_id, "pause")

    assert response.status_code == 409
    assert f"issue {desk.issue_id} is draft; it cannot become paused" in alert(response)
    assert desk.state() == "draft"


def test_two_editors_at_once_get_a_clear_message(desk: Desk, web: WebApp) -> None:
    first, second = editor(web), editor(web, ADMIN)
    page_first = first.get(web.url(f"/desk/issues/{desk.issue_id}")).text
    page_second = second.get(web.url(f"/desk/issues/{desk.issue_id}")).text

    cancelled = act(web, first, desk.issue_id, "cancel", page_first)
    late = act(web, second, desk.issue_id, "queue", page_second)

    assert cancelled.status_code == 303
    assert late.status_code == 409
    assert f"issue {desk.issue_id} is cancelled" in alert(late)
    assert desk.state() == "cancelled"


def test_the_checks_findings_are_shown_when_queueing_is_refused(
    desk: Desk, web: WebApp
) -> None:
    with desk.store.engine.connect() as conn:
        (article_id,) = issue_store.article_ids(conn, desk.xss_issue_id)
    editing.remove_article(desk.publisher, desk.xss_issue_id, article_id)
    client = editor(web)

    response = act(web, client, desk.xss_issue_id, "queue")

    assert response.status_code == 409
    assert "The pre-send checks refused to queue it:" in alert(response)
    assert "the issue is empty: no articles and no introduction" in alert(response)
    assert desk.state(desk.xss_issue_id) == "draft"


def test_an_unknown_issue_is_a_404_page(desk: Desk, web: WebApp) -> None:
    client = editor(web)
    page = client.get(web.url("/desk/issues"))

    shown = client.get(web.url("/desk/issues/999999"))
    acted = client.post(web.url("/desk/issues/999999/cancel"), data={"csrf": csrf_of(page.text)})

    assert shown.status_code == 404 and "There is no issue 999999." in shown.text
    assert acted.status_code == 404 and "There is no issue 999999." in acted.text
    huge = client.get(web.url("/desk/issues/" + "9" * 5000))
    assert huge.status_code == 404


def test_markup_in_titles_is_shown_as_text(desk: Desk, web: WebApp) -> None:
    client = editor(web)

    listing = client.get(web.url("/desk/issues")).text
    page = client.get(web.url(f"/desk/issues/{desk.xss_issue_id}")).text

    for text in (listing, page):
        assert XSS_TITLE not in text
    assert html.escape(XSS_TITLE) in page
    assert '<iframe class="preview" sandbox=""' in page


def test_the_preview_runs_nothing_even_opened_alone(desk: Desk, web: WebApp) -> None:
    client = editor(web)

    response = client.get(web.url(f"/desk/issues/{desk.xss_issue_id}/preview"))

    policy = response.headers["Content-Security-Policy"]
    assert response.status_code == 200
    assert "default-src 'none'" in policy and policy.endswith("sandbox")
    assert "script-src" not in policy and "frame-ancestors 'self'" in policy
    assert "<script>alert(1)</script>" not in response.text  # the renderer's sanitiser too
