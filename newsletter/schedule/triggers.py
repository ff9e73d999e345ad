"""When digests go out: a list's cron expression read as wall-clock time in its own zone.

APScheduler's ``CronTrigger`` computes fire times field by field on the local clock. Where
the clock jumps forward (the spring gap) a time such as 01:30 that does not exist that day
is read with the offset in force before the change, so the digest goes out once, an hour
later by the new clock: late, never skipped. Where the clock goes back (the autumn overlap)
01:30 happens twice and the plain trigger fires at both; ``WallClockCronTrigger`` fires at
the first and skips the repeat, so no reader gets the same digest slot twice.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
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
        if previous_fire_time is None or candidate is None:
            return candidate
        if _wall(candidate, self.timezone) > _wall(previous_fire_time, self.timezone):
            return candidate
        # The clocks went back and the same local time came round again: it has fired.
        resume = max(now.astimezone(UTC), _after_last(previous_fire_time, self.timezone))
        return super().get_next_fire_time(None, resume)


def _wall(moment: datetime, zone: tzinfo) -> datetime:
    """What the clock on the wall shows at ``moment``."""
    return moment.astimezone(zone).replace(tzinfo=None)


def _after_last(moment: datetime, zone: tzinfo) -> datetime:
    """Just after the wall clock shows ``moment``'s local time for the last time (in UTC).

    Computed in UTC: local arithmetic near a change of offset loses the ``fold`` that tells
    the two passes of the repeated hour apart.
    """
    last = moment.astimezone(zone).replace(fold=1)  # the later pass, if the time recurs
    return last.astimezone(UTC) + timedelta(microseconds=1)


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
