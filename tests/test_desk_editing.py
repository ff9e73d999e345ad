"""An issue's page over real HTTP (uvicorn, SQLite and PostgreSQL): editing a draft's words
and articles, the two previews and the text part, the pre-send checks, a test send to the
outbox, queueing at a local time (daylight saving and the past refused), a new send time,
and retries of failed and unknown recipients — each the library's own function, recorded
as the signed-in editor, each refusal a 409 or a 422 naming the field. Ends with the page
in a real browser: both previews, axe-core at 375 and 1280 px, screenshots.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from newsletter.devtools.fakeprovider import FakeProviderServer, Fault, FaultKind
from newsletter.editor import editing
from newsletter.publisher import Publisher
from newsletter.store import issues as issue_store
from newsletter.web import create_app
from tests.desk_browser import Visit, needs_chromium
from tests.desk_support import (
    ADMIN,
    DESK_SITE,
    EDITOR,
    PASSWORD,
    XSS_TITLE,
    Desk,
    alert_of,
    csrf_of,
    signed_in,
)
from tests.servers.webapp import WebApp
from tests.test_desk_http import post_routes

LONDON = ZoneInfo("Europe/London")  # the weekly list's timezone
OPERATIONS = ("edit", "add-article", "move-article", "remove-article", "test", "queue",
              "reschedule", "retry", "retry-unknown")


@pytest.fixture
def web(desk_web: WebApp) -> WebApp:
    return desk_web


@pytest.fixture
def client(web: WebApp) -> requests.Session:
    return signed_in(web)


def page(web: WebApp, client: requests.Session, issue_id: int) -> requests.Response:
    response = client.get(web.url(f"/desk/issues/{issue_id}"))
    assert response.status_code == 200, response.text
    return response


def submit(web: WebApp, client: requests.Session, issue_id: int, operation: str,
           **fields: str) -> requests.Response:
    """Fill in one of the page's forms and send it, its token taken from the page."""
    token = csrf_of(page(web, client, issue_id).text)
    return client.post(web.url(f"/desk/issues/{issue_id}/{operation}"),
                       data={"csrf": token, **fields}, allow_redirects=False)


def followed(web: WebApp, client: requests.Session, response: requests.Response) -> str:
    """The page a 303 leads to."""
    assert response.status_code == 303, alert_of(response) or response.text[:500]
    return client.get(web.url(response.headers["Location"])).text


def notice(text: str) -> str:
    found = re.search(r'<p class="notice" role="status">(.*?)</p>', text, re.S)
    return html.unescape(found.group(1)) if found else ""


def field_error(response: requests.Response, field: str) -> str:
    found = re.search(rf'<p class="field-error" id="{field}-error">(.*?)</p>', response.text,
                      re.S)
    return html.unescape(found.group(1)) if found else ""


def marked_invalid(response: requests.Response, input_id: str, field: str) -> bool:
    """The input says it is invalid and points to its field's message."""
    tag = re.search(rf'<(?:input|select|textarea)[^>]*\bid="{input_id}"[^>]*>', response.text)
    assert tag, f"no input {input_id}"
    described = re.search(r'aria-describedby="([^"]*)"', tag.group(0))
    return ('aria-invalid="true"' in tag.group(0) and described is not None
            and f"{field}-error" in described.group(1).split())


def record(desk: Desk, issue_id: int | None = None) -> issue_store.IssueRecord:
    with desk.store.engine.connect() as conn:
        return issue_store.get(conn, issue_id or desk.issue_id)


def words(desk: Desk, issue_id: int | None = None) -> tuple[str, str, str, str]:
    found = record(desk, issue_id)
    return found.state, found.subject, found.preheader, found.intro_md


def history(desk: Desk, issue_id: int | None = None) -> list[dict[str, object]]:
    with desk.store.engine.connect() as conn:
        return issue_store.events(conn, issue_id or desk.issue_id)


def article_ids(desk: Desk, issue_id: int | None = None) -> list[int]:
    with desk.store.engine.connect() as conn:
        return issue_store.article_ids(conn, issue_id or desk.issue_id)


def last_sunday(year: int, month: int) -> date:
    day = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
    return day - timedelta(days=(day.weekday() + 1) % 7)


# -- the routes ------------------------------------------------------------------------------
def test_every_form_is_a_guarded_route_the_attack_tests_cover(
    desk: Desk, web: WebApp, client: requests.Session
) -> None:
    covered = post_routes(desk)  # what tests/test_desk_http.py attacks without a token
    before = (words(desk), history(desk), article_ids(desk))
    for name in OPERATIONS:
        path = f"/desk/issues/{desk.issue_id}/{name}"
        assert path in covered, name
        forged = client.post(web.url(path), data={"subject": "Forged", "addresses":
                             "x@example.org", "confirm": "1"}, allow_redirects=False)
        assert forged.status_code == 403, name
        assert "did not come from the desk" in forged.text
    assert (words(desk), history(desk), article_ids(desk)) == before
    outbox = desk.settings.var_dir / "outbox"
    assert not outbox.exists() or not any(outbox.rglob("*.eml"))


# -- words -----------------------------------------------------------------------------------
def test_the_words_of_a_draft_are_edited_and_previewed(
    desk: Desk, web: WebApp, client: requests.Session
) -> None:
    shown = page(web, client, desk.issue_id).text
    old = record(desk)
    assert f'value="{html.escape(old.subject)}"' in shown  # the form is filled in
    assert f'value="{html.escape(old.preheader)}"' in shown

    response = submit(web, client, desk.issue_id, "edit", subject="Storm special",
                      preheader="Read before Monday", intro="Hello **harbour** people.\r\n")

    after = followed(web, client, response)
    assert notice(after) == ("Saved: subject, preheader, introduction. The preview shows the "
                             "issue as it is now.")
    now = record(desk)
    assert (now.subject, now.preheader, now.intro_md) == (
        "Storm special", "Read before Monday", "Hello **harbour** people.\n")
    assert history(desk)[-1]["by"] == f"desk:{EDITOR}"
    assert history(desk)[-1]["note"] == "edited subject, preheader, intro_md"
    assert "Hello *harbour* people." in after  # the text part, as sent
    preview = client.get(web.url(f"/desk/issues/{desk.issue_id}/preview")).text
    assert "<strong>harbour</strong>" in preview
    again = submit(web, client, desk.issue_id, "edit", subject=" Storm special ",
                   preheader="Read before Monday", intro="Hello **harbour** people.\r\n")
    assert notice(followed(web, client, again)) == "Nothing changed."


def test_words_too_long_are_refused_beside_their_field_keeping_what_was_typed(
    desk: Desk, web: WebApp, client: requests.Session
) -> None:
    before = words(desk)

    response = submit(web, client, desk.issue_id, "edit", subject="S" * 501,
                      preheader="kept", intro="An intro I typed")

    assert response.status_code == 422
    assert field_error(response, "subject") == "Subject: at most 500 characters (this has 501)"
    assert marked_invalid(response, "subject", "subject")
    assert not marked_invalid(response, "intro", "intro")
    assert ">An intro I typed</textarea>" in response.text
    assert 'href="#subject"' in response.text  # the alert leads to the field
    assert words(desk) == before


def test_a_queued_issue_is_not_edited(
    desk: Desk, web: WebApp, client: requests.Session
) -> None:
    editing.queue(desk.publisher, desk.issue_id)
    shown = page(web, client, desk.issue_id).text
    assert "back to draft to edit" in shown
    assert f'action="/desk/issues/{desk.issue_id}/edit"' not in shown

    response = client.post(web.url(f"/desk/issues/{desk.issue_id}/edit"), data={
        "csrf": csrf_of(shown), "subject": "Too late", "preheader": "", "intro": ""})

    assert response.status_code == 409
    assert f"issue {desk.issue_id} is queued; only drafts can be edited" in alert_of(response)
    assert record(desk).subject != "Too late"


# -- articles --------------------------------------------------------------------------------
def test_articles_are_moved_removed_and_added_back_at_the_end(
    desk: Desk, web: WebApp, client: requests.Session
) -> None:
    first, second, *rest = article_ids(desk)

    down = submit(web, client, desk.issue_id, "move-article", article=str(first), position="2")
    assert "to position 2." in notice(followed(web, client, down))
    assert article_ids(desk) == [second, first, *rest]
    up = submit(web, client, desk.issue_id, "move-article", article=str(first), position="1")
    followed(web, client, up)
    assert article_ids(desk) == [first, second, *rest]

    removed = submit(web, client, desk.issue_id, "remove-article", article=str(first))
    after = followed(web, client, removed)
    assert article_ids(desk) == [second, *rest]
    assert f"({len(rest) + 1} articles left); a later issue may take it." in notice(after)
    option = re.search(rf'<option value="{first}">([^<]*)</option>', after)
    assert option, "the removed article is offered again"
    assert re.search(r" — articles, \d{4}-\d\d-\d\d$", html.unescape(option.group(1)))

    added = submit(web, client, desk.issue_id, "add-article", article=str(first))
    assert notice(followed(web, client, added)).endswith(
        f"at position {len(rest) + 2} of {len(rest) + 2}.")
    assert article_ids(desk) == [second, *rest, first]
    notes = [e["note"] for e in history(desk)[-4:]]
    assert notes[-1] == f"article {first} added at position {len(rest) + 2}"
    assert {e["by"] for e in history(desk)[-4:]} == {f"desk:{EDITOR}"}
    shown = page(web, client, desk.issue_id).text
    assert shown.count(">Move up<") == len(rest) + 1  # not on the first
    assert shown.count(">Move down<") == len(rest) + 1  # not on the last


def test_an_article_the_list_has_is_added_only_again_on_purpose(
    desk: Desk, web: WebApp, client: requests.Session
) -> None:
    first, second, *_ = article_ids(desk)
    (other,) = editing.draft(desk.publisher, "weekly", article_ids=[first], again=True)
    shown = page(web, client, other).text
    assert f"(already in issue {desk.issue_id}, draft)" in shown

    refused = submit(web, client, other, "add-article", article=str(second))

    assert refused.status_code == 422
    assert field_error(refused, "article") == (
        f"article {second} is already in issue {desk.issue_id} of weekly (draft); tick “Add "
        "it again” and add it to put it in another issue too")
    assert marked_invalid(refused, "article", "article")
    assert f'<option value="{second}" selected>' in refused.text
    assert article_ids(desk, other) == [first]

    added = submit(web, client, other, "add-article", article=str(second), again="1")
    followed(web, client, added)
    assert article_ids(desk, other) == [first, second]


@pytest.mark.parametrize(("fields", "message"), [
    ({"article": ""}, "Article: choose one to add"),
    ({"article": "x1"}, "article: 'x1' is not a whole number"),
    ({"article": "999999"}, "no article with id 999999"),
])
def test_a_bad_article_choice_is_named(
    desk: Desk, web: WebApp, client: requests.Session, fields: dict[str, str], message: str
) -> None:
    response = submit(web, client, desk.xss_issue_id, "add-article", **fields)

    assert response.status_code == 422
    assert field_error(response, "article") == message
    assert marked_invalid(response, "article", "article")


def test_a_move_from_a_stale_page_is_refused_with_the_reason(
    desk: Desk, web: WebApp, client: requests.Session
) -> None:
    ids = article_ids(desk)
    shown = page(web, client, desk.issue_id).text
    editing.remove_article(desk.publisher, desk.issue_id, ids[-1])  # another editor

    gone = client.post(web.url(f"/desk/issues/{desk.issue_id}/remove-article"),
                       data={"csrf": csrf_of(shown), "article": str(ids[-1])})
    too_far = client.post(web.url(f"/desk/issues/{desk.issue_id}/move-article"), data={
        "csrf": csrf_of(shown), "article": str(ids[0]), "position": str(len(ids))})

    assert gone.status_code == 409
    assert f"article {ids[-1]} is not in issue {desk.issue_id}" in alert_of(gone)
    assert too_far.status_code == 409
    assert (f"position {len(ids)}: issue {desk.issue_id} has {len(ids) - 1} articles; give 1 "
            f"to {len(ids) - 1}") in alert_of(too_far)
    assert article_ids(desk) == ids[:-1]


# -- preview and checks ----------------------------------------------------------------------
def test_the_page_shows_two_sandboxed_previews_and_the_text_part(
    desk: Desk, web: WebApp, client: requests.Session
) -> None:
    shown = page(web, client, desk.issue_id).text

    frames = re.findall(r"<iframe [^>]*>", shown)
    assert len(frames) == 2
    assert all('sandbox=""' in f and f'src="/desk/issues/{desk.issue_id}/preview"' in f
               for f in frames)
    assert 'class="preview"' in frames[0] and "600 pixels wide" in frames[0]
    assert 'class="preview-phone"' in frames[1] and "375 pixels wide" in frames[1]
    text = re.search(r'<pre class="text-part"[^>]*>(.*?)</pre>', shown, re.S)
    assert text and "View this email in your browser" in text.group(1)
    assert "/unsubscribe/" in text.group(1)


def test_the_checks_errors_and_warnings_are_listed_and_a_warning_can_be_overridden(
    desk: Desk, web: WebApp, client: requests.Session
) -> None:
    clean = page(web, client, desk.issue_id).text
    assert "No errors and no warnings: the issue is ready to queue." in clean
    assert 'name="force"' not in clean
    editing.edit(desk.publisher, desk.issue_id, subject="A subject " + "much " * 20 + "too long")

    warned = page(web, client, desk.issue_id).text
    refused = submit(web, client, desk.issue_id, "queue")

    assert re.search(r'<ul class="findings warnings"><li>the subject is \d+ characters', warned)
    assert "Queue despite the warnings" in warned
    assert refused.status_code == 409
    assert alert_of(refused).startswith("The pre-send checks refused to queue it: warning:")
    assert record(desk).state == "draft"
    forced = submit(web, client, desk.issue_id, "queue", force="1")
    assert notice(followed(web, client, forced)) == "Queued despite 1 warning."
    assert record(desk).state == "queued"


def test_errors_are_never_overridden(
    desk: Desk, web: WebApp, client: requests.Session
) -> None:
    (article_id,) = article_ids(desk, desk.xss_issue_id)
    editing.remove_article(desk.publisher, desk.xss_issue_id, article_id)
    shown = page(web, client, desk.xss_issue_id).text
    assert '<ul class="findings errors"><li>the issue is empty' in shown

    forced = submit(web, client, desk.xss_issue_id, "queue", force="1")

    assert forced.status_code == 409
    assert "the issue is empty: no articles and no introduction" in alert_of(forced)
    assert record(desk, desk.xss_issue_id).state == "draft"


# -- test sends ------------------------------------------------------------------------------
def outbox_messages(desk: Desk, issue_id: int) -> dict[str, bytes]:
    folder = desk.settings.var_dir / "outbox" / f"test-issue-{issue_id}-weekly"
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.eml"))}


@pytest.fixture
def testers_web(desk: Desk) -> Iterator[WebApp]:
    """The desk with two test recipients set (NEWSLETTER_TEST_RECIPIENTS)."""
    settings = desk.settings.with_changes(
        test_recipients=("proof@example.org", "second.proof@example.org"))
    with WebApp(create_app(settings, desk.store, site=DESK_SITE)) as running:
        yield running


def test_a_test_goes_to_the_test_recipients_marked_test(
    desk: Desk, testers_web: WebApp
) -> None:
    client = signed_in(testers_web)
    shown = page(testers_web, client, desk.issue_id).text
    assert "Leave empty for the test recipients: proof@example.org, second.proof@example.org" \
        in shown

    response = submit(testers_web, client, desk.issue_id, "test", addresses="")

    assert notice(followed(testers_web, client, response)) == (
        "Test sent through outbox, marked [TEST], to proof@example.org, "
        "second.proof@example.org. The provider said: proof@example.org: sent; "
        "second.proof@example.org: sent.")
    sent = outbox_messages(desk, desk.issue_id)
    assert sorted(sent) == ["test-1-proof@example.org.eml", "test-2-second.proof@example.org.eml"]
    assert all(b"[TEST]" in message for message in sent.values())
    assert record(desk).state == "draft"


def test_a_test_goes_to_typed_addresses_each_checked(
    desk: Desk, web: WebApp, client: requests.Session
) -> None:
    refused = submit(web, client, desk.issue_id, "test",
                     addresses="good@example.org, not-an-address")
    nobody = submit(web, client, desk.issue_id, "test", addresses="  ")

    assert refused.status_code == 422
    assert field_error(refused, "addresses").startswith(
        "Send to: 'not-an-address' is not an email address: ")
    assert marked_invalid(refused, "addresses", "addresses")
    assert 'value="good@example.org, not-an-address"' in refused.text
    assert nobody.status_code == 422
    assert field_error(nobody, "addresses") == (
        "Send to: give an address; no test recipients are set (NEWSLETTER_TEST_RECIPIENTS)")
    assert outbox_messages(desk, desk.issue_id) == {}

    sent = submit(web, client, desk.issue_id, "test",
                  addresses="Editor@Example.org;\nsub@example.org")
    assert "to Editor@example.org, sub@example.org." in notice(followed(web, client, sent))
    assert len(outbox_messages(desk, desk.issue_id)) == 2


# -- queueing at a local time ----------------------------------------------------------------
def test_queue_at_a_date_and_time_in_the_lists_timezone(
    desk: Desk, web: WebApp, client: requests.Session
) -> None:
    day = desk.clock.now.astimezone(LONDON).date() + timedelta(days=3)
    shown = page(web, client, desk.issue_id).text
    assert "Send time, in Europe/London" in shown and 'type="date"' in shown

    response = submit(web, client, desk.issue_id, "queue", date=f"{day}", time="09:15")

    expected = datetime(day.year, day.month, day.day, 9, 15, tzinfo=LONDON)
    offset = "UTC+01:00" if expected.dst() else "UTC+00:00"
    utc = expected.astimezone(ZoneInfo("UTC"))
    assert notice(followed(web, client, response)) == (
        f"Queued for {day} 09:15 Europe/London ({offset}; {utc:%Y-%m-%d %H:%M} UTC).")
    assert record(desk).state == "queued" and record(desk).send_at == expected
    assert history(desk)[-1]["by"] == f"desk:{EDITOR}"


def test_a_daylight_saving_gap_and_the_past_are_refused(
    desk: Desk, web: WebApp, client: requests.Session
) -> None:
    spring = last_sunday(desk.clock.now.year + 1, 3)
    yesterday = desk.clock.now.astimezone(LONDON).date() - timedelta(days=1)

    gap = submit(web, client, desk.issue_id, "queue", date=f"{spring}", time="01:30")
    past = submit(web, client, desk.issue_id, "queue", date=f"{yesterday}", time="08:00")
    half = submit(web, client, desk.issue_id, "queue", date=f"{spring}", time="")

    assert gap.status_code == 422
    assert field_error(gap, "when") == (
        f"Send time {spring} 01:30 does not exist in Europe/London: the clocks go forward "
        "from 01:00 to 02:00 that night (a daylight-saving gap); give a time outside it")
    assert marked_invalid(gap, "date", "when") and marked_invalid(gap, "time", "when")
    assert f'value="{spring}"' in gap.text and 'value="01:30"' in gap.text
    assert past.status_code == 422
    assert field_error(past, "when").startswith(f"Send time {yesterday} 08:00 Europe/London")
    assert "is in the past: it is now" in field_error(past, "when")
    assert half.status_code == 422
    assert field_error(half, "when") == (
        "Send time: give a time too, or neither to send at the next send")
    assert record(desk).state == "draft" and len(history(desk)) == 1


def test_a_repeated_autumn_time_is_taken_with_its_note(
    desk: Desk, web: WebApp, client: requests.Session
) -> None:
    autumn = last_sunday(desk.clock.now.year + 1, 10)

    response = submit(web, client, desk.issue_id, "queue", date=f"{autumn}", time="01:30")

    told = notice(followed(web, client, response))
    assert told.startswith(f"Queued for {autumn} 01:30 Europe/London (UTC+01:00; ")
    assert (f"{autumn} 01:30 happens twice in Europe/London (the clocks go back at 02:00): the "
            f"first is taken, UTC+01:00; for the second give '{autumn} 01:30+00:00'.") in told
    assert record(desk).send_at == datetime(autumn.year, autumn.month, autumn.day, 0, 30,
                                            tzinfo=ZoneInfo("UTC"))


def test_a_queued_issue_gets_a_new_time_or_the_next_send(
    desk: Desk, web: WebApp, client: requests.Session
) -> None:
    day = desk.clock.now.astimezone(LONDON).date() + timedelta(days=5)
    editing.queue_local(desk.publisher, desk.issue_id, f"{day} 08:00")
    shown = page(web, client, desk.issue_id).text
    assert f'value="{day}"' in shown and 'value="08:00"' in shown  # the time it has

    later = submit(web, client, desk.issue_id, "reschedule", date=f"{day}", time="18:45")
    assert notice(followed(web, client, later)).startswith(
        f"Send time changed to {day} 18:45 Europe/London")
    assert record(desk).send_at == datetime(day.year, day.month, day.day, 18, 45, tzinfo=LONDON)
    past = submit(web, client, desk.issue_id, "reschedule", date="2020-01-06", time="08:00")
    assert past.status_code == 422 and "is in the past" in field_error(past, "when")
    now = submit(web, client, desk.issue_id, "reschedule", date="", time="")
    assert notice(followed(web, client, now)) == "It goes out at the next send."
    assert record(desk).send_at is None and record(desk).state == "queued"
    assert history(desk)[-1]["by"] == f"desk:{EDITOR}"

    editing.unqueue(desk.publisher, desk.issue_id)
    draft = submit(web, client, desk.issue_id, "reschedule", date=f"{day}", time="08:00")
    assert draft.status_code == 409
    assert "only a queued issue can be rescheduled" in alert_of(draft)


# -- retries ---------------------------------------------------------------------------------
def sent_with_trouble(desk: Desk, server: FakeProviderServer) -> dict[str, int]:
    """Send the weekly issue through SendGrid's fake: one member's name would break a header
    (failed), and the connection of one request dies after it was taken (unknown)."""
    members = desk.settings.subscribers_dir / "weekly.csv"
    with members.open("a", encoding="utf-8") as out:
        out.write('eve@example.org,"Eve Mallory\r\nBcc: all@attacker.example",Truro\n')
    settings = desk.settings.with_changes(provider="sendgrid", batch_size=3,
                                          **server.settings_values())
    publisher = Publisher(settings, desk.store)
    editing.queue(publisher, desk.issue_id)
    server.faults.push("sendgrid", Fault(FaultKind.RESET, nth=2))
    report = publisher.send_issue(desk.issue_id)
    assert report.final_state == "partially-failed"
    assert report.counts["failed"] == 1 and report.counts["unknown"] >= 1
    return report.counts


def test_failed_and_unknown_recipients_are_retried_apart(
    desk: Desk, web: WebApp, client: requests.Session, server: FakeProviderServer
) -> None:
    assert "/retry" not in page(web, client, desk.issue_id).text  # nothing to retry yet
    counts = sent_with_trouble(desk, server)
    shown = page(web, client, desk.issue_id).text
    assert "Retry 1 failed" in shown and f"Retry {counts['unknown']} unknown" in shown
    assert "some of these readers may get the issue twice" in shown

    unticked = submit(web, client, desk.issue_id, "retry-unknown")
    assert unticked.status_code == 422
    assert field_error(unticked, "confirm") == ("Tick the box to say you accept that some of "
                                                "these readers may get the issue twice")
    assert marked_invalid(unticked, "confirm", "confirm")
    assert record(desk).state == "partially-failed"

    failed = submit(web, client, desk.issue_id, "retry")
    assert notice(followed(web, client, failed)) == (
        "Queued again for 1 failed recipient, at the next send.")
    assert record(desk).state == "queued"
    assert history(desk)[-1]["note"] == "retry 1 failed"
    assert history(desk)[-1]["by"] == f"desk:{EDITOR}"
    again = submit(web, client, desk.issue_id, "retry")
    assert again.status_code == 409
    assert alert_of(again) == "No failed recipients are left to retry."


def test_unknown_recipients_are_retried_once_the_risk_is_accepted(
    desk: Desk, web: WebApp, client: requests.Session, server: FakeProviderServer
) -> None:
    counts = sent_with_trouble(desk, server)

    response = submit(web, client, desk.issue_id, "retry-unknown", confirm="1")

    unknown = counts["unknown"]
    assert notice(followed(web, client, response)) == (
        f"Queued again for {unknown} unknown recipient{'' if unknown == 1 else 's'}, at the "
        "next send.")
    assert history(desk)[-1]["note"] == f"retry {counts['unknown']} unknown"


# -- hostile markup --------------------------------------------------------------------------
def test_the_hostile_article_stays_text_in_every_part_of_the_page(
    desk: Desk, web: WebApp, client: requests.Session
) -> None:
    (hostile,) = article_ids(desk, desk.xss_issue_id)
    offered = page(web, client, desk.issue_id)
    added = submit(web, client, desk.issue_id, "add-article", article=str(hostile), again="1")
    after_add = client.get(web.url(added.headers["Location"]))
    refused = submit(web, client, desk.issue_id, "add-article", article=str(hostile))
    edited = submit(web, client, desk.xss_issue_id, "edit", subject=XSS_TITLE,
                    preheader=XSS_TITLE, intro=XSS_TITLE)
    own_page = client.get(web.url(edited.headers["Location"]))
    bad_field = submit(web, client, desk.xss_issue_id, "test", addresses=XSS_TITLE)

    escaped = html.escape(XSS_TITLE, quote=False)
    assert escaped in offered.text  # offered in the list of articles to add
    assert f"Added “{XSS_TITLE}” at position" in notice(after_add.text)
    assert f"<span class=\"visually-hidden\"> “{escaped}”</span>" in after_add.text
    assert refused.status_code == 422
    assert own_page.text.count(escaped) >= 5  # heading, inputs, article, text part
    assert bad_field.status_code == 422
    for response in (offered, after_add, refused, own_page, bad_field):
        assert XSS_TITLE not in response.text
        assert "<script>alert(1)</script>" not in response.text
        assert "<img" not in response.text


# -- notices ---------------------------------------------------------------------------------
def test_a_notice_is_shown_only_when_the_desk_signed_it_for_this_session(
    desk: Desk, web: WebApp, client: requests.Session
) -> None:
    response = submit(web, client, desk.issue_id, "queue", date="", time="")
    assert response.headers["Location"] == f"/desk/issues/{desk.issue_id}?done=queue"
    editing.unqueue(desk.publisher, desk.issue_id)
    saved = submit(web, client, desk.issue_id, "edit", subject="Signed", preheader="",
                   intro="")
    location = saved.headers["Location"]
    assert "notice=" in location
    other = signed_in(web, ADMIN)

    forged = client.get(web.url(f"/desk/issues/{desk.issue_id}?notice=Call+0800+now")).text
    stolen = other.get(web.url(location)).text
    own = client.get(web.url(location)).text

    assert notice(forged) == "" and "0800" not in forged
    assert notice(stolen) == ""
    assert notice(own).startswith("Saved: subject, preheader.")


# -- in a browser ----------------------------------------------------------------------------
@needs_chromium
def test_the_issue_page_in_a_browser_at_375_and_1280_px(
    desk: Desk, web: WebApp, browser: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    visit = Visit(browser, web, tmp_path)
    page = visit.page
    visit.sign_in(EDITOR, PASSWORD)
    for width in (375, 1280):  # as a phone and a desktop open it
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(web.url(f"/desk/issues/{desk.issue_id}"))
        for frame in ("iframe.preview", "iframe.preview-phone"):
            expect(page.frame_locator(frame).locator("body")).to_contain_text("Kellmouth")
        expect(page.locator("pre.text-part")).to_contain_text("View this email in your browser")
        assert visit.serious_findings() == [], width
        for frame in ("preview", "preview-phone"):
            page.locator(f"iframe.{frame}").scroll_into_view_if_needed()
            page.screenshot(path=tmp_path / f"{frame}-{width}.png")
        page.screenshot(path=tmp_path / f"issue-page-{width}.png", full_page=True)
    widths = page.evaluate("""() => [...document.querySelectorAll('iframe')]
        .map(f => f.getBoundingClientRect().width)""")
    assert widths == [600, 375]
    phone = page.locator("iframe.preview-phone").bounding_box()
    wide = page.locator("iframe.preview").bounding_box()
    assert phone and wide and phone["y"] == wide["y"]  # side by side at 1280 px

    spring = last_sunday(desk.clock.now.year + 1, 3)
    page.get_by_label("Date").fill(f"{spring}")
    page.get_by_label("Time").fill("01:30")
    page.get_by_role("button", name="Queue", exact=True).click()
    expect(page.locator("#when-error")).to_contain_text("a daylight-saving gap")
    expect(page.get_by_label("Time")).to_have_attribute("aria-invalid", "true")
    assert visit.serious_findings() == []
    page.screenshot(path=tmp_path / "refused-1280.png", full_page=True)

    page.get_by_label("Subject", exact=True).fill("Spring tides special")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("Saved: subject.")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Spring tides special")
    page.set_viewport_size({"width": 375, "height": 900})
    stacked = page.locator("iframe.preview-phone").bounding_box()
    assert stacked and stacked["y"] > page.locator("iframe.preview").bounding_box()["y"]
    assert visit.dialogs == []
    for name in ("issue-page-375", "issue-page-1280", "preview-375", "preview-phone-375"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000
    visit.context.close()
