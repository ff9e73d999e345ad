"""Suppressions over the API, on SQLite and PostgreSQL: finding them by how the address
starts, keyset pages, suppressing and lifting (``editor.suppressions``, as the desk and the
command line do) with the acknowledgement a hard bounce or complaint needs, the CSV export
against the command's, addresses that hold markup-like and Unicode characters, and the
door: admins only. Every answer is checked against the API's document."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import quote

import pytest
from click.testing import CliRunner

from newsletter.cli import cli
from newsletter.editor import suppressions as suppressing
from newsletter.editor.suppressions import EXPORT_COLUMNS, WHY_RISKY
from newsletter.models import ALL_LISTS, SuppressionReason
from newsletter.store import events, suppressions
from newsletter.store.tables import soft_bounces
from tests.api_support import ADMIN_TOKEN, EDITOR_TOKEN, Api, Client, fields, problem, serve_api
from tests.desk_support import ADMIN, Desk, signed_in
from tests.desk_support import SUPPRESSED_AT as AT
from tests.desk_support import SUPPRESSION_MARKUP as MARKUP
from tests.desk_support import seed_suppressions as seed

#: Characters an address may hold that mean something in a URL, HTML or a shell, and a
#: Unicode domain (stored in its IDNA form).
ODD = "o'brien+{news}/x=y&z@exämple.org"
ODD_STORED = "o'brien+{news}/x=y&z@xn--exmple-cua.org"


@pytest.fixture
def api(desk: Desk) -> Iterator[Api]:
    yield from serve_api(desk)


@pytest.fixture
def admin(api: Api) -> Client:
    return api.client("admin")


def stored(desk: Desk) -> list[dict[str, str]]:
    with desk.store.engine.connect() as conn:
        return [s.as_dict() for s in suppressions.iter_all(conn)]


def mailable(desk: Desk, email: str) -> bool:
    with desk.store.engine.connect() as conn:
        return not any(suppressions.is_suppressed(conn, email, list_id)
                       for list_id in ("weekly", "every-article"))


def same_times(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with ``created_at`` read as a time (``Z`` and ``+00:00`` alike)."""
    return [{**r, "created_at": datetime.fromisoformat(r["created_at"])} for r in rows]


def lift_path(email: str, **query: str) -> str:
    path = "/suppressions/" + quote(email, safe="@")
    return path + ("?" + "&".join(f"{k}={quote(v)}" for k, v in query.items()) if query else "")


# -- finding ---------------------------------------------------------------------------------
def test_the_list_is_what_the_desk_reads(api: Api, admin: Client) -> None:
    seed(api.desk)

    answer = admin.ok("GET", "/suppressions")

    page = suppressing.suppression_page(api.desk.store)
    assert same_times(answer["items"]) == same_times([s.as_dict() for s in page.entries])
    assert same_times(answer["items"]) == same_times(stored(api.desk))
    assert answer["next_cursor"] is None
    bounced = next(r for r in answer["items"] if r["email"] == "bounced@example.com")
    assert bounced["detail"] == MARKUP  # JSON text, as stored
    assert (bounced["scope"], bounced["reason"]) == (ALL_LISTS, "bounced-hard")


@pytest.mark.parametrize(("prefix", "expected"), [
    ("BOUN", ["bounced@example.com"]), ("le", ["leaver@example.com"]), ("%", []), ("_", []),
    ("per_cent%", ["per_cent%x@example.com"]), ("  angry", ["angry@example.com"]),
])
def test_search_by_how_the_address_starts(
    api: Api, admin: Client, prefix: str, expected: list[str]
) -> None:
    seed(api.desk)

    answer = admin.ok("GET", f"/suppressions?q={quote(prefix)}")

    assert [r["email"] for r in answer["items"]] == expected
    desk_page = suppressing.suppression_page(api.desk.store, prefix.strip())
    assert [r["email"] for r in answer["items"]] == [s.email for s in desk_page.entries]


def test_pages_walk_every_suppression_once(api: Api, admin: Client) -> None:
    with api.desk.store.engine.begin() as conn:
        for n in range(60):
            suppressions.add(conn, f"reader{n:03}@example.org", SuppressionReason.MANUAL,
                             scope="weekly" if n % 2 else ALL_LISTS, at=AT)
            if n % 3 == 0:
                suppressions.add(conn, f"reader{n:03}@example.org", SuppressionReason.MANUAL,
                                 scope="every-article", at=AT)
    seen: list[tuple[str, str]] = []
    pages = 0
    params: dict[str, str] = {"q": "reader", "limit": "7"}
    while True:
        answer = admin.get("/suppressions", params=params).json()
        seen += [(r["email"], r["scope"]) for r in answer["items"]]
        pages += 1
        if answer["next_cursor"] is None:
            break
        params["cursor"] = answer["next_cursor"]

    assert seen == [(r["email"], r["scope"]) for r in stored(api.desk)]
    assert len(seen) == len(set(seen)) == 80 and pages == 12


@pytest.mark.parametrize(("query", "field", "message"), [
    ("cursor=!!not-a-cursor", "cursor", "not a cursor this API gave out"),
    ("limit=100000", "limit", "less than or equal to 200"),
    ("limit=0", "limit", "greater than or equal to 1"),
    ("q=a%00", "q", "String should match pattern"),
    ("q=" + "a" * 321, "q", "at most 320 characters"),
])
def test_bad_list_queries_are_400s_naming_the_parameter(
    admin: Client, query: str, field: str, message: str
) -> None:
    response = admin.get(f"/suppressions?{query}")

    assert message in fields(response)[field], problem(response, 400)


# -- suppressing and lifting -----------------------------------------------------------------
def test_suppress_again_then_lift_round_trip(api: Api, admin: Client) -> None:
    desk = api.desk
    body = {"email": " Someone@Example.com ", "scope": "weekly", "note": MARKUP}

    added = admin.request("POST", "/suppressions", json=body)
    again = admin.request("POST", "/suppressions",
                          json={"email": "someone@example.com", "scope": "weekly",
                                "reason": "complained"})

    assert added.status_code == 201 and again.status_code == 200
    assert added.json() == {"email": "someone@example.com", "scope": "weekly",
                            "reason": "manual", "added": True}
    assert again.json()["added"] is False and again.json()["reason"] == "complained"
    (row,) = stored(desk)
    assert (row["email"], row["scope"], row["reason"], row["source"], row["detail"]) == (
        "someone@example.com", "weekly", "manual", f"api:{ADMIN_TOKEN}", MARKUP)
    assert not mailable(desk, "someone@example.com")
    found = admin.ok("GET", "/suppressions?q=SOMEONE")["items"]
    assert [(r["email"], r["detail"]) for r in found] == [("someone@example.com", MARKUP)]

    lifted = admin.ok("DELETE", lift_path("someone@example.com", scope="weekly"))

    assert lifted["email"] == "someone@example.com"
    assert same_times(lifted["lifted"]) == same_times([row])
    assert stored(desk) == [] and mailable(desk, "someone@example.com")
    gone = problem(admin.request("DELETE", lift_path("someone@example.com", scope="weekly")),
                   404)
    assert gone["detail"] == "someone@example.com is not suppressed for list 'weekly'"


@pytest.mark.parametrize(("email", "scope"), [
    ("bounced@example.com", ALL_LISTS), ("angry@example.com", "weekly"),
])
def test_lifting_a_hard_bounce_or_complaint_needs_acknowledging(
    api: Api, admin: Client, email: str, scope: str
) -> None:
    desk = api.desk
    seed(desk)
    with desk.store.engine.begin() as conn:
        conn.execute(soft_bounces.insert().values(email=email, count=2, last_at=AT))

    refused = admin.request("DELETE", lift_path(email, scope=scope))
    still = admin.request("DELETE", lift_path(email, scope=scope, acknowledged="false"))

    found = problem(refused, 422)
    assert problem(still, 422) == found
    assert found["errors"] == [{"field": "acknowledged", "in": "query",
                                "message": found["errors"][0]["message"]}]
    assert found["detail"].startswith(f"acknowledged: {email} is suppressed as ")
    assert WHY_RISKY in found["detail"] and "acknowledged=true" in found["detail"]
    assert not mailable(desk, email)

    lifted = admin.ok("DELETE", lift_path(email, scope=scope, acknowledged="true"))

    assert [r["email"] for r in lifted["lifted"]] == [email]
    assert mailable(desk, email)
    with desk.store.engine.connect() as conn:  # for every list, its soft bounces go too
        assert events.soft_bounce_count(conn, email) == (0 if scope == ALL_LISTS else 2)
    assert len(stored(desk)) == 3


def test_lifting_every_scope_of_an_address_at_once(api: Api, admin: Client) -> None:
    for scope in ("weekly", "every-article", ALL_LISTS):
        admin.ok("POST", "/suppressions", {"email": "reader@example.org", "scope": scope},
                 status=201)
    wrong = admin.request("DELETE", lift_path("reader@example.org", scope="daily"))

    lifted = admin.ok("DELETE", lift_path("READER@example.org"))

    assert "not suppressed for list 'daily'" in problem(wrong, 404)["detail"]
    assert sorted(r["scope"] for r in lifted["lifted"]) == [ALL_LISTS, "every-article", "weekly"]
    assert stored(api.desk) == []


@pytest.mark.parametrize(("body", "field", "message"), [
    ({"email": "not-an-address"}, "email", "An email address must have an @-sign."),
    ({"email": "<b>x</b>@example.org"}, "email", "There can't be anything after"),
    ({"email": ""}, "email", "at least 1 character"),
    ({}, "email", "Field required"),
    ({"email": "a@example.org", "scope": "<i>x</i>"}, "scope", "there is no list '<i>x</i>'"),
    ({"email": "a@example.org", "reason": "bored"}, "reason", "Input should be"),
    ({"email": "a@example.org", "note": "x\u0000"}, "note", "String should match pattern"),
    ({"email": "a@example.org", "why": "x"}, "why", "Extra inputs are not permitted"),
    ({"email": ["a@example.org"]}, "email", "Input should be a valid string"),
])
def test_bad_bodies_are_422s_naming_the_field_and_change_nothing(
    api: Api, admin: Client, body: dict[str, Any], field: str, message: str
) -> None:
    response = admin.post("/suppressions", body)

    problem(response, 422)
    assert message in fields(response)[field], response.text
    assert stored(api.desk) == []


def test_an_address_with_odd_characters_and_a_unicode_domain_round_trips(
    api: Api, admin: Client
) -> None:
    added = admin.ok("POST", "/suppressions", {"email": ODD, "note": MARKUP}, status=201)
    found = admin.ok("GET", "/suppressions")["items"]
    searched = admin.get("/suppressions", params={"q": "O'BRIEN+{news}/"}).json()["items"]
    exported = list(csv.DictReader(io.StringIO(admin.get("/suppressions.csv").text)))

    assert added["email"] == ODD_STORED
    assert [r["email"] for r in found] == [r["email"] for r in searched] == [ODD_STORED]
    assert [(r["email"], r["detail"]) for r in exported] == [(ODD_STORED, MARKUP)]
    assert not mailable(api.desk, ODD_STORED)

    lifted = admin.ok("DELETE", lift_path(ODD_STORED))  # the slash is sent as %2F

    assert [r["email"] for r in lifted["lifted"]] == [ODD_STORED]
    assert stored(api.desk) == []


# -- exporting -------------------------------------------------------------------------------
def command_export(desk: Desk, *args: str) -> str:
    (desk.settings.home / ".env").write_text(
        f"NEWSLETTER_DATABASE_URL={desk.settings.database_url}\n", encoding="utf-8")
    done = CliRunner().invoke(cli, ["--home", str(desk.settings.home), "suppressions",
                                    "export", *args])
    assert done.exit_code == 0, done.output
    return done.output


def test_the_export_is_the_commands(api: Api, admin: Client) -> None:
    seed(api.desk)

    export = admin.get("/suppressions.csv")
    weekly = admin.get("/suppressions.csv?scope=weekly")

    assert export.status_code == 200
    assert export.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert export.headers["Content-Disposition"] == 'attachment; filename="suppressions.csv"'
    assert "Content-Length" not in export.headers  # streamed
    assert export.text == command_export(api.desk)
    assert weekly.text == command_export(api.desk, "--list", "weekly")
    assert tuple(next(csv.reader(io.StringIO(export.text)))) == EXPORT_COLUMNS
    angry = next(r for r in csv.DictReader(io.StringIO(export.text))
                 if r["email"] == "angry@example.com")
    assert angry["detail"] == "=HYPERLINK(1)"


def test_the_export_for_spreadsheets_is_the_desks_download(api: Api, admin: Client) -> None:
    seed(api.desk)

    export = admin.get("/suppressions.csv?spreadsheet=true")

    download = signed_in(api.web, ADMIN).get(api.web.url("/desk/suppressions/export"))
    assert export.text == download.text
    assert "'=HYPERLINK(1)" in export.text


def test_an_empty_export_is_its_header(admin: Client) -> None:
    assert admin.get("/suppressions.csv").text == ",".join(EXPORT_COLUMNS) + "\n"


def test_a_bad_export_query_names_its_parameter(admin: Client) -> None:
    response = admin.get("/suppressions.csv?spreadsheet=perhaps")

    problem(response, 400)
    assert "valid boolean" in fields(response)["spreadsheet"]


# -- the door --------------------------------------------------------------------------------
def every_route(email: str) -> list[tuple[str, str, Any]]:
    return [
        ("GET", "/suppressions", None),
        ("POST", "/suppressions", {"email": "new@example.org"}),
        ("DELETE", lift_path(email, acknowledged="true"), None),
        ("GET", "/suppressions.csv", None),
    ]


def test_editors_get_403_and_no_token_401_and_nothing_changes(api: Api) -> None:
    seed(api.desk)
    before = stored(api.desk)

    for method, path, body in every_route("leaver@example.com"):
        refused = api.client("editor").request(method, path, json=body)
        anonymous = api.client(None).request(method, path, json=body)
        assert EDITOR_TOKEN in problem(refused, 403)["detail"], path
        assert "needs an API token" in problem(anonymous, 401)["detail"], path
        assert "leaver" not in refused.text + anonymous.text

    assert stored(api.desk) == before
