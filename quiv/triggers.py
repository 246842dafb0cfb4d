"""Triggers: when a task runs.

A trigger is any object with ``next_fire(after: datetime) -> datetime |
None`` (see :class:`quiv.abc.Trigger`): given one fire, the next, as aware
UTC datetimes, or ``None`` when there are no more. Pass one to
``add_task(..., trigger=...)``.

- :class:`IntervalTrigger`, :class:`OnceTrigger` and :class:`DateTrigger`
  are ``interval=``, ``run_once=True`` and ``run_at=`` as objects, and mean
  exactly the same: they run on the scheduler's monotonic clock.
- :class:`CronTrigger` (with the ``quiv[cron]`` extra) and
  :class:`CalendarIntervalTrigger` follow the wall clock in a time zone,
  the scheduler's ``timezone=`` unless they name their own.
- Any other trigger follows the wall clock too: the scheduler asks it for
  the next fire after each one and runs the task then.
"""

from __future__ import annotations

from ._triggers.builtin import DateTrigger as DateTrigger
from ._triggers.builtin import IntervalTrigger as IntervalTrigger
from ._triggers.builtin import OnceTrigger as OnceTrigger
from ._triggers.calendar import CalendarIntervalTrigger as CalendarIntervalTrigger
from ._triggers.cron import CronTrigger as CronTrigger
from .abc import Trigger as Trigger

__all__ = (
    "CalendarIntervalTrigger",
    "CronTrigger",
    "DateTrigger",
    "IntervalTrigger",
    "OnceTrigger",
    "Trigger",
)
