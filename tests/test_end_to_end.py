"""The README's first command on the example publication, and a real unsubscribe round trip.

Runs the CLI as a user would, parses every message it wrote with Python's ``email``
package, then follows one message's List-Unsubscribe URL against the running web app and
checks that the next issue no longer goes to that reader.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
import time_machine
from click.testing import CliRunner
from sqlalchemy import Text, select, type_coerce

from newsletter.cli import cli
from newsletter.config import Settings, load_settings
from newsletter.publisher import Publisher
from newsletter.store import Store
from newsletter.store.tables import recipients
from newsletter.web.app import create_app
from tests.servers.webapp import WebApp

NEW_ARTICLE = """\
---
title: "Harbour lights switched on for the season"
date: {date}
author: Piran Tregear
summary: The lights along the quay are back, a week early.
---

The harbour lights are on again, a week earlier than planned.
"""


#: The example's weekly digest goes out on Mondays at 08:00 London time, and ``run --once``
#: drafts it only then: these runs happen on the Monday morning after the sample articles.
MONDAY_MORNING = datetime(2026, 11, 30, 8, 5, tzinfo=ZoneInfo("Europe/London"))


@pytest.fixture(autouse=True)
def monday_morning() -> Iterator[None]:
    with time_machine.travel(MONDAY_MORNING, tick=True):
        yield


def run(home: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--home", str(home), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def messages(home: Path, folder_glob: str = "*") -> list[tuple[Path, EmailMessage]]:
    found = []
    for path in sorted((home / "var" / "outbox").glob(f"{folder_glob}/*.eml")):
        parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        found.append((path, parsed))
    return found


def member_count(home: Path, name: str) -> int:
    """Rows below the header, comments and blank lines aside (the example has no duplicates)."""
    lines = (home / "subscribers" / name).read_text(encoding="utf-8").splitlines()
    rows = [line for line in lines if line.strip() and not line.startswith("#")]
    return len(rows) - 1


def test_first_run_writes_one_correct_message_per_member_and_issue(home: Path) -> None:
    output = run(home, "run", "--once")
    assert "Drafted" in output and "messages written" in output
    weekly = messages(home, "issue-*-weekly")
    instant = messages(home, "issue-*-every-article")
    instant_issues = {p.parent.name for p, _ in instant}
    assert len(weekly) == member_count(home, "weekly.csv")
    assert len(instant) == member_count(home, "every-article.csv") * len(instant_issues)
    for path, message in weekly + instant:
        check_message(path, message)
    again = run(home, "run", "--once")
    assert "Nothing new to send" in again
    assert len(messages(home)) == len(weekly) + len(instant)


def test_the_ledger_keeps_only_the_member_columns_the_templates_use(
    home: Path, settings: Settings
) -> None:
    run(home, "run", "--once")  # the example's templates use no member column (its "city")
    store = Store.open(settings.database_url)
    try:
        with store.engine.connect() as conn:
            kept = conn.execute(select(type_coerce(recipients.c.fields, Text))).scalars().all()
        publisher = Publisher(settings, store)
        every_article = publisher.config.list("every-article")
        first = next(publisher.audience(every_article))
        only_city = next(publisher.audience(every_article, {"city"}))
        none = next(publisher.audience(every_article, set()))
    finally:
        store.close()
    assert kept and set(kept) == {"{}"}
    assert first.fields == only_city.fields == {"city": "Kellmouth"} and none.fields == {}


def check_message(path: Path, message: EmailMessage) -> None:
    for header in (
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "MIME-Version",
        "List-Id",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
    ):
        assert message[header], f"{path.name}: no {header}"
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p["Content-Transfer-Encoding"] in ("quoted-printable", "base64") for p in parts)
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert 'style="' in html and "{{" not in html and "%%nl:" not in html
    assert "{{" not in text and "%%nl:" not in text
    https_url = re.search(r"<(https://[^>]+)>", message["List-Unsubscribe"])
    assert https_url and https_url.group(1) in html and https_url.group(1) in text
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert len(html.encode()) < 102 * 1024
    raw_list_id = re.search(rb"^List-Id:(.*\n(?:[ \t].*\n)*)", path.read_bytes(), re.M)
    assert raw_list_id, f"{path.name}: no List-Id line"
    # RFC 2047 5(3): an encoded-word may stand for a word of the phrase, never inside quotes.
    assert not re.search(rb'"[^"]*=\?', raw_list_id.group(1)), raw_list_id.group(1)
    assert re.fullmatch(r".+ <[a-z0-9-]+\.[a-z0-9.-]+>", str(message["List-Id"]))


def test_an_unsubscribe_from_a_real_email_removes_the_reader_from_the_next_issue(
    home: Path, settings: Settings
) -> None:
    run(home, "run", "--once")
    _, message = messages(home, "issue-*-weekly")[0]
    reader = email.utils.parseaddr(message["To"])[1].lower()
    url = re.search(r"<(https://[^>]+)>", message["List-Unsubscribe"]).group(1)  # type: ignore[union-attr]
    settings = load_settings(home, environ={})
    store = Store.open(settings.database_url)
    try:
        with WebApp(create_app(settings, store)) as web:
            response = web.session.post(
                web.url(urlsplit(url).path),
                data={"List-Unsubscribe": "One-Click"},
                allow_redirects=False,
            )
        assert response.status_code == 200
    finally:
        store.close()
    (home / "articles" / "harbour-lights.md").write_text(
        NEW_ARTICLE.format(date="2026-11-25T09:00:00Z"), encoding="utf-8"
    )
    with time_machine.travel(MONDAY_MORNING + timedelta(days=7), tick=True):  # the next digest
        run(home, "run", "--once")
    newest = max(int(p.parent.name.split("-")[1]) for p, _ in messages(home, "issue-*-weekly"))
    next_weekly = messages(home, f"issue-{newest}-weekly")
    recipients = {email.utils.parseaddr(m["To"])[1].lower() for _, m in next_weekly}
    assert recipients and reader not in recipients
    assert len(recipients) == member_count(home, "weekly.csv") - 1
    shown = run(home, "issue", "show", str(newest), "--json")
    assert '"suppressed": 1' in shown


def test_a_pre_send_warning_does_not_stop_an_automatic_cycle(home: Path) -> None:
    (home / "articles" / "plain-link.md").write_text(
        NEW_ARTICLE.format(date="2026-11-25T10:00:00Z").replace(
            "a week earlier than planned.",
            "a week earlier than planned: [the timetable](http://news.example.org/lights).",
        ),
        encoding="utf-8",
    )
    output = run(home, "run", "--once")
    assert "held back" not in output
    assert "messages written" in output
