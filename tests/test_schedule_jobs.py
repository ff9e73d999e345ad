"""The APScheduler wiring on real databases: stored jobs, updates at start, catch-up runs.

Jobs are kept by APScheduler's ``SQLAlchemyJobStore`` in the project's database (SQLite and
PostgreSQL). The scheduler runs for real in its background thread; time-machine moves the
clock to "after the scheduler was down", and the tests wait on the scheduler's own events.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from apscheduler.events import EVENT_JOB_EXECUTED, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import func, select

from newsletter.config import Settings
from newsletter.delivery.providers.outbox import OutboxProvider
from newsletter.schedule import jobs
from newsletter.schedule.jobs import Runtime, installed
from newsletter.schedule.scheduler import (
    JobSpec,
    ScheduledJob,
    build_scheduler,
    job_specs,
    read_schedule,
    stop_scheduler,
    sync_jobs,
)
from newsletter.store import Store, make_engine
from newsletter.store.tables import collections, issues
from tests.schedule_helpers import ListSpec, make_home, open_publication, write_publication

T0 = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # a Monday, an hour before the weekly digest
LISTS = [
    ListSpec("weekly", schedule="0 8 * * mon", timezone="Europe/London"),
    ListSpec("evening", schedule="0 18 * * *", timezone="America/New_York"),
    ListSpec("alerts", "instant"),
]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return make_home(tmp_path, LISTS)


def specs_for(home: Path, database_url: str) -> tuple[Settings, list[JobSpec]]:
    settings, store, publisher = open_publication(home, database_url)
    store.close()
    return settings, job_specs(settings, publisher.config)


@contextmanager
def paused(settings: Settings) -> Iterator[BackgroundScheduler]:
    """A started but paused scheduler: jobs can be read and changed, none runs."""
    scheduler = build_scheduler(settings, make_engine(settings.database_url))
    scheduler.start(paused=True)
    try:
        yield scheduler
    finally:
        stop_scheduler(scheduler)


def stored_schedule(settings: Settings) -> dict[str, ScheduledJob]:
    engine = make_engine(settings.database_url)
    try:
        return {job.id: job for job in read_schedule(engine)}
    finally:
        engine.dispose()


def stored_next_runs(settings: Settings) -> dict[str, datetime]:
    return {i: job.next_run for i, job in stored_schedule(settings).items() if job.next_run}


def test_the_jobs_are_collection_dispatch_and_one_digest_per_digest_list(
    home: Path,
    tmp_path: Path,
) -> None:
    _, specs = specs_for(home, f"sqlite:///{tmp_path / 'n.db'}")
    assert [(s.id, s.func, s.args, s.name) for s in specs] == [
        ("collect", jobs.collect_job, (str(home),), "collect every 30 min"),
        ("dispatch", jobs.dispatch_job, (str(home),), "send due issues every 30 s"),
        (
            "digest:weekly",
            jobs.digest_job,
            (str(home), "weekly"),
            "digest of weekly at '0 8 * * mon' (Europe/London)",
        ),
        (
            "digest:evening",
            jobs.digest_job,
            (str(home), "evening"),
            "digest of evening at '0 18 * * *' (America/New_York)",
        ),
    ]


def test_jobs_are_stored_and_brought_in_line_with_the_configuration_at_start(
    home: Path,
    database_url: str,
) -> None:
    with time_machine.travel(T0, tick=False):
        settings, specs = specs_for(home, database_url)
        with paused(settings) as scheduler:
            first = sync_jobs(scheduler, specs)
        before = stored_next_runs(settings)
    assert first.added == ["collect", "dispatch", "digest:weekly", "digest:evening"]
    assert before["collect"] == T0 and before["dispatch"] == T0  # periodic jobs start at once
    assert before["digest:weekly"] == datetime(2026, 11, 23, 8, 0, tzinfo=ZoneInfo("Europe/London"))

    # Back two hours later: "evening" is gone, "weekly" now goes out on Tuesdays.
    write_publication(
        home,
        [
            ListSpec("weekly", schedule="0 8 * * tue", timezone="Europe/London"),
            ListSpec("alerts", "instant"),
        ],
    )
    with time_machine.travel(T0 + timedelta(hours=2), tick=False):
        settings, specs = specs_for(home, database_url)
        with paused(settings) as scheduler:
            second = sync_jobs(scheduler, specs)
        after = stored_next_runs(settings)
    assert (second.kept, second.replaced, second.removed) == (
        ["collect", "dispatch"],
        ["digest:weekly"],
        ["digest:evening"],
    )
    assert after["collect"] == T0  # kept as stored: its missed run is still owed
    assert after["digest:weekly"] == datetime(2026, 11, 24, 8, 0, tzinfo=ZoneInfo("Europe/London"))
    assert set(after) == {"collect", "dispatch", "digest:weekly"}


def test_the_schedule_is_read_back_in_each_lists_zone(home: Path, database_url: str) -> None:
    with time_machine.travel(T0, tick=False):
        settings, specs = specs_for(home, database_url)
        with paused(settings) as scheduler:
            sync_jobs(scheduler, specs)
    schedule = stored_schedule(settings)
    evening = schedule["digest:evening"]
    assert evening.timezone == "America/New_York"
    assert evening.next_run is not None
    assert evening.next_run.isoformat() == "2026-11-23T18:00:00-05:00"
    assert schedule["collect"].timezone == "UTC"


def test_no_schedule_before_any_scheduler_ran(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'fresh.db'}")
    try:
        assert read_schedule(store.engine) == []
    finally:
        store.close()


class Recorder:
    """Job events from the scheduler's thread, and a way to wait for one."""

    def __init__(self) -> None:
        self.seen: Counter[tuple[str, int]] = Counter()
        self._condition = threading.Condition()

    def __call__(self, event: JobExecutionEvent) -> None:
        with self._condition:
            self.seen[(event.job_id, event.code)] += 1
            self._condition.notify_all()

    def wait_for(self, job_id: str, code: int) -> None:
        with self._condition:
            assert self._condition.wait_for(lambda: self.seen[(job_id, code)] > 0, timeout=60)


def restart_after_downtime(settings: Settings, store: Store, down: timedelta) -> Recorder:
    """Store the jobs at T0 without running them, then start the scheduler ``down`` later."""
    with time_machine.travel(T0, tick=False), paused(settings) as scheduler:
        sync_jobs(scheduler, job_specs(settings, Runtime(settings, store).publisher().config))
    recorder = Recorder()
    with time_machine.travel(T0 + down, tick=True):
        scheduler = build_scheduler(settings, make_engine(settings.database_url))
        scheduler.add_listener(recorder, EVENT_JOB_EXECUTED | EVENT_JOB_MISSED)
        scheduler.start(paused=True)
        sync_jobs(scheduler, job_specs(settings, Runtime(settings, store).publisher().config))
        scheduler.resume()
        try:
            recorder.wait_for("collect", EVENT_JOB_EXECUTED)
            recorder.wait_for(
                "digest:weekly",
                EVENT_JOB_EXECUTED if down < timedelta(hours=2) else EVENT_JOB_MISSED,
            )
        finally:
            stop_scheduler(scheduler)
    return recorder


@contextmanager
def runtime_installed(home: Path, database_url: str) -> Iterator[tuple[Settings, Store]]:
    settings, store, _ = open_publication(home, database_url)
    try:
        with installed(Runtime(settings, store, provider=OutboxProvider(settings))):
            yield settings, store
    finally:
        store.close()


def test_runs_missed_while_down_are_caught_up_once(home: Path, database_url: str) -> None:
    # Down for an hour and a half: four collections and the 08:00 digest were missed.
    with runtime_installed(home, database_url) as (settings, store):
        seen = restart_after_downtime(settings, store, timedelta(hours=1, minutes=30)).seen
        with store.engine.connect() as conn:
            collected = conn.execute(select(func.count()).select_from(collections)).scalar()
    assert seen[("collect", EVENT_JOB_EXECUTED)] == 1
    assert seen[("digest:weekly", EVENT_JOB_EXECUTED)] == 1
    assert collected == 1


def test_a_run_missed_by_more_than_the_grace_is_skipped(home: Path, database_url: str) -> None:
    with runtime_installed(home, database_url) as (settings, store):
        seen = restart_after_downtime(settings, store, timedelta(days=3)).seen
        with store.engine.connect() as conn:
            drafted = conn.execute(select(func.count()).select_from(issues)).scalar()
        next_runs = stored_next_runs(settings)
    assert seen[("digest:weekly", EVENT_JOB_MISSED)] == 1
    assert seen[("digest:weekly", EVENT_JOB_EXECUTED)] == 0
    assert seen[("collect", EVENT_JOB_EXECUTED)] == 1  # its latest missed run is recent
    assert drafted == 0
    assert next_runs["digest:weekly"] == datetime(
        2026, 11, 30, 8, 0, tzinfo=ZoneInfo("Europe/London")
    )
