"""Digest schedules across daylight-saving changes: every local day once, never twice.

Fire times are walked the way APScheduler walks them: each next time is asked for with the
previous fire time and a ``now`` just after it (the job has just run).
"""

from __future__ import annotations

import pickle
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger

from newsletter.errors import ConfigError
from newsletter.models import MailingList
from newsletter.schedule.triggers import WallClockCronTrigger, describe, digest_trigger


def fire_times(
    trigger: CronTrigger,
    start: datetime,
    days: int,
    *,
    stored_in_utc: bool = False,
) -> list[datetime]:
    """``stored_in_utc``: the previous fire time comes back in UTC, as a job store may give it."""
    end = start + timedelta(days=days)
    fires: list[datetime] = []
    previous: datetime | None = None
    now = start
    while (fire := trigger.get_next_fire_time(previous, now)) is not None and fire < end:
        fires.append(fire)
        previous = fire.astimezone(UTC) if stored_in_utc else fire
        now = fire.astimezone(UTC) + timedelta(seconds=3)  # the scheduler's clock is UTC
    return fires


def local_days(fires: list[datetime], zone: ZoneInfo) -> Counter[date]:
    return Counter(f.astimezone(zone).date() for f in fires)


# zone, cron, where the month starts, the day of the change, that day's fire in UTC
DST_MONTHS = [
    pytest.param(
        "Europe/London",
        "30 1 * * *",
        datetime(2026, 3, 15),
        date(2026, 3, 29),
        datetime(2026, 3, 29, 1, 30, tzinfo=UTC),
        id="london-spring-gap",
    ),
    pytest.param(
        "Europe/London",
        "30 1 * * *",
        datetime(2026, 10, 10),
        date(2026, 10, 25),
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        id="london-autumn-overlap",
    ),
    pytest.param(
        "America/New_York",
        "30 2 * * *",
        datetime(2026, 2, 25),
        date(2026, 3, 8),
        datetime(2026, 3, 8, 7, 30, tzinfo=UTC),
        id="new-york-spring-gap",
    ),
    pytest.param(
        "America/New_York",
        "30 1 * * *",
        datetime(2026, 10, 20),
        date(2026, 11, 1),
        datetime(2026, 11, 1, 5, 30, tzinfo=UTC),
        id="new-york-autumn-overlap",
    ),
]


@pytest.mark.parametrize("stored_in_utc", [False, True], ids=["local", "utc"])
@pytest.mark.parametrize(("zone_name", "cron", "start", "change_day", "change_fire"), DST_MONTHS)
def test_a_month_across_a_change_fires_once_every_local_day(
    zone_name: str,
    cron: str,
    start: datetime,
    change_day: date,
    change_fire: datetime,
    stored_in_utc: bool,
) -> None:
    zone = ZoneInfo(zone_name)
    trigger = WallClockCronTrigger.from_crontab(cron, timezone=zone)
    fires = fire_times(trigger, start.replace(tzinfo=zone), days=31, stored_in_utc=stored_in_utc)

    per_day = local_days(fires, zone)
    first = start.date()
    assert sorted(per_day) == [first + timedelta(days=n) for n in range(31)]  # none skipped
    assert set(per_day.values()) == {1}  # none doubled
    assert fires == sorted(fires)
    on_change_day = [f for f in fires if f.astimezone(zone).date() == change_day]
    assert [f.astimezone(UTC) for f in on_change_day] == [change_fire]


@pytest.mark.parametrize(
    ("zone_name", "day"),
    [("Europe/London", date(2026, 10, 25)), ("America/New_York", date(2026, 11, 1))],
)
def test_the_plain_cron_trigger_would_fire_twice_in_the_repeated_hour(
    zone_name: str,
    day: date,
) -> None:
    zone = ZoneInfo(zone_name)
    start = datetime.combine(day - timedelta(days=3), time(), zone)
    plain = fire_times(CronTrigger.from_crontab("30 1 * * *", timezone=zone), start, days=7)
    safe = fire_times(WallClockCronTrigger.from_crontab("30 1 * * *", timezone=zone), start, days=7)
    assert local_days(plain, zone)[day] == 2
    assert local_days(safe, zone)[day] == 1
    assert len(safe) == 7


def test_every_slot_of_a_repeated_hour_fires_once() -> None:
    zone = ZoneInfo("Europe/London")
    trigger = WallClockCronTrigger.from_crontab("*/20 1 * * *", timezone=zone)
    fires = fire_times(trigger, datetime(2026, 10, 24, tzinfo=zone), days=3)
    walls = [f.astimezone(zone).strftime("%d %H:%M") for f in fires]
    assert walls == [
        "24 01:00",
        "24 01:20",
        "24 01:40",
        "25 01:00",
        "25 01:20",
        "25 01:40",
        "26 01:00",
        "26 01:20",
        "26 01:40",
    ]


def test_a_scheduler_back_during_the_repeated_hour_catches_up_the_first_pass_only() -> None:
    zone = ZoneInfo("America/New_York")
    trigger = WallClockCronTrigger.from_crontab("30 1 * * *", timezone=zone)
    stored = datetime(2026, 11, 1, 1, 30, tzinfo=zone)  # the first 01:30, missed while down
    now = datetime(2026, 11, 1, 1, 45, tzinfo=zone, fold=1)  # back at the second 01:45
    missed = []
    fire: datetime | None = stored
    while fire is not None and fire <= now:  # how APScheduler lists a job's missed run times
        missed.append(fire)
        fire = trigger.get_next_fire_time(fire, now)
    assert missed == [stored]
    assert fire == datetime(2026, 11, 2, 1, 30, tzinfo=zone)


def test_a_weekly_digest_goes_out_every_sunday_of_the_year_once() -> None:
    zone = ZoneInfo("Europe/London")
    trigger = WallClockCronTrigger.from_crontab("30 1 * * sun", timezone=zone)
    fires = fire_times(trigger, datetime(2026, 1, 1, tzinfo=zone), days=365)
    sundays = [d for d in (date(2026, 1, 1) + timedelta(n) for n in range(365)) if d.weekday() == 6]
    assert [f.astimezone(zone).date() for f in fires] == sundays


def test_the_trigger_survives_the_job_store() -> None:
    listed = MailingList(
        "weekly",
        "Weekly",
        ("weekly.csv",),
        ("posts",),
        schedule="30 1 * * *",
        timezone="Europe/London",
    )
    restored = pickle.loads(pickle.dumps(digest_trigger(listed)))
    assert isinstance(restored, WallClockCronTrigger)
    start = datetime(2026, 10, 24, tzinfo=ZoneInfo("Europe/London"))
    assert fire_times(restored, start, days=3) == fire_times(digest_trigger(listed), start, days=3)
    assert describe(listed) == "digest of weekly at '30 1 * * *' (Europe/London)"


def test_an_unusable_zone_is_a_config_error_naming_the_list() -> None:
    listed = MailingList("weekly", "Weekly", ("weekly.csv",), ("posts",), timezone="Mars/Olympus")
    with pytest.raises(ConfigError, match=r"list .weekly.*Mars/Olympus"):
        digest_trigger(listed)
