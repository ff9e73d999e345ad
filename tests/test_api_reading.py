"""Reading over the API, on SQLite and PostgreSQL: an issue's progress (mid-send and after),
its report and its recipients page by page, and the lists, each compared with what
``editor.report`` and ``schedule.listing`` give the desk, and with the desk's own answers.
Every answer is checked against the API's document (``tests/api_support.py``)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import insert

from newsletter.cli import cli
from newsletter.editor import recipients_export, report
from newsletter.models import DeliveryStatus, SuppressionReason, WebhookEvent
from newsletter.schedule.listing import lists_overview
from newsletter.store import Store, recipient_search, suppressions
from newsletter.store import events as event_store
from newsletter.store.tables import recipients
from tests.api_support import Api, Client, fields, problem, serve_api
from tests.desk_sending import watched_send
from tests.desk_support import SCHEDULED_AT, Desk, schedule_jobs, signed_in
from tests.servers.webapp import add_issue
from tests.test_desk_lists import BAD_ROWS, check_lines, problems_shown, section


@pytest.fixture
def api(desk: Desk) -> Iterator[Api]:
    yield from serve_api(desk)


TIME = re.compile(r"\d{4}-\d\d-\d\dT[\d:.]+(Z|[+-]\d\d:\d\d)")


def normal(value: Any) -> Any:
    """``value`` with every ISO time read as a datetime, so that ``Z`` and ``+00:00``
    compare equal."""
    if isinstance(value, dict):
        return {k: normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normal(v) for v in value]
    if isinstance(value, str) and TIME.fullmatch(value):
        return datetime.fromisoformat(value)
    return value


# -- progress --------------------------------------------------------------------------------
def test_progress_is_the_read_models_during_and_after_a_send(api: Api) -> None:
    desk, client = api.desk, api.client()
    path = f"/issues/{desk.issue_id}/progress"
    with watched_send(desk, hold_at=3) as send:
        assert send.provider.held.wait(60), "the third batch never went out"
        desk.clock.advance(seconds=10)
        during = client.ok("GET", path)
        assert normal(during) == normal(report.progress(desk.store, desk.issue_id).as_dict())
        send.finish()
    after = client.ok("GET", path)

    assert during["live"] and during["state"] == "sending" and 0 < during["sent"] < 21
    assert normal(after) == normal(report.progress(desk.store, desk.issue_id).as_dict())
    assert (after["sent"], after["failed"], after["suppressed"], after["pending"]) == (21, 1, 1, 0)
    assert after["exact"] and not after["live"] and after["percent"] == 100
    shown = signed_in(api.web).get(api.web.url(f"/desk/issues/{desk.issue_id}/progress")).json()
    assert normal(after) == normal({k: v for k, v in shown.items() if k != "shown"})


def test_a_draft_has_an_empty_progress_and_no_issue_none(api: Api) -> None:
    client = api.client()

    draft = client.ok("GET", f"/issues/{api.desk.issue_id}/progress")

    assert (draft["total"], draft["live"], draft["seconds_left"]) == (0, False, 0)
    for part in ("progress", "report", "recipients", "recipients.csv"):
        assert "no issue" in problem(client.get(f"/issues/999999/{part}"), 404)["detail"]


# -- the report ------------------------------------------------------------------------------
def add_row(store: Store, issue_id: int, written: str, *, status: str = "sent",
            message_id: str = "", error: str = "") -> None:
    """A ledger row as a freeze writes it: ``email`` lower-cased, the spelling kept apart."""
    email = written.lower()
    with store.engine.begin() as conn:
        conn.execute(insert(recipients).values(
            issue_id=issue_id, email=email, email_as_written=None if email == written else written,
            list_id="weekly", status=status, provider_message_id=message_id, error=error,
            updated_at=store.now(),
        ))


def test_the_report_is_the_read_models(api: Api) -> None:
    desk = api.desk
    hour = desk.store.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    issue_id = add_issue(desk.store, started_at=hour + timedelta(minutes=30))
    for n in range(3):
        add_row(desk.store, issue_id, f"reader{n}@example.org", message_id=f"<m{n}@mg>")
    seeded = [
        WebhookEvent("mailgun", "d0", DeliveryStatus.DELIVERED, "", "<m0@mg>",
                     hour + timedelta(minutes=40)),
        WebhookEvent("mailgun", "o0", DeliveryStatus.OPENED, "", "<m0@mg>",
                     hour + timedelta(hours=1, minutes=5)),
        WebhookEvent("mailgun", "b2", DeliveryStatus.BOUNCED_HARD, "", "<m2@mg>",
                     hour + timedelta(hours=2, minutes=1)),
    ]
    with desk.store.engine.begin() as conn:
        event_store.apply_events(conn, seeded, soft_bounce_limit=3, now=desk.store.now())

    answer = api.client().ok("GET", f"/issues/{issue_id}/report")

    expected = report.report(desk.store, issue_id).as_dict()
    expected["list"] = expected.pop("list_id")
    assert normal(answer) == normal(expected)
    assert answer["events"]["opened"] == 1 and len(answer["timeline"]) == 3
    assert answer["outcomes"] == {"sent": 1, "opened": 1, "bounced-hard": 1}


# -- recipients ------------------------------------------------------------------------------
ADDRESSES = {
    "Ada.Lovelace@Example.NET": "sent", "ada@example.org": "failed",
    "o'brien+{news}/x=y@example.org": "sent", "a_b@example.org": "opened",
    "a%c@example.org": "suppressed",
    **{f"reader{n:02d}@example.org": ("failed" if n % 5 == 0 else "sent") for n in range(20)},
}


@pytest.fixture
def roster(api: Api) -> int:
    issue_id = add_issue(api.desk.store, started_at=api.desk.store.now())
    for written, status in ADDRESSES.items():
        add_row(api.desk.store, issue_id, written, status=status,
                error="550 no such mailbox" if status == "failed" else "")
    return issue_id


def api_walk(client: Client, issue_id: int, **params: str) -> tuple[list[dict[str, Any]], int]:
    """Every page through the API, following ``next_cursor``: the items, and the pages."""
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = client.get(f"/issues/{issue_id}/recipients",
                          params={**params, "limit": "4", **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        seen += page.json()["items"]
        pages += 1
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return seen, pages


def model_walk(store: Store, issue_id: int, **search: str) -> list[dict[str, Any]]:
    """Every page as ``editor.report.recipients`` (the desk's page) gives it."""
    seen: list[dict[str, Any]] = []
    after = ""
    while True:
        page = report.recipients(store, issue_id, after=after, limit=4, **search)
        seen += page.as_dict()["recipients"]
        if page.next_after is None:
            return seen
        after = page.next_after


@pytest.mark.parametrize(("params", "search"), [
    ({}, {}), ({"status": "sent"}, {"status": "sent"}), ({"q": " READER"}, {"query": " READER"}),
    ({"status": "failed", "q": "r"}, {"status": "failed", "query": "r"}),
    ({"q": "a_"}, {"query": "a_"}), ({"q": "o'brien+{"}, {"query": "o'brien+{"}),
])
def test_recipient_pages_are_the_read_models_and_walk_every_row_once(
    api: Api, roster: int, params: dict[str, str], search: dict[str, str]
) -> None:
    seen, pages = api_walk(api.client(), roster, **params)

    assert normal(seen) == normal(model_walk(api.desk.store, roster, **search))
    addresses = [r["address"] for r in seen]
    expected = sorted(
        (a for a, s in ADDRESSES.items() if s == search.get("status", s)
         and a.lower().startswith(search.get("query", "").strip().lower())),
        key=str.lower,
    )
    assert addresses == expected
    assert pages == max(1, -(-len(expected) // 4))


def test_a_long_search_stops_early_and_says_where(
    api: Api, roster: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recipient_search, "SORT_AT_MOST", 2)
    monkeypatch.setattr(recipient_search, "WALK_AT_MOST", 5)

    first = api.client().ok("GET", f"/issues/{roster}/recipients?status=failed&limit=4")
    seen, _ = api_walk(api.client(), roster, status="failed")

    expected = report.recipients(api.desk.store, roster, status="failed", limit=4)
    assert [r["address"] for r in first["items"]] == [r.address for r in expected.rows]
    assert len(first["items"]) < 4 and first["next_cursor"] is not None
    assert first["searched_to"] == expected.searched_to is not None
    assert [r["address"] for r in seen] == sorted(
        a.lower() for a, s in ADDRESSES.items() if s == "failed")


def test_a_failed_recipient_carries_its_error(api: Api, roster: int) -> None:
    page = api.client().ok("GET", f"/issues/{roster}/recipients?status=failed&q=ada")

    assert normal(page["items"]) == [{"address": "ada@example.org", "status": "failed",
                                      "error": "550 no such mailbox", "message_id": "",
                                      "at": api.desk.clock.now}]


BAD_QUERIES = [
    ("status=nope", "status", "Input should be"),
    ("status=%3Cb%3Esent%3C/b%3E", "status", "Input should be"),
    ("cursor=!!not-a-cursor", "cursor", "not a cursor this API gave out"),
    ("limit=100000", "limit", "less than or equal to 200"),
    ("limit=0", "limit", "greater than or equal to 1"),
    ("limit=many", "limit", "valid integer"),
    ("q=a%00b", "q", "String should match pattern"),
    ("q=" + "a" * 321, "q", "at most 320 characters"),
]


@pytest.mark.parametrize(("query", "field", "message"), BAD_QUERIES)
def test_bad_recipient_queries_are_400s_naming_the_parameter(
    api: Api, roster: int, query: str, field: str, message: str
) -> None:
    response = api.client().get(f"/issues/{roster}/recipients?{query}")

    found = problem(response, 400)
    assert message in fields(response)[field], found
    assert found["errors"][0]["in"] == "query"
    assert "<b>" not in found["detail"]


# -- every recipient as CSV ------------------------------------------------------------------
def command_csv(desk: Desk, issue_id: int, *args: str) -> str:
    (desk.settings.home / ".env").write_text(
        f"NEWSLETTER_DATABASE_URL={desk.settings.database_url}\n", encoding="utf-8")
    done = CliRunner().invoke(cli, ["--home", str(desk.settings.home), "issue", "recipients",
                                    str(issue_id), "--csv", *args])
    assert done.exit_code == 0, done.output
    return done.output


def test_the_recipients_csv_is_the_commands_read_a_page_at_a_time(
    api: Api, roster: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recipients_export, "PAGE", 3)  # 25 rows: nine pages
    client = api.client()

    every = client.get(f"/issues/{roster}/recipients.csv")
    failed = client.get(f"/issues/{roster}/recipients.csv?status=failed")

    assert every.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert every.headers["Content-Disposition"] == \
        f'attachment; filename="issue-{roster}-recipients.csv"'
    assert "Content-Length" not in every.headers  # streamed
    assert every.text == command_csv(api.desk, roster)
    assert failed.text == command_csv(api.desk, roster, "--status", "failed")
    rows = list(csv.DictReader(io.StringIO(every.text)))
    assert sorted(r["email"] for r in rows) == sorted(a.lower() for a in ADDRESSES)
    assert {r["email"] for r in csv.DictReader(io.StringIO(failed.text))} == \
        {a for a, s in ADDRESSES.items() if s == "failed"}


def test_the_recipients_csv_for_spreadsheets_is_the_desks_download(
    api: Api, roster: int
) -> None:
    add_row(api.desk.store, roster, "formula@example.org", status="failed",
            error="=HYPERLINK(\"https://evil.example\")")
    client, desk_user = api.client(), signed_in(api.web)

    plain = client.get(f"/issues/{roster}/recipients.csv?status=failed")
    safe = client.get(f"/issues/{roster}/recipients.csv?status=failed&spreadsheet=true")
    download = desk_user.get(api.web.url(f"/desk/issues/{roster}/recipients.csv"),
                             params={"status": "failed"})

    assert download.status_code == 200
    assert download.headers["Content-Disposition"] == \
        f'attachment; filename="issue-{roster}-failed-recipients.csv"'
    assert download.text == safe.text != plain.text
    errors = {r["email"]: r["error"] for r in csv.DictReader(io.StringIO(safe.text))}
    assert errors["formula@example.org"] == "'=HYPERLINK(\"https://evil.example\")"
    assert errors["ada@example.org"] == "550 no such mailbox"


def test_bad_recipients_csv_queries_are_refused_by_name(api: Api, roster: int) -> None:
    client, desk_user = api.client(), signed_in(api.web)

    for query, name in (("status=nope", "status"), ("spreadsheet=perhaps", "spreadsheet")):
        response = client.get(f"/issues/{roster}/recipients.csv?{query}")
        problem(response, 400)
        assert name in fields(response), query
    page = desk_user.get(api.web.url(f"/desk/issues/{roster}/recipients.csv"),
                         params={"status": "<b>nope</b>"})
    missing = desk_user.get(api.web.url("/desk/issues/999999/recipients.csv"))

    assert page.status_code == 400 and "is not a status" in page.text
    assert "<b>nope" not in page.text
    assert missing.status_code == 404


def test_a_cursor_of_another_list_is_refused(api: Api, roster: int) -> None:
    client = api.client()
    issues_cursor = client.ok("GET", "/issues?limit=1")["next_cursor"]

    response = client.get(f"/issues/{roster}/recipients", params={"cursor": issues_cursor})

    problem(response, 400)
    assert "not a cursor this API gave out" in fields(response)["cursor"]


# -- lists -----------------------------------------------------------------------------------
def test_each_list_as_the_desk_shows_it(api: Api) -> None:
    desk = api.desk
    with (desk.settings.subscribers_dir / "weekly.csv").open("a", encoding="utf-8") as handle:
        handle.write(BAD_ROWS)
    with desk.store.engine.begin() as conn:
        suppressions.add(conn, "jose.nunez@example.org", SuppressionReason.UNSUBSCRIBED,
                         scope="weekly", at=SCHEDULED_AT)
        suppressions.add(conn, "stranger@example.org", SuppressionReason.MANUAL, at=SCHEDULED_AT)
    schedule_jobs(desk)

    answer = api.client().ok("GET", "/lists")
    one = api.client().ok("GET", "/lists/weekly")

    expected = lists_overview(desk.settings, desk.store)
    assert (answer["ok"], answer["errors"], answer["warnings"], answer["problems"]) == (
        False, expected.errors, expected.warnings, [])
    assert [m["id"] for m in answer["lists"]] == [m.id for m in expected.lists]
    for shown, overview in zip(answer["lists"], expected.lists, strict=True):
        plain = {k: v for k, v in overview.as_dict().items() if k not in ("next_run", "problems")}
        assert {k: shown[k] for k in plain} == plain
        assert [p["text"] for p in shown["problems"]] == [str(p) for p in overview.problems]
        at = shown["next_run"]
        assert (datetime.fromisoformat(at) if at else None) == overview.next_run
    weekly = answer["lists"][0] if answer["lists"][0]["id"] == "weekly" else answer["lists"][1]
    assert one == weekly
    assert (weekly["next_run"], weekly["next_run_local"]) == ("2026-11-23T08:00:00Z",
                                                            "2026-11-23 08:00")
    assert weekly["schedule"] == "0 8 * * mon" and weekly["suppressed"] == 1
    page = signed_in(api.web).get(api.web.url("/desk/lists")).text
    lines = [f"{p['severity']} {p['text']}" for p in weekly["problems"]]
    assert lines == problems_shown(section(page, "weekly")) == check_lines(desk)
    assert weekly["problems"][0] == {
        "severity": "error", "where": "subscribers/weekly.csv:11",
        "message": "invalid address 'broken@': There must be something after the @-sign.",
        "text": "subscribers/weekly.csv:11: invalid address 'broken@': There must be "
                "something after the @-sign.",
    }
    assert weekly["problems"][1]["severity"] == "warning"


def test_an_instant_list_has_no_schedule_and_an_unknown_one_is_not_found(api: Api) -> None:
    client = api.client()

    instant = client.ok("GET", "/lists/every-article")
    missing = problem(client.get("/lists/%3Cb%3Enope"), 404)

    assert (instant["cadence"], instant["schedule"], instant["next_run"]) == (
        "instant", None, None)
    assert missing["detail"].startswith("there is no list '<b>nope'")
    assert "every-article, weekly" in missing["detail"]


def test_a_broken_publication_file_is_named_and_no_list_is_read(api: Api) -> None:
    toml = api.desk.settings.subscribers_dir / "publication.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace(
        'timezone = "Europe/London"', 'timezone = "Europe/Kellmouth"'), encoding="utf-8")
    client = api.client()

    answer = client.ok("GET", "/lists")
    one = problem(client.get("/lists/weekly"), 503)

    assert answer["ok"] is False and answer["lists"] == []
    (found,) = answer["problems"]
    assert found["where"].startswith("subscribers/publication.toml:")
    assert "lists.weekly.timezone" in found["message"] and found["severity"] == "error"
    assert found["text"] in one["detail"]
    assert str(api.desk.settings.home) not in one["detail"]


def test_the_lists_need_a_token_but_not_an_admins(api: Api) -> None:
    problem(api.client(None).get("/lists"), 401)
    assert api.client("editor").get("/lists/weekly").status_code == 200


def test_times_in_list_answers_are_utc(api: Api) -> None:
    schedule_jobs(api.desk)

    weekly = api.client().ok("GET", "/lists/weekly")

    assert datetime.fromisoformat(weekly["next_run"]).utcoffset() == timedelta(0)
    assert datetime.fromisoformat(weekly["next_run"]) == datetime(2026, 11, 23, 8, tzinfo=UTC)
