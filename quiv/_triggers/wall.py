"""Fire times: turning wall-clock times into instants, and checking what a trigger returns.

Every trigger speaks aware UTC datetimes. Wall-clock triggers (cron, calendar
intervals) compute a *wall time* in their zone first; :func:`resolve_wall_time`
maps it to an instant under quiv's DST policy, and :func:`check_fire` is what
the engine uses to reject a trigger (possibly a user's own) that returns a
naive datetime or one that does not move forward.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone, tzinfo

from .._errors import ConfigurationError

__all__ = (
    "aware_utc",
    "check_fire",
    "first_change",
    "resolve_wall_time",
    "zone_name",
)

UTC = timezone.utc
_SECOND = timedelta(seconds=1)


def aware_utc(moment: datetime) -> datetime:
    """*moment* as an aware UTC datetime; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def zone_name(tz: tzinfo | None) -> str:
    """A short name for *tz*: the IANA key of a ``ZoneInfo``, else ``str(tz)``."""
    if tz is None:
        return "the scheduler's time zone"
    key = getattr(tz, "key", None)
    return key if isinstance(key, str) else str(tz)


def first_change(start: datetime, end: datetime, tz: tzinfo) -> datetime:
    """The first instant in (*start*, *end*] whose UTC offset in *tz* differs from *start*'s.

    The caller knows the offsets at the two ends differ; one transition lies
    between them (a zone's transitions are months apart) and, like every
    zone transition, falls on a whole second. Found by bisection.
    """
    before = start.astimezone(tz).utcoffset()
    low, high = start, end
    while high - low > _SECOND:
        middle = low + (high - low) / 2
        if middle.astimezone(tz).utcoffset() == before:
            low = middle
        else:
            high = middle
    # the transition is the one whole second in (low, high]
    return low.replace(microsecond=0) + _SECOND


def _gap_end(wall: datetime, tz: tzinfo) -> datetime:
    """The first instant after the gap that swallows the naive wall time *wall*, in UTC.

    Per PEP 495 a wall time in a gap maps, with ``fold=0``, to an instant on
    or after the transition and, with ``fold=1``, to one before it; the
    transition lies between the two.
    """
    late = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    early = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if early >= late:  # not a gap after all (a zone with odd fold semantics)
        return late
    return first_change(early, late, tz)


def resolve_wall_time(wall: datetime, tz: tzinfo) -> datetime:
    """The instant (aware UTC) at which a run planned for the naive wall time *wall* happens.

    quiv's DST policy for fixed wall-clock times:

    * a wall time that does not exist (it falls in a spring-forward gap) runs
      at the first valid instant after the gap: 02:30 on the day Berlin skips
      from 02:00 to 03:00 runs at 03:00 CEST;
    * a wall time that exists twice (the autumn overlap) runs at its first
      occurrence (``fold=0``); callers skip the repeat.
    """
    local = wall.replace(tzinfo=tz, fold=0)
    instant = local.astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) == wall:
        return instant
    return _gap_end(wall, tz)


def check_fire(trigger: object, after: datetime, fire: object) -> datetime | None:
    """Validate what ``trigger.next_fire(after)`` returned; give it back as aware UTC.

    ``None`` (no more fires) passes through. Anything else must be an aware
    :class:`~datetime.datetime` strictly after *after* (a naive *after* is
    taken to be UTC).

    :raises ConfigurationError: naming the trigger and the value, for a
        non-datetime, a naive datetime, or one on or before *after*
    """
    if fire is None:
        return None
    if not isinstance(fire, datetime):
        raise ConfigurationError(
            f"trigger {trigger!r} must return a datetime or None from next_fire(), got {fire!r}"
        )
    if fire.tzinfo is None or fire.utcoffset() is None:
        raise ConfigurationError(
            f"trigger {trigger!r} must return an aware datetime from next_fire(), "
            f"got the naive {fire!r}"
        )
    fire_utc = fire.astimezone(UTC)
    after_utc = aware_utc(after)
    if fire_utc <= after_utc:
        raise ConfigurationError(
            f"trigger {trigger!r} must return a time strictly after {after_utc.isoformat()} "
            f"from next_fire(), got {fire_utc.isoformat()}"
        )
    return fire_utc
