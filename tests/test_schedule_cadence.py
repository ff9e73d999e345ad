"""The scheduler's jobs on a real publication: instant and digest lists, approval, skipped
digests, and a month of daily digests across a daylight-saving change.

The jobs run as the scheduler runs them (``collect_job``, ``digest_job``, ``dispatch_job``
with the publication's home), inside an installed runtime whose store has a settable clock
and whose provider is the local outbox.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from newsletter.delivery.providers.outbox import OutboxProvider
from newsletter.models import IssueKind, IssueState
from newsletter.schedule.jobs import Runtime, collect_job, digest_job, dispatch_job, installed
from newsletter.schedule.triggers import WallClockCronTrigger, digest_trigger
from newsletter.store import Store
from newsletter.store import issues as issue_store
from newsletter.store.tables import issue_articles
from tests.schedule_helpers import Clock, ListSpec, make_home, open_publication, write_article

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@contextmanager
def scheduler_runtime(home: Path, database_url: str, clock: Clock) -> Iterator[Runtime]:
    settings, store, _ = open_publication(home, database_url, clock)
    try:
        with installed(Runtime(settings, store, provider=OutboxProvider(settings))) as runtime:
            yield runtime
    finally:
        store.close()


def issues_of(store: Store, list_id: str) -> list[issue_store.IssueRecord]:
    with store.engine.connect() as conn:
        return sorted(issue_store.find(conn, list_id=list_id), key=lambda r: r.id)


def outbox_messages(home: Path) -> Counter[str]:
    return Counter(p.parent.name for p in (home / "var" / "outbox").glob("*/*.eml"))


def test_instant_lists_turn_each_new_article_into_an_issue(
    tmp_path: Path,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    home = make_home(
        tmp_path,
        [
            ListSpec("alerts", "instant", members=2),
            ListSpec("review", "instant", approval="editor"),
        ],
    )
    clock = Clock(START)
    write_article(home, "harbour-wall", START - timedelta(hours=2))
    write_article(home, "lifeboat-day", START - timedelta(hours=1))
    with scheduler_runtime(home, database_url, clock) as runtime, caplog.at_level(logging.INFO):
        store = runtime.store
        collect_job(str(home))
        alerts, review = issues_of(store, "alerts"), issues_of(store, "review")
        collect_job(str(home))  # nothing new the second time
        assert len(issues_of(store, "alerts")) == 2
        dispatch_job(str(home))
        sent = issues_of(store, "alerts")
    assert [(r.kind, r.state) for r in alerts] == [(IssueKind.ARTICLE, IssueState.QUEUED)] * 2
    assert [r.subject for r in alerts] == ["Harbour wall", "Lifeboat day"]
    assert [r.state for r in review] == [IssueState.DRAFT] * 2
    assert [r.state for r in sent] == [IssueState.SENT] * 2
    assert outbox_messages(home) == {f"issue-{r.id}-alerts": 2 for r in alerts}
    waiting = [m for m in caplog.messages if "waiting for an editor" in m]
    assert waiting == [
        f"list review: issue {r.id} drafted and waiting for an editor (approval = editor)"
        for r in review
    ]


def test_a_digest_with_nothing_new_is_skipped_never_sent_empty(
    tmp_path: Path,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    home = make_home(tmp_path, [ListSpec("weekly")])
    with (
        scheduler_runtime(home, database_url, Clock(START)) as runtime,
        caplog.at_level(logging.INFO),
    ):
        store = runtime.store
        collect_job(str(home))
        digest_job(str(home), "weekly")
        dispatch_job(str(home))
        assert issues_of(store, "weekly") == []
    assert "list weekly: no new articles; nothing drafted, nothing sent" in caplog.messages
    assert outbox_messages(home) == {}


def test_an_auto_digest_is_queued_and_sent_an_editor_digest_waits(
    tmp_path: Path,
    database_url: str,
) -> None:
    home = make_home(
        tmp_path, [ListSpec("weekly", members=4), ListSpec("curated", approval="editor")]
    )
    write_article(home, "market-day", START - timedelta(days=1))
    write_article(home, "tide-tables", START - timedelta(hours=3))
    with scheduler_runtime(home, database_url, Clock(START)) as runtime:
        store = runtime.store
        collect_job(str(home))
        assert issues_of(store, "weekly") == []  # digests wait for their schedule
        digest_job(str(home), "weekly")
        digest_job(str(home), "curated")
        dispatch_job(str(home))
        weekly, curated = issues_of(store, "weekly"), issues_of(store, "curated")
        with store.engine.connect() as conn:
            weekly_articles = issue_store.article_ids(conn, weekly[0].id)
    assert [(r.kind, r.state) for r in weekly] == [(IssueKind.DIGEST, IssueState.SENT)]
    assert len(weekly_articles) == 2
    assert [r.state for r in curated] == [IssueState.DRAFT]
    assert outbox_messages(home) == {f"issue-{weekly[0].id}-weekly": 4}


def test_an_auto_issue_that_fails_its_checks_stays_a_draft(
    tmp_path: Path,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    home = make_home(tmp_path, [ListSpec("weekly", from_email="news@elsewhere.example.com")])
    write_article(home, "market-day", START - timedelta(days=1))
    with (
        scheduler_runtime(home, database_url, Clock(START)) as runtime,
        caplog.at_level(logging.INFO),
    ):
        store = runtime.store
        collect_job(str(home))
        digest_job(str(home), "weekly")
        dispatch_job(str(home))
        weekly = issues_of(store, "weekly")
    assert [r.state for r in weekly] == [IssueState.DRAFT]
    [held] = [m for m in caplog.messages if "left as a draft" in m]
    assert "news@elsewhere.example.com is outside the publication's domain" in held
    assert outbox_messages(home) == {}


def test_warnings_do_not_hold_back_an_auto_list_but_are_logged(
    tmp_path: Path,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    home = make_home(tmp_path, [ListSpec("alerts", "instant")])
    write_article(
        home,
        "old-site",
        START - timedelta(hours=1),
        body="See [the archive](http://archive.example.org/old).",
    )
    with (
        scheduler_runtime(home, database_url, Clock(START)) as runtime,
        caplog.at_level(logging.INFO),
    ):
        store = runtime.store
        collect_job(str(home))
        [issue] = issues_of(store, "alerts")
    assert issue.state == IssueState.QUEUED
    assert (
        f"list alerts: issue {issue.id} queued with a warning: link over plain http "
        "(not https): http://archive.example.org/old"
    ) in caplog.messages


# A daily digest at 01:30 (02:30 in New York's spring) for a month across each change.
MONTHS = [
    pytest.param("Europe/London", "30 1 * * *", datetime(2026, 3, 14), id="london-march"),
    pytest.param("America/New_York", "30 1 * * *", datetime(2026, 10, 20), id="new-york-november"),
]


@pytest.mark.parametrize(("zone_name", "cron", "first_day"), MONTHS)
def test_a_month_of_daily_digests_across_a_clock_change(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    zone_name: str,
    cron: str,
    first_day: datetime,
) -> None:
    database_url = f"sqlite:///{tmp_path / 'month.db'}"  # the clock, not the database, is tested
    zone = ZoneInfo(zone_name)
    home = make_home(tmp_path, [ListSpec("daily", schedule=cron, timezone=zone_name, members=2)])
    clock = Clock(first_day.replace(tzinfo=zone).astimezone(UTC))
    quiet_day = first_day.date() + timedelta(days=10)
    with scheduler_runtime(home, database_url, clock) as runtime, caplog.at_level(logging.INFO):
        store = runtime.store
        trigger = digest_trigger(runtime.publisher().config.list("daily"))
        fired = run_month(home, clock, trigger, zone, quiet_day)
        issues = issues_of(store, "daily")
        with store.engine.connect() as conn:
            stmt = select(issue_articles.c.issue_id, func.count()).group_by(
                issue_articles.c.issue_id
            )
            per_issue: dict[int, int] = {i: n for i, n in conn.execute(stmt)}
    sent_days = Counter(r.created_at.astimezone(zone).date() for r in issues)
    expected = {first_day.date() + timedelta(days=n) for n in range(31)} - {quiet_day}
    assert len(fired) == 31
    assert set(sent_days) == expected and set(sent_days.values()) == {1}
    assert {r.state for r in issues} == {IssueState.SENT}
    assert set(per_issue.values()) == {1}  # each day's article, once
    assert outbox_messages(home) == {f"issue-{r.id}-daily": 2 for r in issues}
    assert caplog.messages.count("list daily: no new articles; nothing drafted, nothing sent") == 1


def run_month(
    home: Path,
    clock: Clock,
    trigger: WallClockCronTrigger,
    zone: ZoneInfo,
    quiet_day: date,
) -> list[datetime]:
    """Each fire: an article written an hour before (none on the quiet day), then the jobs."""
    fired: list[datetime] = []
    previous, now = None, clock.now
    while len(fired) < 31:
        upcoming = trigger.get_next_fire_time(previous, now)
        assert upcoming is not None
        fire = upcoming.astimezone(UTC)
        if fire.astimezone(zone).date() != quiet_day:
            write_article(home, f"news-{len(fired):02d}", fire - timedelta(hours=1))
        clock.now = fire
        collect_job(str(home))
        digest_job(str(home), "daily")
        dispatch_job(str(home))
        fired.append(fire)
        previous, now = fire, fire + timedelta(seconds=5)
    return fired
