"""``preview()``: the next fire times of a task or a trigger, with no side effects.

Pure functions: they read a task's settings and call a trigger's
``next_fire``, nothing else, so a preview never moves a schedule.
"""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo

from .._checks import check_datetime, check_int
from .._errors import ConfigurationError
from .._triggers.wall import check_fire
from ..abc import Trigger
from .records import TaskState

__all__ = ("MAX_PREVIEW", "check_preview", "preview_task", "preview_trigger")

#: the most fire times one ``preview()`` returns
MAX_PREVIEW = 10_000


def check_preview(n: object, after: object) -> tuple[int, datetime | None]:
    """Check ``preview``'s *n* (0 to :data:`MAX_PREVIEW`) and *after* (a datetime or ``None``)."""
    count = check_int(n, "n", maximum=MAX_PREVIEW)
    return count, None if after is None else check_datetime(after, "after")


def as_trigger(value: object, tz: tzinfo, after: datetime) -> Trigger:
    """*value* as a trigger ready to iterate: in *tz* unless it has a zone, starting at *after*.

    :raises ConfigurationError: if *value* has no ``next_fire``
    """
    if isinstance(value, type) or not callable(getattr(value, "next_fire", None)):
        raise ConfigurationError.bad_value(
            "task_id_or_trigger", value, "a task id or a trigger (an object with next_fire(after))"
        )
    with_timezone = getattr(value, "with_timezone", None)
    if callable(with_timezone):
        value = with_timezone(tz)
    with_start = getattr(value, "with_start", None)
    if callable(with_start):
        value = with_start(after)
    return value  # type: ignore[return-value]


def preview_trigger(trigger: Trigger, n: int, after: datetime) -> list[datetime]:
    """The first *n* fires of *trigger* strictly after *after* (fewer if it runs out).

    :raises ConfigurationError: if the trigger returns a naive or non-increasing time
    """
    fires: list[datetime] = []
    moment = after
    while len(fires) < n:
        fire = check_fire(trigger, moment, trigger.next_fire(moment))
        if fire is None:
            break
        fires.append(fire)
        moment = fire
    return fires


def preview_task(
    task: TaskState, n: int, after: datetime, *, next_run: datetime | None = None
) -> list[datetime]:
    """The next *n* runs of *task* strictly after *after*, as its schedule stands.

    A wall-clock trigger is asked for its fires (a run already due, for
    fires missed together, comes first). An interval task's runs are its
    next run and then one every interval after it: exact for a fixed grid,
    and for ``fixed_interval=False`` what happens if each run ends at once;
    jitter is left out. A paused task's interval runs are counted from
    *after*. A run-once task has its one run, if it is still ahead.

    :param next_run: the task's next run, if not its ``next_run_at`` (a task
        declared before the start keeps it elsewhere)
    """
    if n == 0:
        return []
    if task.trigger is not None:
        fires = []
        due = next_run or task.next_run_at
        if due is not None and due > after and task.wall_due is not None:
            fires.append(due)  # the armed run (a fire, or a run_at the user set)
        start = fires[-1] if fires else after
        return fires + preview_trigger(task.trigger, n - len(fires), start)
    first = next_run or task.next_run_at
    if task.interval is None:
        return [first] if first is not None and first > after else []
    step = timedelta(seconds=task.interval)
    runs: list[datetime] = []
    try:
        if first is None:
            first = after + step
        elif first <= after:  # count on from *after* on the task's grid
            first += step * (int((after - first) / step) + 1)
            if first <= after:
                first += step
        runs.append(first)
        while len(runs) < n:
            runs.append(runs[-1] + step)
    except OverflowError:  # past the end of the calendar
        pass
    return runs
