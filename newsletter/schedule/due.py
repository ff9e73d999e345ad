"""Which digests ``newsletter run --once`` drafts: the daemon's rule, for a process that exits.

The record of a digest's schedule is the daemon's own: its job in APScheduler's job store
(``apscheduler_jobs``), whose next run time says when the list's next digest falls due. A
``--once`` run treats the stored job as the daemon would at start:

* its next run time has not come: nothing is due (the digest waits for its cron time);
* it has come, within ``NEWSLETTER_MISFIRE_GRACE_SECONDS`` of the latest cron time passed:
  the digest is due, once, however many cron times were missed (they are coalesced);
* it has come, but the latest cron time passed is further back than the grace: that run is
  missed, as the daemon would skip it, and the digest waits for its next cron time.

Either way the next run time is moved past now, so the next ``--once`` (or a daemon
started later) does not draft that slot again. A list with no stored job yet (a fresh
database, or a list new to the publication file) is looked back over the grace: the first
``--once`` within the grace after one of its cron times drafts, a later one waits for the
next cron time. A list whose schedule or zone changed is replaced as the daemon replaces
it: its next digest is its next cron time from now.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from apscheduler.job import Job
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from sqlalchemy import Engine

from ..config import Settings
from .scheduler import JobSpec, build_scheduler, same_job, stop_scheduler


@dataclass(frozen=True, slots=True)
class DigestDue:
    """Whether one digest list drafts in this run, and when its next digest falls due."""

    list_id: str
    due: bool
    slot: datetime | None  # the cron time this run stands for, when due
    next: datetime | None  # the next cron time, in the list's zone
    note: str

    def as_dict(self) -> dict[str, object]:
        return {
            "list": self.list_id,
            "due": self.due,
            "slot": self.slot.isoformat() if self.slot else None,
            "next": self.next.isoformat() if self.next else None,
            "note": self.note,
        }


def digests_due(
    settings: Settings, engine: Engine, specs: Sequence[JobSpec], now: datetime
) -> list[DigestDue]:
    """Decide, and record in the job store, which of the digest jobs ``specs`` are due."""
    digests = [spec for spec in specs if spec.id.startswith("digest:")]
    if not digests:
        return []
    scheduler = build_scheduler(settings, engine)
    scheduler.start(paused=True)  # a store to read and write; no job runs in this process
    try:
        return [_decide(scheduler, spec, now) for spec in digests]
    finally:
        stop_scheduler(scheduler)


def _decide(scheduler: BackgroundScheduler, spec: JobSpec, now: datetime) -> DigestDue:
    list_id = spec.args[1]
    grace = timedelta(seconds=spec.misfire_grace_time)
    job = _stored(scheduler, spec, now)
    if job.next_run_time is None or job.next_run_time > now:
        return DigestDue(list_id, False, None, job.next_run_time, _next_note(job.next_run_time))
    latest = _latest_run_time(job.trigger, job.next_run_time, now)
    following = job.trigger.get_next_fire_time(latest, now)
    scheduler.modify_job(job.id, next_run_time=following)
    if now - latest > grace:
        late = f"{_when(latest)} was missed by more than the grace of {grace}"
        return DigestDue(list_id, False, None, following, f"{late}; {_next_note(following)}")
    return DigestDue(list_id, True, latest, following, f"due since {_when(latest)}")


def _stored(scheduler: BackgroundScheduler, spec: JobSpec, now: datetime) -> Job:
    """The list's stored job, added (or replaced after a change of schedule) if need be."""
    existing = scheduler.get_job(spec.id)
    if existing is not None and same_job(existing, spec):
        return existing
    # Never scheduled: a cron time within the grace still counts. Changed: from now on, as
    # the daemon replaces a changed job (the old schedule's slot may have been drafted).
    since = now - timedelta(seconds=spec.misfire_grace_time) if existing is None else now
    first = spec.trigger.get_next_fire_time(None, since)
    return scheduler.add_job(
        spec.func,
        spec.trigger,
        args=spec.args,
        id=spec.id,
        name=spec.name,
        misfire_grace_time=spec.misfire_grace_time,
        replace_existing=True,
        next_run_time=first,
    )


def _latest_run_time(trigger: BaseTrigger, first: datetime, now: datetime) -> datetime:
    """The last cron time at or before ``now``, starting from the stored ``first``."""
    latest = first
    while (following := trigger.get_next_fire_time(latest, now)) is not None and following <= now:
        latest = following
    return latest


def _when(moment: datetime) -> str:
    zone: tzinfo | None = moment.tzinfo
    return f"{moment:%Y-%m-%d %H:%M} {zone}" if zone is not None else moment.isoformat()


def _next_note(moment: datetime | None) -> str:
    return f"next digest at {_when(moment)}" if moment is not None else "no further digest"
