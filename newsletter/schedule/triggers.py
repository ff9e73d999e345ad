"""When digests go out: a list's cron expression read as wall-clock time in its own zone.

APScheduler's ``CronTrigger`` computes fire times field by field on the local clock. Where
the clock jumps forward (the spring gap) a time such as 01:30 that does not exist that day
is read with the offset in force before the change, so the digest goes out once, an hour
later by the new clock: late, never skipped. Where the clock goes back (the autumn overlap)
01:30 happens twice and the plain trigger fires at both; ``WallClockCronTrigger`` fires at
the first and skips the repeat, so no reader gets the same digest slot twice.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from ..errors import ConfigError
from ..models import MailingList


class WallClockCronTrigger(CronTrigger):
    """A cron trigger on which each local wall-clock time fires at most once."""

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        candidate = super().get_next_fire_time(previous_fire_time, now)
        if previous_fire_time is None:
            return candidate
        while candidate is not None and not _later(candidate, previous_fire_time):
            # The repeated hour gives the same local time again: treat it as already fired.
            candidate = super().get_next_fire_time(candidate, max(now, candidate))
        return candidate


def _later(candidate: datetime, previous: datetime) -> bool:
    """True if ``candidate`` is after ``previous`` both on the wall clock and in real time."""
    zone = previous.tzinfo
    wall = candidate.astimezone(zone).replace(tzinfo=None)
    return wall > previous.replace(tzinfo=None) and candidate > previous


def digest_trigger(mailing_list: MailingList) -> WallClockCronTrigger:
    """The trigger of a digest list: its ``schedule`` in its ``timezone``."""
    try:
        zone = ZoneInfo(mailing_list.timezone)
        trigger = WallClockCronTrigger.from_crontab(mailing_list.schedule, timezone=zone)
    except (ValueError, KeyError) as exc:
        raise ConfigError(
            f"list {mailing_list.id!r}: schedule {mailing_list.schedule!r} in "
            f"{mailing_list.timezone!r} cannot be used: {exc}"
        ) from exc
    assert isinstance(trigger, WallClockCronTrigger)  # from_crontab builds ``cls``
    return trigger


def describe(mailing_list: MailingList) -> str:
    """How a digest job is named; a different name at start means a different schedule."""
    return f"digest of {mailing_list.id} at '{mailing_list.schedule}' ({mailing_list.timezone})"
