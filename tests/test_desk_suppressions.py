"""The desk's suppressions page over real HTTP, on SQLite and PostgreSQL: finding addresses,
keyset pages, suppressing and lifting (``editor.suppressions``, as the command line does),
the confirmation a hard bounce or complaint needs, the CSV download, and editors kept out."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from click.testing import CliRunner
from markupsafe import escape

from newsletter.cli import cli
from newsletter.editor.suppressions import EXPORT_COLUMNS
from newsletter.models import ALL_LISTS, SuppressionReason
from newsletter.store import events, suppressions
from newsletter.store.tables import soft_bounces
from tests.desk_support import ADMIN, EDITOR, Desk, alert_of, csrf_of, signed_in
from tests.desk_support import SUPPRESSED_AT as AT
from tests.desk_support import SUPPRESSION_MARKUP as MARKUP
from tests.desk_support import seed_suppressions as seed
from tests.servers.webapp import WebApp


@pytest.fixture
def web(desk_web: WebApp) -> WebApp:
    return desk_web


NEXT = re.compile(r'href="(/desk/suppressions\?[^"]*after=[^"]+)">Next page<')
ROW = re.compile(r'<td data-label="Address" class="subject">([^<]+)</td>')


def stored(desk: Desk) -> list[suppressions.Suppression]:
    with desk.store.engine.connect() as conn:
        return list(suppressions.iter_all(conn))


def mailable(desk: Desk, email: str) -> bool:
    with desk.store.engine.connect() as conn:
        return not any(suppressions.is_suppressed(conn, email, list_id)
                       for list_id in ("weekly", "every-article"))


def post(client: requests.Session, web: WebApp, action: str,
         data: dict[str, str]) -> requests.Response:
    token = csrf_of(client.get(web.url("/desk/suppressions")).text)
    return client.post(web.url(f"/desk/suppressions/{action}"), data={"csrf": token, **data},
                       allow_redirects=False)


def rows_of(page: str) -> list[str]:
    return ROW.findall(page)


def test_the_page_shows_what_the_store_holds(desk: Desk, web: WebApp) -> None:
    seed(desk)
    page = signed_in(web, ADMIN).get(web.url("/desk/suppressions")).text

    assert rows_of(page) == [str(escape(s.email)) for s in stored(desk)]
    assert "every list" in page and "list &#39;weekly&#39;" in page
    for kind in ("bounced-hard", "complained", "unsubscribed", "webhook:mailgun", "one-click"):
        assert kind in page
    assert "2026-11-20 09:30 UTC" in page
    assert str(escape(MARKUP)) in page and "<script>alert" not in page and "<b>rude" not in page
    # a hard bounce and a complaint each need the box ticked; the others do not
    assert page.count('name="confirm"') == 2


def test_search_by_how_the_address_starts(desk: Desk, web: WebApp) -> None:
    seed(desk)
    client = signed_in(web, ADMIN)

    def found(prefix: str) -> list[str]:
        return rows_of(client.get(web.url("/desk/suppressions"), params={"q": prefix}).text)

    assert found("BOUN") == ["bounced@example.com"]
    assert found("le") == ["leaver@example.com"]
    assert found("%") == [] and found("_") == []  # wildcards are literal
    assert found("per_cent%") == [str(escape("per_cent%x@example.com"))]
    assert "No suppressed addresses start with “nobody”" in client.get(
        web.url("/desk/suppressions"), params={"q": "nobody"}).text


def test_pages_walk_every_suppression_once(desk: Desk, web: WebApp) -> None:
    with desk.store.engine.begin() as conn:
        for n in range(120):
            suppressions.add(conn, f"reader{n:03}@example.org", SuppressionReason.MANUAL,
                             scope="weekly" if n % 2 else ALL_LISTS, at=AT)
            if n % 3 == 0:
                suppressions.add(conn, f"reader{n:03}@example.org", SuppressionReason.MANUAL,
                                 scope="every-article", at=AT)
    client = signed_in(web, ADMIN)
    seen: list[str] = []
    path = "/desk/suppressions?q=reader"
    while path:
        page = client.get(web.url(path.replace("&amp;", "&"))).text
        seen += rows_of(page)
        found = NEXT.search(page)
        path = found.group(1) if found else ""
    assert seen == [s.email for s in stored(desk)]
    assert len(seen) == 120 + 40


def test_a_broken_page_link_says_so(desk: Desk, web: WebApp) -> None:
    response = signed_in(web, ADMIN).get(web.url("/desk/suppressions"),
                                         params={"after": "!!not base64"})

    assert response.status_code == 422
    assert alert_of(response).startswith("Page: that link to a page of suppressions is broken")


def test_suppress_then_again_then_lift_round_trip(desk: Desk, web: WebApp) -> None:
    client = signed_in(web, ADMIN)

    added = post(client, web, "add", {"email": " Someone@Example.com ", "list": "weekly",
                                      "reason": "manual", "note": MARKUP})
    again = post(client, web, "add", {"email": "someone@example.com", "list": "weekly",
                                      "reason": "complained"})

    assert added.status_code == again.status_code == 303
    assert parse_qs(urlsplit(added.headers["Location"]).query) == {
        "q": ["someone@example.com"], "done": ["added"]}
    assert "done=kept" in again.headers["Location"]
    assert [(s.email, s.scope, s.reason, s.source, s.detail) for s in stored(desk)] == [
        ("someone@example.com", "weekly", "manual", f"desk:{ADMIN}", MARKUP)]
    assert not mailable(desk, "someone@example.com")
    shown = client.get(web.url(added.headers["Location"])).text
    assert "Suppressed: it gets no mail there from now on." in shown
    assert str(escape(MARKUP)) in shown and "<b>rude" not in shown

    download = client.get(web.url("/desk/suppressions/export"))
    assert [r["email"] for r in csv.DictReader(io.StringIO(download.text))] == [
        "someone@example.com"]

    lifted = post(client, web, "lift", {"email": "someone@example.com", "scope": "weekly"})
    assert lifted.status_code == 303 and "done=lifted" in lifted.headers["Location"]
    assert stored(desk) == [] and mailable(desk, "someone@example.com")
    gone = post(client, web, "lift", {"email": "someone@example.com", "scope": "weekly"})
    assert gone.status_code == 409
    assert alert_of(gone) == (
        "Lift: someone@example.com is not suppressed for list 'weekly'; nothing changed")


@pytest.mark.parametrize(("data", "expected"), [
    ({"email": "not-an-address"}, "Address: An email address must have an @-sign."),
    ({"email": ""}, "Address: give the address to suppress"),
    ({"email": "a@example.org", "list": "<i>x</i>"}, "List: there is no list '<i>x</i>'"),
    ({"email": "a@example.org", "reason": "bored"}, "Kind: 'bored' is not a kind of suppression"),
])
def test_bad_input_names_its_field_and_changes_nothing(
    desk: Desk, web: WebApp, data: dict[str, str], expected: str
) -> None:
    response = post(signed_in(web, ADMIN), web, "add", data)

    assert response.status_code == 422
    assert alert_of(response) == expected
    assert "<i>x" not in response.text
    assert stored(desk) == []


@pytest.mark.parametrize(("email", "scope"), [
    ("bounced@example.com", ALL_LISTS), ("angry@example.com", "weekly"),
])
def test_lifting_a_hard_bounce_or_complaint_needs_the_box_ticked(
    desk: Desk, web: WebApp, email: str, scope: str
) -> None:
    seed(desk)
    with desk.store.engine.begin() as conn:
        conn.execute(soft_bounces.insert().values(email=email, count=2, last_at=AT))
    client = signed_in(web, ADMIN)

    refused = post(client, web, "lift", {"email": email, "scope": scope})

    assert refused.status_code == 422
    assert alert_of(refused).startswith(f"Confirm: {email} is suppressed as ")
    assert "counts against the publication with every mailbox provider" in alert_of(refused)
    assert 'aria-invalid="true"' in refused.text
    assert not mailable(desk, email)

    lifted = post(client, web, "lift", {"email": email, "scope": scope, "confirm": "1"})

    assert lifted.status_code == 303
    assert mailable(desk, email)
    with desk.store.engine.connect() as conn:
        # lifted for every list, its soft bounces are forgotten too (as the command does)
        assert events.soft_bounce_count(conn, email) == (0 if scope == ALL_LISTS else 2)
    assert len(stored(desk)) == 3


def test_the_download_has_the_commands_columns_and_is_safe_in_a_spreadsheet(
    desk: Desk, web: WebApp
) -> None:
    seed(desk)
    (desk.settings.home / ".env").write_text(
        f"NEWSLETTER_DATABASE_URL={desk.settings.database_url}\n", encoding="utf-8")
    command = CliRunner().invoke(cli, ["--home", str(desk.settings.home), "suppressions",
                                       "export"])
    assert command.exit_code == 0, command.output

    download = signed_in(web, ADMIN).get(web.url("/desk/suppressions/export"))

    assert download.status_code == 200
    assert download.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert download.headers["Content-Disposition"] == 'attachment; filename="suppressions.csv"'
    ours = list(csv.DictReader(io.StringIO(download.text)))
    theirs = list(csv.DictReader(io.StringIO(command.output)))
    assert tuple(ours[0]) == tuple(theirs[0]) == EXPORT_COLUMNS
    assert [r["email"] for r in ours] == [r["email"] for r in theirs]
    angry = next(r for r in ours if r["email"] == "angry@example.com")
    assert angry["detail"] == "'=HYPERLINK(1)"  # a formula no spreadsheet runs
    assert next(r for r in theirs if r["email"] == "angry@example.com")["detail"] == (
        "=HYPERLINK(1)")
    for mine, cli_row in zip(ours, theirs, strict=True):
        if mine["email"] != "angry@example.com":
            assert mine == cli_row


def test_the_download_streams_many_rows(desk: Desk, web: WebApp) -> None:
    at = AT
    with desk.store.engine.begin() as conn:
        for n in range(2500):
            suppressions.add(conn, f"r{n:05}@example.org", SuppressionReason.MANUAL,
                             at=at + timedelta(seconds=n))
    download = signed_in(web, ADMIN).get(web.url("/desk/suppressions/export"), stream=True)

    assert "Content-Length" not in download.headers  # sent as it is read
    rows = list(csv.DictReader(io.StringIO(download.content.decode())))
    assert [r["email"] for r in rows] == [f"r{n:05}@example.org" for n in range(2500)]


def test_editors_get_403_and_change_nothing(desk: Desk, web: WebApp) -> None:
    seed(desk)
    before = stored(desk)
    client = signed_in(web, EDITOR)
    token = csrf_of(client.get(web.url("/desk/articles")).text)

    answers = [
        client.get(web.url("/desk/suppressions")),
        client.get(web.url("/desk/suppressions/export")),
        client.post(web.url("/desk/suppressions/add"),
                    data={"csrf": token, "email": "new@example.org"}),
        client.post(web.url("/desk/suppressions/lift"),
                    data={"csrf": token, "email": "leaver@example.com", "scope": "weekly"}),
    ]

    assert [a.status_code for a in answers] == [403] * 4
    assert all("This page is for administrators." in a.text for a in answers)
    assert "bounced@example.com" not in answers[1].text
    assert stored(desk) == before
    assert "/desk/suppressions" not in client.get(web.url("/desk/articles")).text  # no link
