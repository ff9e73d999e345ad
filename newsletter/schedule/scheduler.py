"""The APScheduler wiring: which jobs exist, how they run, and where they are kept.

Jobs live in the project's database (``apscheduler_jobs``, created by APScheduler's own
``SQLAlchemyJobStore``), so a restarted scheduler knows what it missed. Every job runs
with ``coalesce`` (a backlog of missed runs becomes one catch-up run), ``max_instances=1``
and the configured misfire grace.

At start the stored jobs are brought in line with the publication file. A job whose
function, arguments and schedule are unchanged is left as stored: replacing it would
compute its next run from now and silently drop the run it missed while the scheduler was
down. A changed job is replaced (``replace_existing=True``); a job of a list that no longer
exists, or is no longer a digest, is removed.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.job import Job
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger
from apscheduler.util import obj_to_ref
from sqlalchemy import Engine, inspect, select
from sqlalchemy.exc import SQLAlchemyError

from ..config import Settings
from ..errors import StoreError
from ..lists.config import PublicationConfig
from ..models import Cadence
from . import jobs, triggers

log = logging.getLogger(__name__)

JOBS_TABLE = "apscheduler_jobs"
JOBSTORE = "default"
JOB_THREADS = 4


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A job as the current configuration wants it."""

    id: str
    func: Callable[..., None]
    args: tuple[str, ...]
    trigger: BaseTrigger
    name: str  # says when it runs, so a changed name is a changed schedule
    misfire_grace_time: int  # seconds late a run may still start; later, it is skipped
    run_at_start: bool = False  # a new periodic job runs once at start, not an interval later


@dataclass
class SyncReport:
    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def job_specs(settings: Settings, config: PublicationConfig) -> list[JobSpec]:
    """Collection, dispatch, and one digest job per digest list."""
    home = str(settings.home)
    minutes = settings.collect_interval_minutes
    grace = settings.misfire_grace_seconds
    specs = [
        JobSpec(
            "collect",
            jobs.collect_job,
            (home,),
            IntervalTrigger(minutes=minutes, timezone=UTC),
            f"collect every {minutes} min",
            grace,
            run_at_start=True,
        ),
        JobSpec(
            "dispatch",
            jobs.dispatch_job,
            (home,),
            IntervalTrigger(seconds=jobs.DISPATCH_SECONDS, timezone=UTC),
            f"send due issues every {jobs.DISPATCH_SECONDS} s",
            grace,
            run_at_start=True,
        ),
    ]
    for mailing_list in config.lists.values():
        if mailing_list.cadence == Cadence.DIGEST:
            specs.append(
                JobSpec(
                    f"digest:{mailing_list.id}",
                    jobs.digest_job,
                    (home, mailing_list.id),
                    triggers.digest_trigger(mailing_list),
                    triggers.describe(mailing_list),
                    grace,
                )
            )
    return specs


def build_scheduler(settings: Settings, engine: Engine) -> BackgroundScheduler:
    """A scheduler whose jobs are stored through ``engine`` (not yet started)."""
    return BackgroundScheduler(
        jobstores={JOBSTORE: SQLAlchemyJobStore(engine=engine, tablename=JOBS_TABLE)},
        executors={"default": ThreadPoolExecutor(JOB_THREADS)},
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": settings.misfire_grace_seconds,
        },
        timezone=UTC,
    )


def sync_jobs(scheduler: BackgroundScheduler, specs: Sequence[JobSpec]) -> SyncReport:
    """Make the stored jobs match ``specs``; the scheduler must be started (paused is fine)."""
    report = SyncReport()
    wanted = {spec.id: spec for spec in specs}
    for job in scheduler.get_jobs():
        if job.id not in wanted:
            scheduler.remove_job(job.id)
            report.removed.append(job.id)
    for spec in specs:
        existing = scheduler.get_job(spec.id)
        if existing is not None and same_job(existing, spec):
            report.kept.append(spec.id)
            continue
        _add(scheduler, spec, first=existing is None)
        (report.added if existing is None else report.replaced).append(spec.id)
    return report


def same_job(job: Job, spec: JobSpec) -> bool:
    """The stored ``job`` runs what ``spec`` asks, on the same schedule."""
    return (
        job.func_ref == obj_to_ref(spec.func)
        and tuple(job.args) == spec.args
        and job.name == spec.name
        and job.misfire_grace_time == spec.misfire_grace_time
    )


def _add(scheduler: BackgroundScheduler, spec: JobSpec, *, first: bool) -> None:
    options: dict[str, Any] = {}
    if first and spec.run_at_start:
        options["next_run_time"] = datetime.now(UTC)
    scheduler.add_job(
        spec.func,
        spec.trigger,
        args=spec.args,
        id=spec.id,
        name=spec.name,
        misfire_grace_time=spec.misfire_grace_time,
        replace_existing=True,
        **options,
    )


def start_scheduler(
    settings: Settings, engine: Engine, specs: Sequence[JobSpec]
) -> BackgroundScheduler:
    """Start a scheduler with its jobs brought up to date, missed runs caught up once."""
    scheduler = build_scheduler(settings, engine)
    scheduler.start(paused=True)  # nothing may run before the jobs match the configuration
    try:
        report = sync_jobs(scheduler, specs)
    except BaseException:
        stop_scheduler(scheduler)
        raise
    log.info(
        "jobs: %s added, %s replaced, %s kept, %s removed",
        *(
            ", ".join(ids) or "none"
            for ids in (report.added, report.replaced, report.kept, report.removed)
        ),
    )
    scheduler.resume()
    return scheduler


def stop_scheduler(scheduler: BackgroundScheduler) -> None:
    """Start nothing more, wait for running jobs, and leave the stored jobs as they are.

    APScheduler's thread makes one more pass over due jobs after ``shutdown`` has closed the
    executor: the submission fails, yet the job's next run time is moved on, so a run due at
    that moment would be lost rather than caught up at the next start. Detaching the job
    store first leaves that pass nothing to touch.
    """
    scheduler.pause()
    scheduler.remove_jobstore(JOBSTORE)
    scheduler.shutdown(wait=True)


# -- reading the schedule without running it (``newsletter status``) -------------------------
@dataclass(frozen=True, slots=True)
class ScheduledJob:
    id: str
    name: str
    next_run: datetime | None  # in the job's own time zone (a digest's list's zone)
    timezone: str


def read_schedule(engine: Engine) -> list[ScheduledJob]:
    """The stored jobs, soonest first; empty if no scheduler has ever run on this database."""
    try:
        if not inspect(engine).has_table(JOBS_TABLE):
            return []
        table = SQLAlchemyJobStore(engine=engine, tablename=JOBS_TABLE).jobs_t
        with engine.connect() as conn:
            rows = conn.execute(select(table.c.job_state).order_by(table.c.next_run_time)).all()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the schedule from {JOBS_TABLE}: {exc}") from exc
    return [_scheduled(pickle.loads(row.job_state)) for row in rows]


def _scheduled(state: dict[str, Any]) -> ScheduledJob:
    zone: tzinfo = getattr(state["trigger"], "timezone", UTC)
    next_run = state.get("next_run_time")
    return ScheduledJob(
        id=state["id"],
        name=state["name"],
        next_run=next_run.astimezone(zone) if next_run is not None else None,
        timezone=str(zone),
    )
