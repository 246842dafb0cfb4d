"""Cron schedules: :class:`CronTrigger`, a thin layer over cronsim with quiv's DST policy.

cronsim (the ``quiv[cron]`` extra) parses and iterates the expression; quiv
adds the ``@daily``-style aliases, resolves wall times to instants under one
written-down DST policy (for 5- and 6-field expressions alike) and keeps the
trigger object small: it holds the expression and the zone, nothing parsed,
so 10,000 cron tasks cost next to nothing in memory.

cronsim takes tens of microseconds to parse an expression and as many again
to step to a fire, so the expensive parts are remembered: the triggers
``cron=`` makes (one per expression and zone, :func:`cron_trigger`), each
trigger's description, and its latest answer (``next_fire`` of any time
between that question and its answer is the same answer). Adding 10,000
tasks with a few distinct expressions then parses each one once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from typing import TYPE_CHECKING

from .._checks import resolve_timezone
from .._errors import ConfigurationError
from .wall import aware_utc, first_change, resolve_wall_time, zone_name

if TYPE_CHECKING:
    from cronsim import CronSim

__all__ = ("ALIASES", "CronTrigger", "cron_trigger")

UTC = timezone.utc
_TICK = timedelta(microseconds=1)
_DAY = timedelta(days=1)
_ZERO = timedelta(0)

#: The ``@`` aliases quiv accepts (cronsim itself has none), and what they mean.
ALIASES: dict[str, str] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_EXTRA_HINT = "cron schedules need the cronsim package: pip install 'quiv[cron]'"

#: any start works for validation and explain(); the expression is what counts
_PROBE = datetime(2000, 1, 1)


def _cronsim() -> type[CronSim]:
    """The ``CronSim`` class, imported on first use (``import quiv`` does not import cronsim)."""
    try:
        from cronsim import CronSim
    except ImportError:
        raise ConfigurationError(_EXTRA_HINT) from None
    return CronSim


def _expand(expression: str, param: str) -> str:
    """The 5- or 6-field expression cronsim parses, with quiv's aliases expanded."""
    text = expression.strip()
    if text.startswith("@"):
        fields = ALIASES.get(text.lower())
        if fields is None:
            known = ", ".join(ALIASES)
            raise ConfigurationError(
                f"{param} must be a valid cron expression (unknown alias; quiv knows "
                f"{known}), got {expression!r}"
            )
        return fields
    return text


def _is_fixed_time(fields: str) -> bool:
    """Whether the minute and hour fields both name fixed values (neither starts with ``*``)."""
    parts = fields.split()
    minute, hour = (parts[1], parts[2]) if len(parts) == 6 else (parts[0], parts[1])
    return not minute.startswith("*") and not hour.startswith("*")


@dataclass(frozen=True, slots=True, init=False, repr=False)
class CronTrigger:
    """Fire on a cron schedule, in a time zone.

    ``CronTrigger("30 2 * * 1-5", timezone="Europe/Berlin")`` fires at 02:30
    Berlin time on weekdays. Parsing and iteration are cronsim's, so the
    syntax is Debian cron's: five fields (minute, hour, day of month, month,
    day of week; names such as ``MON`` and ``JAN``; ``L``, ``LW``, ``5L`` and
    ``MON#1``; when both day fields are restricted, a day matching either
    one fires). quiv adds:

    * the aliases ``@hourly``, ``@daily`` (``@midnight``), ``@weekly``
      (Sunday 00:00), ``@monthly`` and ``@yearly`` (``@annually``);
    * an optional **seconds** field, first, as in cronsim:
      ``"15 30 2 * * *"`` fires at 02:30:15 every day.

    **Time zone.** *timezone* is an IANA name (``"Europe/Berlin"``), ``"UTC"``
    or a :class:`~datetime.tzinfo`. ``None`` (the default) means the
    scheduler's ``timezone=``, filled in when the trigger is added to a
    scheduler (:meth:`with_timezone`); a trigger that still has none computes
    in UTC.

    **DST policy.** An expression whose minute and hour fields both name
    fixed values (neither starts with ``*``; ``"30 2 * * *"``,
    ``"0 9-17 * * 1-5"``) is *fixed-time*. For it, like Debian cron:

    * a run whose wall time falls in the spring-forward gap happens at the
      first valid instant after the gap (Berlin, last Sunday of March,
      ``30 2 * * *`` runs at 03:00 CEST);
    * a run whose wall time occurs twice in the autumn overlap happens once,
      at the first occurrence (02:30 CEST, not again at 02:30 CET).

    Other expressions (``"*/30 * * * *"``, ``"0 * * * *"``) follow real
    elapsed time: every instant whose wall time matches fires, so the repeated
    hour in autumn runs again and the wall times skipped in spring do not run.
    The policy holds for 6-field expressions too (cronsim applies it to 5-field
    ones only); with a seconds field, a gap time runs at the end of the gap
    (``15 30 2 * * *`` at 03:00:00 CEST). No fire is ever a wall time that does
    not exist, and fires strictly increase.

    Instances are immutable and hashable; equal when the expression and the
    zone are equal.

    :param expression: the cron expression or alias
    :param timezone: the zone the expression is read in
    :raises ConfigurationError: if *expression* is not a valid cron
        expression (the message gives cronsim's reason), or cronsim is not
        installed (install ``quiv[cron]``)
    :raises InvalidTimezoneError: if *timezone* names no known zone
    """

    #: The expression as given (stripped of surrounding whitespace).
    expression: str
    #: The zone the expression is read in; ``None`` means the scheduler's default.
    timezone: tzinfo | None
    _fields: str = field(compare=False)
    _fixed: bool = field(compare=False)
    #: the latest ``(after, fire)`` answered: any time in ``[after, fire)`` has that fire
    _memo: tuple[datetime, datetime] | None = field(compare=False)
    #: :meth:`describe`'s text, made on first use
    _text: str | None = field(compare=False)

    def __init__(self, expression: str, timezone: str | tzinfo | None = None) -> None:
        _setup(self, expression, timezone, "expression")

    def next_fire(self, after: datetime) -> datetime | None:
        """The first fire strictly after *after*, as an aware UTC datetime.

        :param after: any aware datetime (a naive one is taken to be UTC)
        :returns: the fire time, or ``None`` when the expression matches no
            time in the next 50 years (or before the end of the calendar)
        """
        after_utc = aware_utc(after)
        memo = self._memo
        if memo is not None and memo[0] <= after_utc < memo[1]:
            return memo[1]
        fire = self._next_fire(after_utc)
        if fire is not None:
            object.__setattr__(self, "_memo", (after_utc, fire))
        return fire

    def _next_fire(self, after_utc: datetime) -> datetime | None:
        cronsim = _cronsim()
        tz = self.timezone if self.timezone is not None else UTC
        try:
            if self._fixed:
                # Iterate on naive wall time, then map each wall time to an
                # instant: a gap time moves to the end of the gap, an
                # ambiguous time takes its first occurrence, and a candidate
                # not after *after* (the repeat of an overlap, or a second
                # wall time swallowed by the same gap) is skipped.
                start = after_utc.astimezone(tz).replace(tzinfo=None)
                for wall in cronsim(self._fields, start):
                    fire = resolve_wall_time(wall, tz)
                    if fire > after_utc:
                        return fire
            else:
                return self._next_elapsed(cronsim, after_utc, tz)
        except OverflowError:  # ran off the end of the calendar (year 9999)
            return None
        return None

    def _next_elapsed(
        self, cronsim: type[CronSim], after_utc: datetime, tz: tzinfo
    ) -> datetime | None:
        """The first fire after *after_utc* in real elapsed time (sub-hourly expressions).

        Time is walked as stretches of constant UTC offset. In each, the next
        naive wall time that matches is found with cronsim and mapped back
        with that stretch's offset; if it falls past the stretch's end, the
        walk moves on to the next stretch. So an hour repeated in autumn fires
        twice, an hour skipped in spring not at all, and neither depends on
        how cronsim treats aware times (cronsim 2.7 and 2.8 step back and
        forth forever in an overlap that does not end on a whole hour, as in
        Pacific/Chatham).
        """
        current = after_utc
        while True:
            # the offset of the instants just after `current`, and its wall time
            offset = (current + _TICK).astimezone(tz).utcoffset() or _ZERO
            start = (current + offset).replace(tzinfo=None)
            wall = next(iter(cronsim(self._fields, start)), None)
            if wall is None:
                return None
            fire = (wall - offset).replace(tzinfo=UTC)
            soon = current + _DAY
            if soon.astimezone(tz).utcoffset() != offset:
                # the offset changes within a day: does the wall time come first?
                change = first_change(current + _TICK, soon, tz)
                if fire < change:
                    return fire
                current = change - _TICK
                continue
            if fire <= soon:  # the offset holds until then
                return fire
            # further off: the wall time's own instant(s), the first that is
            # later (the earlier one, if an overlap on the way repeats it)
            fires = [
                instant
                for fold in (0, 1)
                if (instant := wall.replace(tzinfo=tz, fold=fold).astimezone(UTC)) > current
                and instant.astimezone(tz).replace(tzinfo=None) == wall
            ]
            if fires:
                return min(fires)
            # a wall time in a far-off gap: go on from the gap's end
            current = resolve_wall_time(wall, tz) - _TICK

    def with_timezone(self, default: str | tzinfo) -> CronTrigger:
        """This trigger with its zone set to *default* if it has none; ``self`` otherwise."""
        if self.timezone is not None:
            return self
        copy = object.__new__(CronTrigger)
        object.__setattr__(copy, "expression", self.expression)
        object.__setattr__(copy, "timezone", resolve_timezone(default))
        object.__setattr__(copy, "_fields", self._fields)
        object.__setattr__(copy, "_fixed", self._fixed)
        object.__setattr__(copy, "_memo", None)
        object.__setattr__(copy, "_text", None)
        return copy

    def describe(self) -> str:
        """A human description, e.g. ``"At 02:30 on Monday through Friday (Europe/Berlin)"``.

        The words come from cronsim's ``explain()``; for an expression it
        cannot explain, the expression itself is shown.
        """
        text = self._text
        if text is None:
            words = _explain(self._fields) or f"Cron {self.expression!r}"
            text = f"{words} ({zone_name(self.timezone)})"
            object.__setattr__(self, "_text", text)
        return text

    def __repr__(self) -> str:
        zone = None if self.timezone is None else zone_name(self.timezone)
        return f"CronTrigger({self.expression!r}, timezone={zone!r})"


def _explain(fields: str) -> str:
    """cronsim's words for *fields*; ``""`` for an expression it cannot explain."""
    try:
        return _cronsim()(fields, _PROBE).explain()
    except Exception:  # explain() is best effort; the trigger is valid
        return ""


def _check(fields: str) -> None:
    """Parse *fields*; raise cronsim's error if it is not a valid expression."""
    _cronsim()(fields, _PROBE)


def _setup(trigger: CronTrigger, expression: object, timezone: object, param: str) -> None:
    if not isinstance(expression, str):
        raise ConfigurationError.bad_value(param, expression, "a cron expression string")
    fields = _expand(expression, param)
    _cronsim()
    from cronsim import CronSimError

    try:
        _check(fields)
    except CronSimError as exc:
        raise ConfigurationError(
            f"{param} must be a valid cron expression ({exc}), got {expression!r}"
        ) from None
    except (ValueError, LookupError, TypeError, AssertionError):
        raise ConfigurationError(
            f"{param} must be a valid cron expression, got {expression!r}"
        ) from None
    zone = None if timezone is None else resolve_timezone(timezone)
    text = expression.strip()
    object.__setattr__(trigger, "expression", text)
    object.__setattr__(trigger, "timezone", zone)
    object.__setattr__(trigger, "_fields", fields)
    object.__setattr__(trigger, "_fixed", _is_fixed_time(fields))
    object.__setattr__(trigger, "_memo", None)
    object.__setattr__(trigger, "_text", None)


#: the triggers ``cron=`` made, by (expression, zone): tasks with one schedule share one
_made: dict[tuple[str, object], CronTrigger] = {}
_MADE_LIMIT = 4096


def cron_trigger(
    expression: object, timezone: str | tzinfo | None = None, *, param: str = "cron"
) -> CronTrigger:
    """A :class:`CronTrigger` whose errors name *param* (``add_task(cron=...)``).

    Tasks with the same expression and zone share one trigger (they are
    immutable), so its remembered answers serve all of them.
    """
    key = (expression, timezone) if isinstance(expression, str) else None
    if key is not None and (made := _made.get(key)) is not None:
        return made
    trigger = object.__new__(CronTrigger)
    _setup(trigger, expression, timezone, param)
    if key is not None:
        if len(_made) >= _MADE_LIMIT:
            _made.clear()
        _made[key] = trigger
    return trigger
