"""The desk's status page over real HTTP, on SQLite and PostgreSQL: the scheduler lock, the
next runs, issues in progress, the issues the provider's trouble paused, each source's
last collection and the database, as ``schedule.status.gather`` and the store have them."""

from __future__ import annotations

import json
import re
import time
from datetime import timedelta

import pytest
from markupsafe import escape

from newsletter.delivery.outage import UNAVAILABLE
from newsletter.schedule.status import gather
from newsletter.store import issues as issue_store
from newsletter.store.db import HEAD_REVISION
from newsletter.store.tables import collections, locks, source_state
from tests.desk_support import ADMIN, Desk, schedule_jobs, signed_in
from tests.servers.webapp import WebApp


@pytest.fixture
def web(desk_web: WebApp) -> WebApp:
    return desk_web


OUTAGE = f"{UNAVAILABLE}, 3 attempts in a row failed: 503 Service Unavailable"
REFUSED = "Mailgun refused the credentials (401 Unauthorized: <b>forbidden</b>): check it"


def sending(desk: Desk, issue_id: int) -> int:
    """The issue queued and started: its audience frozen, nothing sent yet."""
    desk.publisher.queue(issue_id)
    desk.publisher.start(issue_id)
    return issue_id


def paused_by_senders(desk: Desk, issue_id: int, reason: str) -> None:
    with desk.store.engine.begin() as conn:
        assert issue_store.pause_sending(conn, issue_id, desk.store.now(), reason)


def busy(desk: Desk) -> dict[str, int]:
    """An issue paused by an outage, one by refused credentials, one by a person, one
    queued; the jobs stored; the lock held by a scheduler elsewhere."""
    outage = sending(desk, desk.issue_id)
    paused_by_senders(desk, outage, OUTAGE)
    refused = sending(desk, desk.publisher.draft("weekly", article_ids=[1])[0])
    paused_by_senders(desk, refused, REFUSED)
    person = sending(desk, desk.publisher.draft("weekly", article_ids=[2])[0])
    with issue_store.acting_as(f"desk:{ADMIN}"):
        desk.publisher.pause(person)
    queued = desk.xss_issue_id
    desk.publisher.queue(queued)
    schedule_jobs(desk)
    with desk.store.engine.begin() as conn:
        conn.execute(locks.insert().values(name="scheduler", owner="harbour-host:4242:feedc0de",
                                           until=time.time() + 600))
    return {"outage": outage, "refused": refused, "person": person, "queued": queued}


def part(page: str, heading: str) -> str:
    found = re.search(rf"<h2>{re.escape(heading)}</h2>(.*?)(?=<h2>|</main>)", page, re.S)
    assert found, heading
    return found.group(1)


def words(html_text: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html_text).split())


def test_the_page_shows_what_the_store_holds(desk: Desk, web: WebApp) -> None:
    ids = busy(desk)
    report = gather(desk.settings, desk.store)

    page = signed_in(web).get(web.url("/desk/status")).text

    lock = report.lock
    assert lock is not None and not lock.expired
    assert words(part(page, "Scheduler")) == (
        f"running as harbour-host:4242:feedc0de , its lock renewed until "
        f"{lock.until:%Y-%m-%d %H:%M} UTC.")
    runs = words(part(page, "Next runs"))
    assert "digest:weekly 2026-11-23 08:00 GMT" in runs
    assert {j.id for j in report.schedule} == {"collect", "dispatch", "digest:weekly"}
    for job in report.schedule:
        assert job.id in runs and str(escape(job.name)) in part(page, "Next runs")

    provider = part(page, "Provider")
    assert "2 issues paused because of the provider" in provider
    assert f'<a href="/desk/issues/{ids["outage"]}">' in provider
    assert f'<a href="/desk/issues/{ids["refused"]}">' in provider
    assert f'/desk/issues/{ids["person"]}"' not in provider
    assert str(escape(REFUSED)) in provider and "<b>forbidden" not in provider
    outage = next(i for i in report.issues if i.id == ids["outage"])
    assert outage.resumes_at is not None
    assert f"by themselves from {outage.resumes_at:%Y-%m-%d %H:%M} UTC" in provider

    progress = part(page, "Queued, sending and paused")
    shown = [int(i) for i in re.findall(r'<td data-label="#">(\d+)</td>', progress)]
    assert shown == [i.id for i in report.issues]
    assert set(ids.values()) <= set(shown)
    with desk.store.engine.connect() as conn:
        for item in report.issues:
            assert item.state == str(issue_store.get(conn, item.id).state)
        row = conn.execute(source_state.select()).one()
    frozen = next(i for i in report.issues if i.id == ids["person"])
    assert f"0 of {frozen.total} sent, {frozen.total} queued" in words(progress)
    assert frozen.total > 0 and frozen.paused_by == "person"

    sources = words(part(page, "Sources"))
    assert sources.endswith(f"Source Last collected (UTC) Outcome New articles "
                            f"articles {row.last_checked_at:%Y-%m-%d %H:%M} UTC ok {row.last_new}")
    database = words(part(page, "Database"))
    kind = "PostgreSQL" if desk.store.dialect == "postgresql" else "SQLite"
    assert database == f"Kind {kind} Reachable yes Migration {HEAD_REVISION} (current)"
    json.dumps(report.as_dict())  # JSON-ready as it is


def test_a_publication_never_run(desk: Desk, web: WebApp) -> None:
    with desk.store.engine.begin() as conn:
        conn.execute(source_state.delete())
        conn.execute(collections.delete())

    page = signed_in(web).get(web.url("/desk/status")).text

    assert words(part(page, "Scheduler")).startswith("Not running: nobody holds the scheduler")
    assert "No jobs yet" in part(page, "Next runs")
    assert "No issue is held back by it." in part(page, "Provider")
    assert "No issue is queued, sending or paused." in part(page, "Queued, sending and paused")
    assert "articles never —" in words(part(page, "Sources"))


def test_an_expired_lock_and_a_source_whose_first_fetch_failed(
    desk: Desk, web: WebApp
) -> None:
    toml = desk.settings.subscribers_dir / "publication.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace(
        "[sources.articles]", '[sources.wire]\ntype = "folder"\npath = "wire"\n\n[sources.articles]'
    ), encoding="utf-8")
    (desk.settings.home / "wire").mkdir()
    at = desk.store.now() - timedelta(hours=2)
    with desk.store.engine.begin() as conn:
        conn.execute(locks.insert().values(name="scheduler", owner="old-host:1:ab",
                                           until=time.time() - 60))
        conn.execute(collections.insert().values(at=at, report={"new": 0, "sources": [
            {"source_id": "wire", "status": "error", "error": "<b>refused</b>", "new": 0}]}))
        conn.execute(source_state.insert().values(
            source_id="gone", first_seen_at=at, last_checked_at=at, last_status="ok"))

    page = signed_in(web).get(web.url("/desk/status")).text

    assert words(part(page, "Scheduler")).startswith(
        "stopped The last scheduler, old-host:1:ab , stopped renewing its lock")
    sources = part(page, "Sources")
    assert f"wire {at:%Y-%m-%d %H:%M} UTC error &lt;b&gt;refused&lt;/b&gt; 0" in words(sources)
    assert "<b>refused" not in sources
    assert re.findall(r'<td data-label="Source"><code>(\w+)</code>', sources) == [
        "wire", "articles", "gone"]  # configured ones in their order, then the rest
    assert "gone (no longer in publication.toml)" in words(sources)
