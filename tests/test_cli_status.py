"""``newsletter status``: schedule, issues in progress, last collection and the lock holder."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from click.testing import CliRunner

from newsletter.cli import cli
from newsletter.models import BatchState, DeliveryStatus
from newsletter.schedule.scheduler import build_scheduler, job_specs, stop_scheduler, sync_jobs
from newsletter.store import ledger, make_engine
from newsletter.store.tables import locks
from tests.schedule_helpers import ListSpec, make_home, open_publication, write_article

T0 = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)


@pytest.fixture
def home(tmp_path: Path, database_url: str) -> Path:
    home = make_home(
        tmp_path,
        [
            ListSpec("weekly", schedule="0 8 * * mon", timezone="Europe/London", members=12),
            ListSpec("evening", schedule="0 18 * * *", timezone="America/New_York"),
        ],
    )
    (home / ".env").write_text(f"NEWSLETTER_DATABASE_URL={database_url}\n", encoding="utf-8")
    return home


def status(home: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--home", str(home), "status", *args])
    assert result.exit_code == 0, result.output
    return result.output


def busy_publication(home: Path, database_url: str) -> tuple[int, int]:
    """Jobs stored at T0, a collection, one issue queued and one half sent, the lock held."""
    settings, store, publisher = open_publication(home, database_url)
    try:
        with time_machine.travel(T0, tick=False):
            scheduler = build_scheduler(settings, make_engine(database_url))
            scheduler.start(paused=True)
            sync_jobs(scheduler, job_specs(settings, publisher.config))
            stop_scheduler(scheduler)
        write_article(home, "quay-works", datetime.now(UTC) - timedelta(hours=2))
        write_article(home, "ferry-times", datetime.now(UTC) - timedelta(hours=1))
        publisher.collect()
        sending, queued = publisher.draft("weekly")[0], publisher.draft("evening")[0]
        publisher.queue(sending)
        publisher.queue(queued)
        publisher.settings = settings.with_changes(batch_size=5)
        publisher.start(sending)
        with store.engine.begin() as conn:
            first = ledger.batches_in(conn, sending, BatchState.PENDING)[0]
            ledger.mark_rows(conn, first, DeliveryStatus.SENT, at=store.now())
        with store.engine.begin() as conn:  # a scheduler running on another host
            conn.execute(
                locks.insert().values(
                    name="scheduler", owner="harbour-host:4242:feedc0de", until=time.time() + 600
                )
            )
        return sending, queued
    finally:
        store.close()


def test_status_as_json(home: Path, database_url: str) -> None:
    sending, queued = busy_publication(home, database_url)
    data = json.loads(status(home, "--json"))

    assert data["lock"]["owner"] == "harbour-host:4242:feedc0de"
    assert data["lock"]["expired"] is False
    schedule = {job["id"]: job for job in data["schedule"]}
    assert schedule["digest:evening"]["next_run"] == "2026-11-23 18:00:00-05:00"
    assert schedule["digest:evening"]["timezone"] == "America/New_York"
    assert schedule["digest:weekly"]["next_run"] == "2026-11-23 08:00:00+00:00"
    assert schedule["collect"]["name"] == "collect every 30 min"
    assert [(i["id"], i["state"], i["recipients"]) for i in data["issues"]] == [
        (sending, "sending", {"sent": 5, "queued": 7}),
        (queued, "queued", {}),
    ]
    assert data["issues"][0]["total"] == 12
    assert data["last_collection"]["new"] == 2
    assert [s["source_id"] for s in data["last_collection"]["sources"]] == ["posts"]


def test_status_as_text(home: Path, database_url: str) -> None:
    sending, queued = busy_publication(home, database_url)
    lines = status(home).splitlines()

    assert lines[0].startswith("Scheduler: running as harbour-host:4242:feedc0de (lock renewed")
    assert any(
        line.split()[:5] == ["digest:evening", "next", "2026-11-23", "18:00", "EST"]
        and "(UTC-0500)" in line
        for line in lines
    )
    assert any(
        line.split()[:5] == ["digest:weekly", "next", "2026-11-23", "08:00", "GMT"]
        for line in lines
    )
    assert any(
        line.split()[:3] == [str(sending), "sending", "weekly"] and "5/12 sent (7 queued)" in line
        for line in lines
    )
    assert any(
        line.split()[:3] == [str(queued), "queued", "evening"] and "audience not frozen yet" in line
        for line in lines
    )
    assert any(
        line.startswith("Last collection: ") and "2 new articles" in line for line in lines
    )


def test_status_of_a_publication_never_run(home: Path) -> None:
    assert status(home).splitlines() == [
        "Scheduler: not running (nobody holds the scheduler lock).",
        "Schedule: no jobs yet (they are created when `newsletter run` starts).",
        "Issues: none queued, sending or paused.",
        "Last collection: never.",
    ]
    assert json.loads(status(home, "--json")) == {
        "lock": None,
        "schedule": [],
        "issues": [],
        "last_collection": None,
    }
