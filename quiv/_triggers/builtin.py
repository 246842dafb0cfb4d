"""The elapsed-time triggers: an interval, a single run, a date.

``add_task(interval=...)``, ``run_once=True`` and ``run_at=...`` are these
triggers spelled as parameters, and passing one as ``trigger=`` means the
same. The engine runs them on its monotonic clock (an interval's grid never
drifts with the wall clock); their :meth:`next_fire` is the same schedule in
wall-clock terms, for previews and for code that reasons about fires.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from .._checks import check_bool, check_datetime, check_number
from .interval import MAX_DELAY
from .wall import aware_utc

__all__ = ("DateTrigger", "IntervalTrigger", "OnceTrigger")


@dataclass(frozen=True, slots=True, init=False)
class IntervalTrigger:
    """Fire every *seconds* seconds.

    With ``fixed=True`` (the default) fires stay on a grid from the first
    one, *start*: a late run never shifts the ones after it, and slots missed
    while a run overran are skipped. With ``fixed=False`` each fire is
    *seconds* after the previous one ended (as a scheduler, quiv counts from
    the end of the job; :meth:`next_fire` only knows fires, so it counts from
    *after*).

    :param seconds: the interval (> 0)
    :param fixed: keep a fixed grid from *start*
    :param start: the first fire of the grid (aware; naive means UTC); ``None``
        counts from whatever ``after`` :meth:`next_fire` is given
    """

    seconds: float
    fixed: bool
    start: datetime | None

    def __init__(
        self, seconds: float, *, fixed: bool = True, start: datetime | None = None
    ) -> None:
        every = min(check_number(seconds, "seconds", exclusive=True), MAX_DELAY)
        object.__setattr__(self, "seconds", every)
        object.__setattr__(self, "fixed", check_bool(fixed, "fixed"))
        origin = None if start is None else check_datetime(start, "start")
        object.__setattr__(self, "start", origin)

    def next_fire(self, after: datetime) -> datetime | None:
        """The first grid point strictly after *after* (or *after* + the interval)."""
        after = aware_utc(after)
        start = self.start
        if start is not None and start > after:
            return start
        if start is None or not self.fixed:
            return after + timedelta(seconds=self.seconds)
        steps = math.floor((after - start).total_seconds() / self.seconds) + 1
        fire = start + timedelta(seconds=steps * self.seconds)
        while fire <= after:  # rounding
            fire += timedelta(seconds=self.seconds)
        return fire

    def describe(self) -> str:
        """In words, e.g. ``"every 60 s"``."""
        grid = "" if self.fixed else ", counted from each end"
        return f"every {self.seconds:g} s{grid}"


@dataclass(frozen=True, slots=True)
class OnceTrigger:
    """Fire once: the task's first run (after its ``delay``, or at once) is its last."""

    def next_fire(self, after: datetime) -> datetime | None:
        """Always ``None``: after the one run, there are no more."""
        return None

    def describe(self) -> str:
        """``"once"``."""
        return "once"


@dataclass(frozen=True, slots=True, init=False)
class DateTrigger:
    """Fire once, at *run_at* (aware; naive means UTC). A time already past fires at once."""

    run_at: datetime

    def __init__(self, run_at: datetime) -> None:
        object.__setattr__(self, "run_at", check_datetime(run_at, "run_at"))

    def next_fire(self, after: datetime) -> datetime | None:
        """*run_at* if it is later than *after*, else ``None``."""
        return self.run_at if self.run_at > aware_utc(after) else None

    def describe(self) -> str:
        """E.g. ``"once, at 2026-12-24 18:00:00+00:00"``."""
        return f"once, at {self.run_at}"
