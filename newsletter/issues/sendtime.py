"""When to send: an editor's local time read in the list's timezone, and checked.

A time is written as the editor thinks of it, in the list's timezone ('2026-12-01 08:00'),
or with an explicit UTC offset ('2026-12-01 08:00+01:00'). Daylight saving makes two kinds
of local time odd, and each is handled the way a wall clock would suggest:

* a time in the spring gap (01:30 on the night the clocks jump from 01:00 to 02:00) never
  happens: it is refused, naming the gap;
* a time in the autumn overlap (01:30 on the night the clocks go back from 02:00 to 01:00)
  happens twice: the first is taken — the moment the editor's clock first shows it — and
  the editor is told so, with the way to write the second.

A time before the current minute is refused: queued for the past, an issue would go out at
once, which is not what anyone who typed a time meant.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from ..errors import ConfigError

FORMAT_HINT = "expected a time like '2026-12-01 08:00'"


@dataclass(frozen=True, slots=True)
class SendTime:
    """An aware send time, and a sentence for the editor when the reading needed a choice."""

    at: datetime
    note: str = ""


def parse(value: str, timezone: str, *, field: str = "--at") -> SendTime:
    """``value`` as a local time in ``timezone`` (or with its own offset)."""
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(f"{field} {value!r}: {FORMAT_HINT}") from exc
    if parsed.tzinfo is not None:
        return SendTime(parsed)
    zone = ZoneInfo(timezone)
    first, second = parsed.replace(tzinfo=zone, fold=0), parsed.replace(tzinfo=zone, fold=1)
    if not _exists(first):
        start, end = _change_around(first, second, zone)
        raise ConfigError(
            f"{field} {parsed:%Y-%m-%d %H:%M} does not exist in {timezone}: the clocks go "
            f"forward from {start:%H:%M} to {end:%H:%M} that night (a daylight-saving gap); "
            "give a time outside it"
        )
    if first.utcoffset() != second.utcoffset():
        start, _ = _change_around(first, second, zone)
        return SendTime(
            first,
            f"{parsed:%Y-%m-%d %H:%M} happens twice in {timezone} (the clocks go back at "
            f"{start:%H:%M}): the first is taken, {utc_offset(first)}; for the second give "
            f"'{parsed:%Y-%m-%d %H:%M}{utc_offset(second)[3:]}'",
        )
    return SendTime(first)


def require_future(at: datetime, now: datetime, timezone: str, *, field: str = "--at") -> None:
    """Refuse a send time before the current minute (a time in this minute means now)."""
    if at >= now.replace(second=0, microsecond=0):
        return
    zone = ZoneInfo(timezone)
    local, local_now = at.astimezone(zone), now.astimezone(zone)
    raise ConfigError(
        f"{field} {local:%Y-%m-%d %H:%M} {timezone} ({utc_offset(local)}) is in the past: it "
        f"is now {local_now:%Y-%m-%d %H:%M} {timezone}; give a later time, or leave out "
        f"{field} to send now"
    )


def describe(at: datetime, timezone: str) -> str:
    """'2026-06-01 08:00 Europe/London (UTC+01:00; 2026-06-01 07:00 UTC)'."""
    local = at.astimezone(ZoneInfo(timezone))
    return (
        f"{local:%Y-%m-%d %H:%M} {timezone} ({utc_offset(local)}; "
        f"{at.astimezone(UTC):%Y-%m-%d %H:%M} UTC)"
    )


def utc_offset(at: datetime) -> str:
    """'UTC+01:00', 'UTC-05:00', 'UTC+05:45'."""
    offset = at.utcoffset() or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _exists(local: datetime) -> bool:
    """Whether a local time survives the round trip through UTC (it does not in a gap)."""
    back = local.astimezone(UTC).astimezone(local.tzinfo)
    return back.replace(tzinfo=None) == local.replace(tzinfo=None)


def _change_around(first: datetime, second: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The local times just before and just after the clock change near a gap or overlap.

    Between the two readings of the same wall time lies the change; it is found to the
    minute by walking (a change moves the clock by at most a few hours)."""
    low, high = sorted((first.astimezone(UTC), second.astimezone(UTC)))
    before = low.astimezone(zone).utcoffset()
    moment = low
    while moment < high and moment.astimezone(zone).utcoffset() == before:
        moment += timedelta(minutes=1)
    after = moment.astimezone(zone).utcoffset() or timedelta(0)
    naive = moment.replace(tzinfo=None)
    return naive + (before or timedelta(0)), naive + after
