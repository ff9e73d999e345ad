"""``newsletter run --once`` as cron runs it: digests on their schedule, exit codes, ``--json``.

The command runs in-process through click's ``CliRunner`` on a real publication and a real
database (SQLite and PostgreSQL); time-machine sets the wall clock of each run, so a week of
cron ticks takes no real time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from click.testing import CliRunner, Result

from newsletter.cli import cli
from newsletter.devtools.fakeprovider import FakeProviderServer, Fault, FaultKind
from newsletter.models import IssueKind, IssueState
from newsletter.store import Store
from newsletter.store import issues as issue_store
from tests.schedule_helpers import ListSpec, make_home, write_article
from tests.servers.feedserver import FeedServer

SUNDAY = datetime(2026, 11, 29, tzinfo=UTC)
MONDAY_8 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
GRACE = 3600  # the default NEWSLETTER_MISFIRE_GRACE_SECONDS


def write_env(home: Path, database_url: str, **more: str) -> None:
    lines = [f"NEWSLETTER_DATABASE_URL={database_url}", *(f"{k}={v}" for k, v in more.items())]
    (home / ".env").write_text("\n".join(lines) + "\n", encoding="utf-8")


def run_once(home: Path, at: datetime, *args: str) -> Result:
    """One cron tick: ``newsletter run --once`` with the clock at ``at``."""
    with time_machine.travel(at, tick=True):
        return CliRunner().invoke(cli, ["--home", str(home), "run", "--once", *args])


def run_json(home: Path, at: datetime) -> tuple[int, dict[str, object]]:
    result = run_once(home, at, "--json")
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, json.loads(result.stdout)


def issues_of(database_url: str, list_id: str) -> list[issue_store.IssueRecord]:
    store = Store.open(database_url)
    try:
        with store.engine.connect() as conn:
            return sorted(issue_store.find(conn, list_id=list_id), key=lambda r: r.id)
    finally:
        store.close()


@pytest.fixture
def home(tmp_path: Path, database_url: str) -> Path:
    home = make_home(tmp_path, [ListSpec("weekly"), ListSpec("alerts", "instant", members=2)])
    write_env(home, database_url)
    write_article(home, "saturday-market", SUNDAY - timedelta(hours=20))
    return home


def cron_ticks(start: datetime, end: datetime, minutes: int = 30) -> Iterator[datetime]:
    at = start
    while at <= end:
        yield at
        at += timedelta(minutes=minutes)


def test_cron_every_30_minutes_sends_a_weekly_digest_once_a_week(
    home: Path, database_url: str
) -> None:
    # From Sunday morning to Monday noon, a new article before every tick: each run finds
    # something new, yet the weekly digest is drafted only by the first run after 08:00 Monday.
    drafted_at: list[datetime] = []
    for n, at in enumerate(cron_ticks(SUNDAY + timedelta(hours=6), MONDAY_8 + timedelta(hours=4))):
        write_article(home, f"news-{n:03d}", at - timedelta(minutes=10))
        before = len(issues_of(database_url, "weekly"))
        result = run_once(home, at)
        assert result.exit_code == 0, result.output
        if len(issues_of(database_url, "weekly")) > before:
            drafted_at.append(at)
    weekly = issues_of(database_url, "weekly")
    alerts = issues_of(database_url, "alerts")
    assert drafted_at == [MONDAY_8]
    assert [(r.kind, r.state) for r in weekly] == [(IssueKind.DIGEST, IssueState.SENT)]
    assert len(alerts) == n + 2  # instant lists unchanged: every article, at once

    # The next Monday's tick drafts the next digest, with the week's new articles.
    write_article(home, "next-week", MONDAY_8 + timedelta(days=6))
    assert run_once(home, MONDAY_8 + timedelta(days=7, minutes=5)).exit_code == 0
    assert len(issues_of(database_url, "weekly")) == 2


def test_a_digest_missed_by_more_than_the_grace_waits_for_its_next_time(
    home: Path, database_url: str
) -> None:
    assert run_once(home, MONDAY_8 - timedelta(hours=1)).exit_code == 0  # before: not due
    write_article(home, "monday-news", MONDAY_8 + timedelta(hours=1))
    # cron was down from 07:00 until 09:30: the 08:00 digest is more than an hour late.
    code, summary = run_json(home, MONDAY_8 + timedelta(seconds=GRACE + 1800))
    assert code == 0
    assert issues_of(database_url, "weekly") == []
    [digest] = summary["digests"]  # type: ignore[misc]
    assert digest["due"] is False
    assert digest["next"] == "2026-12-07T08:00:00+00:00"
    assert "missed" in digest["note"]
    assert run_once(home, MONDAY_8 + timedelta(days=7)).exit_code == 0
    assert len(issues_of(database_url, "weekly")) == 1


@pytest.mark.parametrize(
    ("late", "drafts"),
    [(timedelta(minutes=40), True), (timedelta(seconds=GRACE + 60), False)],
    ids=["within-the-grace", "after-the-grace"],
)
def test_a_fresh_database_drafts_at_the_first_run_within_the_grace_of_a_cron_time(
    home: Path, database_url: str, late: timedelta, drafts: bool
) -> None:
    result = run_once(home, MONDAY_8 + late)
    assert result.exit_code == 0, result.output
    assert len(issues_of(database_url, "weekly")) == (1 if drafts else 0)
    result = run_once(home, MONDAY_8 + late + timedelta(minutes=30))
    assert len(issues_of(database_url, "weekly")) == (1 if drafts else 0)


def test_the_summary_says_when_a_digest_is_due_and_the_text_output_too(home: Path) -> None:
    code, summary = run_json(home, SUNDAY + timedelta(hours=12))
    assert code == 0
    assert summary["digests"] == [
        {
            "list": "weekly",
            "due": False,
            "slot": None,
            "next": "2026-11-30T08:00:00+00:00",
            "note": "next digest at 2026-11-30 08:00 UTC",
        }
    ]
    assert summary["problems"] == [] and summary["exit_code"] == 0
    assert [i["state"] for i in summary["issues"]] == ["sent"]  # type: ignore[index]
    text = run_once(home, SUNDAY + timedelta(hours=12, minutes=30)).output
    assert "skipped weekly: next digest at 2026-11-30 08:00 UTC" in text


# -- exit codes ------------------------------------------------------------------------------
def test_help_documents_the_exit_codes() -> None:
    shown = CliRunner().invoke(cli, ["run", "--help"]).output
    for line in (
        "4   a source could not be collected",
        "8   a draft was held back",
        "16  an issue ended paused",
        "32  an issue ended partially-failed",
        "75  another scheduler holds the lock",
    ):
        assert line in shown, shown


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    with FeedServer() as server:
        server.route("/feed.xml", status=500, body=b"down for maintenance")
        yield server


def add_failing_feed(home: Path, server: FeedServer) -> None:
    """A second source, a feed whose server answers 500."""
    with (home / "subscribers" / "publication.toml").open("a", encoding="utf-8") as toml:
        toml.write(
            f'\n[sources.wire]\ntype = "feed"\nurl = "{server.url("/feed.xml")}"\n'
            "allow_private_network = true\n"
        )


def test_a_failing_source_exits_4_and_names_it(home: Path, feed_server: FeedServer) -> None:
    add_failing_feed(home, feed_server)
    code, summary = run_json(home, SUNDAY + timedelta(hours=12))
    assert code == 4
    [failed] = summary["failed_sources"]  # type: ignore[misc]
    assert failed["source"] == "wire" and "500" in failed["error"]
    assert summary["problems"] == ["sources-failed"]
    assert len(summary["drafted"]) == 1  # the other source's article still went out


def test_a_draft_held_back_by_a_broken_template_exits_8(home: Path, database_url: str) -> None:
    (home / "templates" / "article.html").write_text(
        "{% extends 'base.html' %}{% block content %}{{ broken(}}{% endblock %}",
        encoding="utf-8",
    )
    code, summary = run_json(home, SUNDAY + timedelta(hours=12))
    [alert] = issues_of(database_url, "alerts")
    assert code == 8
    assert alert.state == IssueState.DRAFT
    [held] = summary["held_back"]  # type: ignore[misc]
    assert (held["list"], held["issue"]) == ("alerts", alert.id)
    assert summary["problems"] == ["held-back"]
    result = run_once(home, SUNDAY + timedelta(hours=12, minutes=30))
    assert result.exit_code == 0  # held back once: the next run has nothing new to hold


def test_a_draft_waiting_for_an_editor_is_not_a_problem(tmp_path: Path, database_url: str) -> None:
    home = make_home(tmp_path, [ListSpec("review", "instant", approval="editor")])
    write_env(home, database_url)
    write_article(home, "harbour-wall", SUNDAY)
    code, summary = run_json(home, SUNDAY + timedelta(hours=1))
    assert code == 0
    assert len(summary["waiting_for_editor"]) == 1  # type: ignore[arg-type]
    assert summary["held_back"] == []


@pytest.fixture
def fake_provider() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as server:
        yield server


def provider_home(tmp_path: Path, database_url: str, server: FakeProviderServer) -> Path:
    home = make_home(tmp_path, [ListSpec("alerts", "instant", members=3)])
    write_env(home, database_url, NEWSLETTER_PROVIDER="postmark", **server.environment())
    write_article(home, "harbour-wall", SUNDAY)
    return home


def test_an_issue_paused_by_the_provider_exits_16(
    tmp_path: Path, database_url: str, fake_provider: FakeProviderServer
) -> None:
    home = provider_home(tmp_path, database_url, fake_provider)
    fake_provider.faults.push("postmark", Fault(FaultKind.UNAUTHORIZED))
    code, summary = run_json(home, SUNDAY + timedelta(hours=1))
    [alert] = issues_of(database_url, "alerts")
    assert alert.state == IssueState.PAUSED
    assert code == 16
    assert summary["issues"] == [{"issue": alert.id, "state": "paused"}]
    assert summary["problems"] == ["paused"]


def test_a_partially_failed_issue_with_a_failing_source_exits_36(
    tmp_path: Path,
    database_url: str,
    fake_provider: FakeProviderServer,
    feed_server: FeedServer,
) -> None:
    home = provider_home(tmp_path, database_url, fake_provider)
    add_failing_feed(home, feed_server)
    fake_provider.faults.push(
        "postmark", Fault(FaultKind.RECIPIENT, recipient="alerts-00001@example.com")
    )
    code, summary = run_json(home, SUNDAY + timedelta(hours=1))
    [alert] = issues_of(database_url, "alerts")
    assert alert.state == IssueState.PARTIALLY_FAILED
    assert code == 4 + 32
    assert summary["problems"] == ["sources-failed", "partially-failed"]
    assert summary["issues"] == [{"issue": alert.id, "state": "partially-failed"}]


def test_once_with_standby_is_a_usage_error(home: Path) -> None:
    result = CliRunner().invoke(cli, ["--home", str(home), "run", "--once", "--standby"])
    assert result.exit_code == 2
    assert "--standby" in result.output


def test_once_and_the_daemon_keep_one_record_of_the_digests(home: Path, database_url: str) -> None:
    from newsletter.config import load_settings
    from newsletter.lists.config import load_config
    from newsletter.schedule.scheduler import (
        build_scheduler,
        job_specs,
        read_schedule,
        stop_scheduler,
        sync_jobs,
    )
    from newsletter.store import make_engine

    assert run_once(home, MONDAY_8 + timedelta(minutes=10)).exit_code == 0
    assert len(issues_of(database_url, "weekly")) == 1
    # A daemon started after cron was switched off keeps the digest job --once stored:
    # its 08:00 run is done, the next one is next Monday.
    settings = load_settings(home, environ={}).with_changes(database_url=database_url)
    engine = make_engine(database_url)
    with time_machine.travel(MONDAY_8 + timedelta(minutes=20), tick=False):
        scheduler = build_scheduler(settings, engine)
        scheduler.start(paused=True)
        try:
            report = sync_jobs(scheduler, job_specs(settings, load_config(settings)))
        finally:
            stop_scheduler(scheduler)
    stored = {job.id: job.next_run for job in read_schedule(engine)}
    engine.dispose()
    assert "digest:weekly" in report.kept
    assert stored["digest:weekly"] == MONDAY_8 + timedelta(days=7)
