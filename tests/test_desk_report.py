"""An issue's progress, report and recipients (``editor.report``) and their desk pages, on
SQLite and PostgreSQL: progress read while a real send is held mid-way and after it, against
``tally.status_counts``; a partial retry's moved rows; a report of seeded provider events;
recipients found by prefix and status, page by page; the pages over real HTTP.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from markupsafe import escape
from sqlalchemy import event as db_events
from sqlalchemy import func, insert, select

from newsletter.editor import report
from newsletter.errors import ConfigError
from newsletter.models import DeliveryStatus, IssueState, WebhookEvent
from newsletter.store import Store, audience_origins, recipient_search, tally
from newsletter.store import events as event_store
from newsletter.store.tables import batches, recipients
from tests.conftest import REPO
from tests.desk_sending import MEMBERS, REFUSED, watched_send
from tests.desk_support import Desk, sign_in
from tests.servers.webapp import WebApp, add_issue


def ledger_counts(store: Store, issue_id: int) -> dict[str, int]:
    with store.engine.connect() as conn:
        return tally.status_counts(conn, issue_id)


def assert_matches_ledger(progress: report.Progress, counts: dict[str, int]) -> None:
    """Each outcome of ``progress`` is the status ``tally`` counts for it."""
    assert (progress.sent, progress.failed, progress.unknown, progress.suppressed,
            progress.pending) == (counts.get("sent", 0), counts.get("failed", 0),
                                  counts.get("unknown", 0), counts.get("suppressed", 0),
                                  counts.get("queued", 0)), counts
    assert progress.total == sum(counts.values())


# -- progress ----------------------------------------------------------------------------------
def test_progress_matches_the_ledger_during_and_after_a_send(desk: Desk) -> None:
    with watched_send(desk, hold_at=3) as send:
        assert send.provider.held.wait(60), "the third batch never went out"
        desk.clock.advance(seconds=10)
        during = report.progress(desk.store, desk.issue_id)
        assert_matches_ledger(during, ledger_counts(desk.store, desk.issue_id))
        # Two batches sent (one whole, one an id per row; 5 and 4 rows: the suppressed
        # member is in none), three in line.
        assert (during.sent, during.pending, during.suppressed, during.total) == (9, 13, 1, 23)
        assert during.live and not during.exact and during.state == "sending"
        assert (during.rate, during.seconds_left) == (0.9, 14)  # nine in the ten seconds
        final = send.finish()
    after = report.progress(desk.store, desk.issue_id)
    assert_matches_ledger(after, ledger_counts(desk.store, desk.issue_id))
    assert (after.sent, after.failed, after.suppressed, after.pending) == (21, 1, 1, 0)
    assert after.state == final.final_state == "partially-failed"
    assert after.exact and not after.live
    assert (after.percent, after.seconds_left) == (100, 0)


def test_a_retry_moves_rows_and_the_counts_follow(desk: Desk) -> None:
    """A partial retry moves the failed row to a batch of its own: the batch it left is
    resized, so the counts read from the batches stay those of the rows."""
    with watched_send(desk, hold_at=0) as send:
        send.finish()
    assert send.publisher.retry(desk.issue_id) == 1

    again = report.progress(desk.store, desk.issue_id)

    assert again.live and not again.exact and again.state == "queued"
    assert_matches_ledger(again, ledger_counts(desk.store, desk.issue_id))
    assert (again.sent, again.failed, again.pending) == (21, 0, 1)
    with desk.store.engine.connect() as conn:
        held = select(func.count()).where(recipients.c.batch_id == batches.c.id)
        sizes = conn.execute(
            select(batches.c.size, held.scalar_subquery())
            .where(batches.c.issue_id == desk.issue_id)
        ).all()
    assert all(size == rows for size, rows in sizes), sizes


def test_a_draft_has_no_progress_and_an_unknown_issue_is_not_found(desk: Desk) -> None:
    draft = report.progress(desk.store, desk.issue_id)
    assert (draft.total, draft.live, draft.exact, draft.percent) == (0, False, True, 0)
    with pytest.raises(LookupError):
        report.progress(desk.store, 999_999)


# -- the report --------------------------------------------------------------------------------
def event(kind: DeliveryStatus, message_id: str, at: datetime, event_id: str) -> WebhookEvent:
    return WebhookEvent("mailgun", event_id, kind, "", message_id, at)


def test_the_report_counts_seeded_events_by_type_and_hour(desk: Desk) -> None:
    hour = desk.store.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=6)
    issue_id = add_issue(desk.store, started_at=hour + timedelta(minutes=30))
    for n in range(5):
        add_row(desk.store, issue_id, f"reader{n}@example.org", message_id=f"<m{n}@mg>")
    seeded = [
        event(DeliveryStatus.DELIVERED, f"<m{n}@mg>", hour + timedelta(minutes=40), f"d{n}")
        for n in range(4)
    ] + [
        event(DeliveryStatus.OPENED, "<m0@mg>", hour + timedelta(hours=1, minutes=5), "o0"),
        event(DeliveryStatus.OPENED, "<m1@mg>", hour + timedelta(hours=1, minutes=50), "o1"),
        event(DeliveryStatus.CLICKED, "<m0@mg>", hour + timedelta(hours=1, minutes=55), "c0"),
        event(DeliveryStatus.OPENED, "<m1@mg>", hour + timedelta(hours=1, minutes=58), "o1"),
        event(DeliveryStatus.BOUNCED_HARD, "<m3@mg>", hour + timedelta(hours=3, minutes=1),
              "b3"),
    ]
    with desk.store.engine.begin() as conn:
        applied = event_store.apply_events(conn, seeded, soft_bounce_limit=3,
                                           now=desk.store.now())
    assert applied == len(seeded) - 1  # "o1" came twice: recorded once

    found = report.report(desk.store, issue_id)

    assert dict(found.events) == {"delivered": 4, "bounced-soft": 0, "bounced-hard": 1,
                                  "complained": 0, "unsubscribed": 0, "opened": 2,
                                  "clicked": 1}
    assert dict(found.outcomes) == {"sent": 1, "delivered": 1, "opened": 1, "clicked": 1,
                                    "bounced-hard": 1}
    assert dict(found.outcomes) == ledger_counts(desk.store, issue_id)
    assert found.bucket_seconds == 3600
    assert [b.start for b in found.timeline] == [hour + timedelta(hours=h) for h in range(4)]
    per_hour = [{k: n for k, n in b.counts if n} for b in found.timeline]
    assert per_hour == [{"delivered": 4}, {"opened": 2, "clicked": 1}, {},
                        {"bounced-hard": 1}]
    as_json = json.loads(json.dumps(found.as_dict()))
    assert as_json["events"]["opened"] == 2 and len(as_json["timeline"]) == 4


def test_bucket_widths_keep_a_timeline_short() -> None:
    assert report.bucket_width(timedelta(hours=47)) == timedelta(hours=1)
    assert report.bucket_width(timedelta(days=3)) == timedelta(hours=3)
    assert report.bucket_width(timedelta(days=30)) == timedelta(days=1)
    assert report.bucket_width(timedelta(days=3000)) == timedelta(days=7)


# -- recipients --------------------------------------------------------------------------------
def add_row(
    store: Store, issue_id: int, written: str, *, status: str = "sent", message_id: str = "",
    error: str = "",
) -> None:
    """A ledger row as a freeze writes it: ``email`` lower-cased, the spelling kept apart."""
    email = written.lower()
    with store.engine.begin() as conn:
        conn.execute(insert(recipients).values(
            issue_id=issue_id, email=email, email_as_written=None if email == written else written,
            list_id="weekly", status=status, provider_message_id=message_id, error=error,
            updated_at=store.now(),
        ))


ADDRESSES = {
    "Ada.Lovelace@Example.NET": "sent", "ada@example.org": "failed",
    "lovelace.ada@example.org": "sent", "a_b@example.org": "opened",
    "axb@example.org": "sent", "a%c@example.org": "suppressed",
    **{f"reader{n:02d}@example.org": ("failed" if n % 5 == 0 else "sent") for n in range(20)},
}


@pytest.fixture
def roster(desk: Desk) -> int:
    issue_id = add_issue(desk.store, started_at=desk.store.now())
    for written, status in ADDRESSES.items():
        add_row(desk.store, issue_id, written, status=status,
                error="550 no such mailbox" if status == "failed" else "")
    return issue_id


def walk(store: Store, issue_id: int, **search: str) -> tuple[list[str], int]:
    """Every page, following ``next_after``: the addresses in order, and how many pages."""
    seen: list[str] = []
    after, pages = "", 0
    while True:
        page = report.recipients(store, issue_id, after=after, limit=4, **search)
        seen += [r.address for r in page.rows]
        pages += 1
        if page.next_after is None:
            return seen, pages
        after = page.next_after


def test_a_prefix_finds_addresses_in_any_case(desk: Desk, roster: int) -> None:
    found = report.recipients(desk.store, roster, query="  ADA ")
    assert [r.address for r in found.rows] == ["Ada.Lovelace@Example.NET", "ada@example.org"]
    assert found.query == "ADA" and found.next_after is None
    wild = report.recipients(desk.store, roster, query="a_")  # no wildcard: an underscore
    assert [r.address for r in wild.rows] == ["a_b@example.org"]
    percent = report.recipients(desk.store, roster, query="a%")
    assert [r.address for r in percent.rows] == ["a%c@example.org"]


def test_a_status_finds_its_rows(desk: Desk, roster: int) -> None:
    failed = report.recipients(desk.store, roster, status="failed")
    expected = sorted(a.lower() for a, s in ADDRESSES.items() if s == "failed")
    assert [r.address for r in failed.rows] == expected
    assert {r.error for r in failed.rows} == {"550 no such mailbox"}
    both = report.recipients(desk.store, roster, status="failed", query="READER1")
    assert [r.address for r in both.rows] == ["reader10@example.org", "reader15@example.org"]


@pytest.mark.parametrize("search", [{}, {"status": "sent"}, {"query": "reader"},
                                    {"status": "failed", "query": "r"}])
def test_keyset_pages_walk_every_row_exactly_once(
    desk: Desk, roster: int, search: dict[str, str]
) -> None:
    seen, pages = walk(desk.store, roster, **search)
    expected = sorted(
        (a for a, s in ADDRESSES.items()
         if s == search.get("status", s) and a.lower().startswith(search.get("query", ""))),
        key=str.lower,
    )
    assert seen == expected
    assert pages == max(1, -(-len(expected) // 4))


def test_a_long_walk_stops_early_and_goes_on_from_there(
    desk: Desk, roster: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A common status is found by walking the addresses, at most ``WALK_AT_MOST`` a page:
    shorter pages, each saying where it stopped, and still every row once."""
    monkeypatch.setattr(recipient_search, "SORT_AT_MOST", 2)
    monkeypatch.setattr(recipient_search, "WALK_AT_MOST", 5)
    seen, pages = walk(desk.store, roster, status="failed")
    assert seen == sorted(a.lower() for a, s in ADDRESSES.items() if s == "failed")
    assert pages >= len(ADDRESSES) // 5
    first = report.recipients(desk.store, roster, status="failed", limit=4)
    assert [r.address for r in first.rows] == ["ada@example.org"]
    assert first.searched_to == first.next_after == "axb@example.org"


@pytest.mark.parametrize(("field", "values"), [
    ("status", {"status": "nope"}), ("query", {"query": "a" * 321}),
    ("after", {"after": "a" * 321}), ("limit", {"limit": 0}),
])
def test_bad_search_values_name_their_field(
    desk: Desk, roster: int, field: str, values: dict[str, object]
) -> None:
    with pytest.raises(ConfigError, match=f"^{field}: "):
        report.recipients(desk.store, roster, **values)  # type: ignore[arg-type]


def test_a_sent_issue_reads_its_batches_as_the_send_left_them(desk: Desk) -> None:
    """Rows left queued in a batch sent whole read as sent, with the batch's message id
    and time; a refused row keeps its own error."""
    with watched_send(desk, hold_at=0) as send:
        send.finish()
    rows = {r.address: r for r in report.recipients(desk.store, desk.issue_id, limit=50).rows}
    # As the list wrote them, but for the domain, which the list's reader lower-cases.
    assert set(rows) == {m.replace("Example.org", "example.org") for m in MEMBERS}
    first = rows["Reader.00@example.org"]
    assert first.status == "sent" and first.message_id.endswith("@gated.example>")
    assert first.at is not None
    refused = next(r for a, r in rows.items() if a.lower() == REFUSED)
    assert (refused.status, refused.error) == ("failed", "550 no such mailbox")
    assert rows["Reader.07@example.org"].status == "suppressed"


# -- over HTTP ---------------------------------------------------------------------------------
@pytest.fixture
def web(desk_web: WebApp) -> WebApp:
    return desk_web


def signed_in(web: WebApp) -> requests.Session:
    client = requests.Session()
    client.trust_env = False
    assert sign_in(web, session=client).status_code == 303
    return client


def test_the_progress_route_answers_json_to_a_session_only(desk: Desk, web: WebApp) -> None:
    path = f"/desk/issues/{desk.issue_id}/progress"
    anonymous = web.session.get(web.url(path), allow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["Location"].startswith(
        "/desk/signin?next=")
    client = signed_in(web)

    answer = client.get(web.url(path))

    assert answer.headers["Content-Type"] == "application/json"
    data = answer.json()
    assert data["issue_id"] == desk.issue_id and data["state"] == "draft"
    assert data["live"] is False and data["total"] == 0
    assert {"sent", "pending", "rate", "time_left", "announce"} <= set(data["shown"])
    assert client.get(web.url("/desk/issues/999999/progress")).status_code == 404
    script = client.get(web.url("/desk/assets/progress.js"))
    assert script.headers["Content-Type"].startswith("text/javascript")
    assert "fetch(" in script.text


def test_the_report_page_draws_and_tabulates_the_numbers(
    desk: Desk, web: WebApp, roster: int
) -> None:
    client = signed_in(web)
    origin = audience_origins.AudienceOrigin(7, "<i>signups</i>.csv", 1203)
    with desk.store.engine.begin() as conn:
        audience_origins.record(conn, roster, audience_origins.FrozenAudience(origin, 24, 3))

    page = client.get(web.url(f"/desk/issues/{roster}/report"))

    assert page.status_code == 200
    line = "<dt>Audience</dt><dd>Copied from issue 7, then the rows appended to " \
           "&lt;i&gt;signups&lt;/i&gt;.csv since (from line 1,203) read; 3 repeated " \
           "addresses dropped</dd>"
    assert line in page.text
    assert line in client.get(web.url(f"/desk/issues/{roster}")).text  # the issue's page
    assert page.text.count("<svg") == 2  # outcomes and events; no events over time yet
    assert " style=" not in page.text
    assert f'href="/desk/issues/{roster}/recipients?status=failed"' in page.text
    assert '<td class="num">19</td>' in page.text  # sent
    assert client.get(web.url("/desk/issues/999999/report")).status_code == 404


def test_a_hostile_query_stays_text(desk: Desk, web: WebApp, roster: int) -> None:
    client = signed_in(web)
    payload = '"><script>alert(1)</script><img src=x onerror=alert(2)>'

    page = client.get(web.url(f"/desk/issues/{roster}/recipients"), params={"q": payload})

    assert page.status_code == 200
    assert "<script>alert" not in page.text and "<img src=x" not in page.text
    assert str(escape(payload)) in page.text
    assert "No recipients match" in page.text


def test_the_recipients_page_lists_and_pages(desk: Desk, web: WebApp, roster: int) -> None:
    client = signed_in(web)
    url = web.url(f"/desk/issues/{roster}/recipients")

    first = client.get(url, params={"q": "reader"})
    bad = client.get(url, params={"status": "<b>nope</b>"})

    assert first.status_code == 200 and first.text.count('data-label="Address"') == 20
    assert "Next page" not in first.text
    assert bad.status_code == 400 and "status: " in bad.text and "<b>nope" not in bad.text
    assert client.get(web.url("/desk/issues/999999/recipients")).status_code == 404


def test_the_recipients_page_offers_its_status_as_csv(
    desk: Desk, web: WebApp, roster: int
) -> None:
    client = signed_in(web)
    url = web.url(f"/desk/issues/{roster}/recipients")

    failed = client.get(url, params={"status": "failed", "q": "reader"}).text
    anyone = client.get(url).text
    link = re.search(r'<a href="([^"]+\.csv[^"]*)" download>([^<]+)</a>', failed)

    assert link, failed
    assert link.group(2) == "Download every recipient with the status failed as CSV"
    assert f'href="/desk/issues/{roster}/recipients.csv" download>Download every ' \
           "recipient as CSV" in anyone
    download = client.get(web.url(html.unescape(link.group(1))))
    rows = list(csv.DictReader(io.StringIO(download.text)))
    assert download.status_code == 200 and len(rows) == 5  # every failed one, not the search's
    assert {r["status"] for r in rows} == {"failed"}


def test_a_sending_issue_shows_its_progress_on_the_desk(desk: Desk, web: WebApp) -> None:
    client = signed_in(web)
    with watched_send(desk, hold_at=2) as send:
        assert send.provider.held.wait(60)
        issue = client.get(web.url(f"/desk/issues/{desk.issue_id}")).text
        listing = client.get(web.url("/desk/issues")).text
        send.finish()
    done = client.get(web.url(f"/desk/issues/{desk.issue_id}")).text

    assert f'data-progress="/desk/issues/{desk.issue_id}/progress" data-live="yes"' in issue
    assert '<script src="/desk/assets/progress.js" defer></script>' in issue
    assert 'max="23" value="6"' in issue and 'data-field="pending">17<' in issue
    assert 'class="progress compact"' in listing and "progress.js" in listing
    assert 'data-live="no"' in done and "progress.js" not in done
    assert 'data-field="sent">21<' in done



def test_the_desk_reads_bench_still_runs() -> None:
    """``bench/desk_reads.py`` end to end on a small ledger (its figures are not checked)."""
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "desk_reads.py"), "--recipients", "3000",
         "--times", "1"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert '"total": 3000' in done.stdout and "progress()" in done.stdout


def test_progress_and_recipient_pages_never_scan_the_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite, every statement ``progress`` and ``recipients`` run reads the recipients
    through an index (EXPLAIN QUERY PLAN), whichever way a page is found."""
    store = Store.open(f"sqlite:///{tmp_path / 'plans.db'}")
    issue_id = add_issue(store, state=IssueState.SENDING, started_at=store.now())
    for written, status in ADDRESSES.items():
        add_row(store, issue_id, written, status=status)
    run: list[tuple[str, Any]] = []

    def seen(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            run.append((statement, parameters))

    db_events.listen(store.engine, "before_cursor_execute", seen)
    report.progress(store, issue_id)
    for search in ({}, {"query": "ada"}, {"status": "failed"}, {"status": "sent"},
                   {"status": "queued", "after": "b"}):
        report.recipients(store, issue_id, **search)
    with monkeypatch.context() as patched:  # the walk by address, bounded
        patched.setattr(recipient_search, "SORT_AT_MOST", 1)
        report.recipients(store, issue_id, status="failed")
    db_events.remove(store.engine, "before_cursor_execute", seen)
    with store.engine.connect() as conn:
        plans = [
            (statement, [row[3] for row in conn.exec_driver_sql(
                f"EXPLAIN QUERY PLAN {statement}", parameters)])
            for statement, parameters in run if "recipients" in statement
        ]
    store.close()
    assert len(plans) >= 8
    scans = [(s, p) for s, p in plans if any(line.startswith("SCAN recipients") or
                                             line.startswith("SCAN r ") for line in p)]
    assert scans == []
