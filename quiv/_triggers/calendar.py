"""Calendar intervals: every N days, weeks, months or years at a wall-clock time.

Written on :mod:`zoneinfo` arithmetic alone; wall times go through the same
DST resolution as fixed-time cron expressions (:func:`quiv._fires.resolve_wall_time`).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo

from .._checks import resolve_timezone
from .._errors import ConfigurationError
from .wall import aware_utc, resolve_wall_time, zone_name

__all__ = ("CalendarIntervalTrigger",)

UTC = timezone.utc

#: the mean length of a Gregorian month, to estimate how many steps to skip
_MEAN_MONTH_DAYS = 365.2425 / 12


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError.bad_value(name, value, "an int >= 0")
    return value


@dataclass(frozen=True, slots=True, init=False, repr=False)
class CalendarIntervalTrigger:
    """Fire every N years, months, weeks and/or days at a wall-clock time, in a time zone.

    ``CalendarIntervalTrigger(months=1, at=time(2, 30), start=date(2025, 1, 31),
    timezone="Europe/Berlin")`` fires at 02:30 Berlin time on Jan 31, Feb 28,
    Mar 31, Apr 30, ...

    **Occurrences.** Occurrence *k* (k = 0, 1, 2, ...) is on the date
    ``start + k × (years, months)``, then ``+ k × (weeks, days)``, at the
    wall time *at*. Each occurrence is computed from *start*, not from the
    previous one, and a day that the target month lacks is **clamped** to the
    month's last day: a monthly schedule from Jan 31 runs on Feb 28 (29 in a
    leap year), then on Mar 31 again; a yearly one from Feb 29 runs on Feb 28
    in common years and on Feb 29 in leap years.

    **Start.** *start* anchors the schedule:

    * a :class:`~datetime.date`: occurrence 0 is at *at* on that date (in the
      trigger's zone), even if that is in the past: fires are always the
      grid's occurrences, and :meth:`next_fire` returns the first one after
      the time it is asked about;
    * a :class:`~datetime.datetime`: its date (in the trigger's zone) anchors
      the grid and no fire comes before it; a naive datetime is a wall time in
      the trigger's zone;
    * ``None`` (the default): the schedule is anchored when the scheduler
      adds it (:meth:`with_start`), so it first runs at the next *at* from
      then; an unanchored trigger behaves as if anchored at the time
      :meth:`next_fire` is asked about.

    **DST policy**, as for fixed-time cron expressions: a wall time in the
    spring-forward gap runs at the first valid instant after the gap (02:30 on
    Berlin's spring-forward day runs at 03:00 CEST); a wall time that occurs
    twice in the autumn overlap runs once, at the first occurrence.

    **Time zone.** *timezone* is an IANA name, ``"UTC"`` or a
    :class:`~datetime.tzinfo`; ``None`` means the scheduler's ``timezone=``
    (:meth:`with_timezone`); a trigger that still has none computes in UTC.

    :param days: days between runs
    :param weeks: weeks between runs
    :param months: months between runs
    :param years: years between runs (at least one of the four must be > 0)
    :param at: the wall-clock time of day, a :class:`~datetime.time` without ``tzinfo``
    :param start: the anchor, see above
    :param timezone: the zone *at* is read in
    :raises ConfigurationError: naming the parameter and the value, for a
        negative or non-int count, all counts zero, an *at* that is not a naive
        ``time``, or a *start* that is not a date or datetime
    :raises InvalidTimezoneError: if *timezone* names no known zone
    """

    years: int
    months: int
    weeks: int
    days: int
    #: The wall-clock time of day each run happens at.
    at: time
    #: The anchor of the schedule (``None`` until the scheduler anchors it).
    start: date | None
    #: The zone *at* is read in; ``None`` means the scheduler's default.
    timezone: tzinfo | None

    def __init__(
        self,
        *,
        days: int = 0,
        weeks: int = 0,
        months: int = 0,
        years: int = 0,
        at: time = time(0, 0),
        start: date | datetime | None = None,
        timezone: str | tzinfo | None = None,
    ) -> None:
        counts = {
            "years": _count("years", years),
            "months": _count("months", months),
            "weeks": _count("weeks", weeks),
            "days": _count("days", days),
        }
        if not any(counts.values()):
            raise ConfigurationError(
                "at least one of days, weeks, months and years must be > 0, "
                f"got days={days!r}, weeks={weeks!r}, months={months!r}, years={years!r}"
            )
        if not isinstance(at, time) or at.tzinfo is not None:
            raise ConfigurationError.bad_value("at", at, "a datetime.time without tzinfo")
        if start is not None and not isinstance(start, date):
            raise ConfigurationError.bad_value("start", start, "a date, a datetime or None")
        zone = None if timezone is None else resolve_timezone(timezone)
        for name, value in counts.items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "at", at)
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "timezone", zone)

    def _copy(self, **changes: object) -> CalendarIntervalTrigger:
        copy = object.__new__(CalendarIntervalTrigger)
        for name in ("years", "months", "weeks", "days", "at", "start", "timezone"):
            object.__setattr__(copy, name, changes.get(name, getattr(self, name)))
        return copy

    def with_timezone(self, default: str | tzinfo) -> CalendarIntervalTrigger:
        """This trigger with its zone set to *default* if it has none; ``self`` otherwise."""
        if self.timezone is not None:
            return self
        return self._copy(timezone=resolve_timezone(default))

    def with_start(self, default: datetime) -> CalendarIntervalTrigger:
        """This trigger anchored at *default* (an aware datetime) if it has no start; else ``self``."""
        if self.start is not None:
            return self
        return self._copy(start=aware_utc(default))

    def _occurrence(self, anchor: date, k: int) -> date:
        """The date of occurrence *k*: months added with the day clamped, then days."""
        step_months = 12 * self.years + self.months
        date_k = anchor
        if step_months:
            months = anchor.year * 12 + anchor.month - 1 + k * step_months
            year, month = divmod(months, 12)
            last = calendar.monthrange(year, month + 1)[1] if 1 <= year <= 9999 else 31
            date_k = date(year, month + 1, min(anchor.day, last))
        step_days = 7 * self.weeks + self.days
        if step_days:
            date_k += timedelta(days=k * step_days)
        return date_k

    def next_fire(self, after: datetime) -> datetime | None:
        """The first fire strictly after *after*, as an aware UTC datetime.

        :param after: any aware datetime (a naive one is taken to be UTC)
        :returns: the fire time, or ``None`` past the end of the calendar (year 9999)
        """
        tz = self.timezone if self.timezone is not None else UTC
        after_utc = aware_utc(after)
        start = self.start if self.start is not None else after_utc
        floor: datetime | None = None
        if isinstance(start, datetime):
            if start.tzinfo is None or start.utcoffset() is None:
                anchor = start.date()
                floor = resolve_wall_time(start, tz)
            else:
                anchor = start.astimezone(tz).date()
                floor = start.astimezone(UTC)
        else:
            anchor = start
        bound = after_utc if floor is None or floor <= after_utc else floor - timedelta.resolution

        def fire(k: int) -> datetime:
            return resolve_wall_time(datetime.combine(self._occurrence(anchor, k), self.at), tz)

        step = (12 * self.years + self.months) * _MEAN_MONTH_DAYS + 7 * self.weeks + self.days
        try:
            elapsed = (after_utc.astimezone(tz).date() - anchor).days
            # Estimate the occurrence from the mean step (exact for days and
            # weeks, within a step for months), then correct it.
            k = max(0, int(elapsed // step))
            while k > 0 and fire(k - 1) > bound:
                k -= 1
            result = fire(k)
            while result <= bound:
                k += 1
                result = fire(k)
            return result
        except (ValueError, OverflowError):  # past year 9999
            return None

    def describe(self) -> str:
        """A human description, e.g. ``"Every 2 weeks at 02:30 (Europe/Berlin)"``."""
        units = [
            (value, name)
            for value, name in (
                (self.years, "year"),
                (self.months, "month"),
                (self.weeks, "week"),
                (self.days, "day"),
            )
            if value
        ]
        if len(units) == 1 and units[0][0] == 1:
            every = units[0][1]
        else:
            words = [f"{value} {name}{'s' if value != 1 else ''}" for value, name in units]
            every = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
        at = self.at.strftime("%H:%M:%S" if self.at.second or self.at.microsecond else "%H:%M")
        text = f"Every {every} at {at}"
        if self.start is not None:
            start = self.start
            if isinstance(start, datetime):  # only its date in the zone counts
                start = start.astimezone(self.timezone or timezone.utc).date()
            text += f", from {start.isoformat()}"
            if (self.years or self.months) and self.start.day > 28:
                text += " (or the last day of a shorter month)"
        return f"{text} ({zone_name(self.timezone)})"

    def __repr__(self) -> str:
        names = ("years", "months", "weeks", "days")
        parts = [f"{name}={getattr(self, name)!r}" for name in names if getattr(self, name)]
        parts.append(f"at={self.at!r}")
        if self.start is not None:
            parts.append(f"start={self.start!r}")
        zone = None if self.timezone is None else zone_name(self.timezone)
        parts.append(f"timezone={zone!r}")
        return f"CalendarIntervalTrigger({', '.join(parts)})"
