"""Calendar days and wall-clock times in a company's time zone, turned into real instants.

The one place that turns a day and a wall-clock time in a zone into an instant. Python
adds, subtracts and compares aware datetimes that share a tzinfo on their wall clock,
not in real time: 02:30 + 30 minutes on the night the clocks go back is 03:00 local, 90
real minutes later. So every instant made here is normalised to UTC, and arithmetic on
it afterwards is real arithmetic; a time is read in the zone (`astimezone(zone)`) only to
be shown or spoken.

The rules at a change of the clocks:
- a wall-clock time that occurs twice (the repeated hour in autumn) means its FIRST
  occurrence, the daylight-saving reading (fold=0);
- a wall-clock time that does not occur (the skipped hour in spring) raises
  `NonexistentLocalTime`, which names the real instants around the gap;
- an edge of a range (an opening time, a closing time, midnight) is the instant the
  wall clock reaches it (`clock_reaches`): inside a gap, the end of the gap.
"""

from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

_MICROSECOND = timedelta(microseconds=1)


class NonexistentLocalTime(ValueError):
    """`clock` on `day` does not exist in `zone`: the clocks go forward over it.

    `before` is the last real instant before the gap and `after` the first one after it
    (aware, UTC; one microsecond apart): e.g. for Europe/Berlin on 2027-03-28, 01:59:59.999999
    CET and 03:00 CEST. `skipped_from` / `skipped_to` are the wall-clock times the clocks
    jump between (02:00 and 03:00).
    """

    def __init__(self, day: date, clock: time, zone: ZoneInfo, before: datetime, after: datetime) -> None:
        self.day, self.clock, self.zone, self.before, self.after = day, clock, zone, before, after
        super().__init__(f"{day.isoformat()} {clock:%H:%M} does not exist in {zone.key}: "
                         f"the clocks go forward from {self.skipped_from:%H:%M} to {self.skipped_to:%H:%M}")

    @property
    def skipped_to(self) -> time:
        """The wall-clock time right after the gap (03:00 in Berlin)."""
        return self.after.astimezone(self.zone).time()

    @property
    def skipped_from(self) -> time:
        """The wall-clock time the gap starts at (02:00 in Berlin): the clocks jump from it to `skipped_to`."""
        after, before = self.after.astimezone(self.zone), self.before.astimezone(self.zone)
        jump = after.utcoffset() - before.utcoffset()
        return (after.replace(tzinfo=None) - jump).time()


def as_utc(moment: datetime) -> datetime:
    """The same instant with tzinfo=UTC, so arithmetic and comparisons on it are real.

    Raises ValueError for a naive datetime, and NonexistentLocalTime for a wall-clock
    time in a ZoneInfo that falls in a gap (e.g. datetime(2027, 3, 28, 2, 30, tzinfo=Berlin)).
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment!r} is naive: an instant needs a time zone")
    if isinstance(moment.tzinfo, ZoneInfo):
        wall = moment.replace(tzinfo=None)
        instant = moment.astimezone(UTC)
        if instant.astimezone(moment.tzinfo).replace(tzinfo=None) != wall:
            raise _gap(wall.date(), wall.time(), moment.tzinfo)
        return instant
    return moment.astimezone(UTC)


def wall_clock(day: date, clock: time, zone: ZoneInfo) -> datetime:
    """The instant (aware, tzinfo=UTC) at which the wall clock in `zone` reads `clock` on `day`.

    A time that occurs twice gives its first occurrence; a time in a gap raises
    NonexistentLocalTime (a ValueError).
    """
    clock = clock.replace(tzinfo=None, fold=0)
    local = datetime.combine(day, clock, tzinfo=zone)
    instant = local.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) != local.replace(tzinfo=None):
        raise _gap(day, clock, zone)
    return instant


# The name phrases.py and its callers have used for wall_clock.
local_datetime = wall_clock


def clock_reaches(day: date, clock: time, zone: ZoneInfo) -> datetime:
    """The first instant (UTC) at which the wall clock in `zone` reads `clock` or later on `day`.

    For an edge of a range (opening, closing, midnight): the wall_clock instant, or, for a
    time in a gap, the end of the gap (a window 02:30-04:00 on the spring night opens at 03:00).
    """
    try:
        return wall_clock(day, clock, zone)
    except NonexistentLocalTime as gap:
        return gap.after


def day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) of a calendar day in `zone` as UTC instants (23, 24 or 25 real hours)."""
    return clock_reaches(day, time(0, 0), zone), clock_reaches(day + timedelta(days=1), time(0, 0), zone)


def _other_reading(instant: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """(the instant read in `zone`, the same wall-clock time read with the other fold)."""
    local = instant.astimezone(zone)
    return local, local.replace(fold=1 - local.fold)


def is_ambiguous(instant: datetime, zone: ZoneInfo) -> bool:
    """Whether the wall-clock reading of `instant` in `zone` occurs twice that day (the repeated hour)."""
    local, other = _other_reading(instant, zone)
    return other.utcoffset() != local.utcoffset()


def is_second_occurrence(instant: datetime, zone: ZoneInfo) -> bool:
    """Whether `instant` reads, in `zone`, as the second occurrence of a repeated wall-clock time.

    Such a time cannot be asked for by its wall clock (that means the first occurrence).
    """
    return is_ambiguous(instant, zone) and instant.astimezone(zone).fold == 1


def local_text(instant: datetime, zone: ZoneInfo, fmt: str) -> str:
    """`instant` formatted (strftime `fmt`) in `zone`; where that reading occurs twice that day,
    followed by the zone's abbreviation: '02:30 CEST' / '02:30 CET'. For screens, not speech."""
    local = instant.astimezone(zone)
    return f"{local:{fmt}} {local.tzname()}" if is_ambiguous(instant, zone) else f"{local:{fmt}}"


def ambiguous_reading(instant: datetime, zone: ZoneInfo) -> Literal["daylight", "standard"] | None:
    """For a repeated wall-clock time, which of the two `instant` is; None when its reading is unique.

    "daylight" is the occurrence with the greater dst() (summer time), "standard" the
    other; where both have the same dst() (a zone changing its standard offset), the
    one with the greater UTC offset counts as "daylight".
    """
    local, other = _other_reading(instant, zone)
    if other.utcoffset() == local.utcoffset():
        return None
    if local.dst() != other.dst():
        return "daylight" if local.dst() > other.dst() else "standard"
    return "daylight" if local.utcoffset() > other.utcoffset() else "standard"


def _gap(day: date, clock: time, zone: ZoneInfo) -> NonexistentLocalTime:
    """The NonexistentLocalTime for a wall-clock time known to fall in a gap."""
    wall = datetime.combine(day, clock.replace(tzinfo=None, fold=0))
    # Read with the offset after the change (fold=1) the time lands before the gap, with
    # the offset before it (fold=0) after; the change lies between, on a whole second.
    low = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    high = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    offset_before = low.astimezone(zone).utcoffset()
    low_s, high_s = int(low.timestamp()), int(high.timestamp()) + 1
    while high_s - low_s > 1:  # invariant: the offset at low_s is the old one, at high_s the new one
        middle = (low_s + high_s) // 2
        if datetime.fromtimestamp(middle, UTC).astimezone(zone).utcoffset() == offset_before:
            low_s = middle
        else:
            high_s = middle
    after = datetime.fromtimestamp(high_s, UTC)
    return NonexistentLocalTime(day, clock, zone, before=after - _MICROSECOND, after=after)
