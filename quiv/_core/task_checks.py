"""Validation of ``add_task`` and ``update_task`` requests.

Both build a complete new :class:`TaskSettings` before anything changes, so
a rejected request leaves no state behind.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from .._checks import (
    check_args,
    check_bool,
    check_datetime,
    check_int,
    check_kwargs,
    check_name,
    check_number,
)
from .._config import UNSET, Unset
from .._errors import ConfigurationError, HandlerRegistrationError
from .._host.keys import key_task_id
from .._triggers.interval import MAX_DELAY, clamp_delay
from ..abc import Trigger
from .handlers import check_positional, inspect_handler
from .ids import new_id
from .records import TaskState, utcnow
from .settings import TaskSettings, run_policy

__all__ = ("TaskUpdate", "first_fire", "new_task", "validate_update")

_MAX_RETRIES = 1_000_000


def _interval(value: object) -> float:
    return min(check_number(value, "interval", exclusive=True), MAX_DELAY)


def _optional_timeout(value: object) -> float | None:
    return None if value is None else check_number(value, "timeout", exclusive=True)


def _callback(value: object) -> Any:
    if value is not None and not callable(value):
        raise HandlerRegistrationError(f"progress_callback must be callable, got {value!r}")
    return value


def _delay_until(when: datetime) -> float:
    return clamp_delay((when - utcnow()).total_seconds())


def _grace(value: object) -> float | None:
    return None if value is None else check_number(value, "misfire_grace", exclusive=True)


def new_task(
    *,
    task_name: object,
    func: object,
    interval: object,
    delay: object,
    run_once: object,
    fixed_interval: object,
    args: object,
    kwargs: object,
    progress_callback: object,
    run_at: object,
    timeout: object,
    max_retries: object,
    retry_backoff: object,
    jitter: object,
    trigger: object = None,
    cron: object = None,
    misfire_grace: object = None,
    timezone: tzinfo | None = None,
    key: object = None,
    host_mode: bool = False,
) -> tuple[TaskState, float]:
    """Check an ``add_task`` request; return the new task and its first run's delay.

    Touches no scheduler state, so any thread may call it.

    :param trigger: see :func:`_with_trigger`
    :param cron: a cron expression, for a :class:`~quiv.triggers.CronTrigger`
    :param timezone: the scheduler's, for wall-clock triggers without their own
    :param key: the schedule's stable name (see :func:`~quiv._host.keys.key_task_id`)
    :param host_mode: the scheduler runs in host mode: a recurring task needs a *key*
    """
    wall_trigger: Trigger | None = None
    param = "trigger"
    if cron is not None:
        if trigger is not None:
            raise ConfigurationError(
                f"pass cron or trigger, not both (got cron={cron!r}, trigger={trigger!r})"
            )
        trigger, param = _cron(cron, timezone), "cron"
    if trigger is not None:
        interval, delay, run_once, fixed_interval, run_at, wall_trigger = _with_trigger(
            trigger, interval, delay, run_once, fixed_interval, run_at, timezone, param
        )
    name = check_name(task_name, "task_name")
    once = check_bool(run_once, "run_once")
    fixed = check_bool(fixed_interval, "fixed_interval")
    every: float | None = None
    if wall_trigger is None and (interval is not None or not once):
        if interval is None:
            raise ConfigurationError(
                "interval is required for a recurring task (or pass run_once=True), got None"
            )
        every = _interval(interval)
    if delay is not None and run_at is not None:
        raise ConfigurationError(
            f"pass delay or run_at, not both (got delay={delay!r}, run_at={run_at!r})"
        )
    first = 0.0
    wall_due: datetime | None = None
    if delay is not None:
        first = clamp_delay(check_number(delay, "delay"))
    elif run_at is not None:
        wall_due = check_datetime(run_at, "run_at")
        first = _delay_until(wall_due)
    if wall_trigger is not None:
        first, wall_due = first_fire(wall_trigger)
    grace = _grace(misfire_grace)
    checked_kwargs = check_kwargs(kwargs)
    checked_args = check_args(args)
    handler = inspect_handler(func, checked_kwargs)
    check_positional(handler, checked_args)
    keyed_id = key_task_id(key, name, wall_trigger is not None or not once, host_mode)
    task = TaskState(
        id=new_id() if keyed_id is None else keyed_id,
        func=func,  # type: ignore[arg-type]  # inspect_handler checked it is callable
        handler=handler,
        task_name=name,
        args=checked_args,
        kwargs=checked_kwargs,
        interval=every,
        fixed_interval=fixed,
        run_once=once,
        policy=run_policy(
            _optional_timeout(timeout),
            check_int(max_retries, "max_retries", maximum=_MAX_RETRIES),
            min(check_number(retry_backoff, "retry_backoff", exclusive=True), MAX_DELAY),
            min(check_number(jitter, "jitter"), MAX_DELAY),
            _callback(progress_callback),
            grace,
        ),
    )
    # the engine arms it on the wall clock (a trigger's fire it computes again,
    # by the scheduler's clock); until then it is the task's next_run_at
    task.wall_due = wall_due
    task.set_trigger(wall_trigger)
    if key is not None:
        task.key = str(key)
    if once:  # its one job's id is known now, so the caller can hand it out at once
        task.next_job_id = new_id()
    return task, first


def _cron(cron: object, timezone: tzinfo | None) -> Trigger:
    from .._triggers.cron import cron_trigger  # only when asked: import quiv stays lean

    return cron_trigger(cron, timezone, param="cron")


def _with_trigger(
    trigger: object,
    interval: object,
    delay: object,
    run_once: object,
    fixed_interval: object,
    run_at: object,
    timezone: tzinfo | None,
    param: str = "trigger",
) -> tuple[object, object, object, object, object, Trigger | None]:
    """Translate ``trigger=``: the elapsed-time triggers into the parameters
    they stand for, any other into a wall-clock trigger (the last item).

    :param param: what the user passed: ``"trigger"``, or ``"cron"`` for a
        trigger made from ``cron=``
    :raises ConfigurationError: if *trigger* is not a trigger, or comes with
        ``interval``, ``run_once``, ``run_at`` or ``fixed_interval``
    """
    others = {
        "interval": interval is not None,
        "run_once": run_once is not False,
        "run_at": run_at is not None,
        "fixed_interval": fixed_interval is not True,
    }
    clash = [name for name, given in others.items() if given]
    if clash:
        shown = getattr(trigger, "expression", trigger) if param == "cron" else trigger
        raise ConfigurationError(
            f"pass {param} or {clash[0]}, not both (got {param}={shown!r}, "
            f"{clash[0]}={locals()[clash[0]]!r})"
        )
    from .._triggers.builtin import DateTrigger, IntervalTrigger, OnceTrigger

    if isinstance(trigger, type) or not callable(getattr(trigger, "next_fire", None)):
        raise ConfigurationError.bad_value(
            "trigger", trigger, "a trigger (an object with next_fire(after))"
        )
    if isinstance(trigger, IntervalTrigger):
        if trigger.start is not None and delay is None:
            return trigger.seconds, None, False, trigger.fixed, trigger.start, None
        return trigger.seconds, delay, False, trigger.fixed, None, None
    if isinstance(trigger, OnceTrigger):
        return None, delay, True, True, None, None
    if delay is not None:
        raise ConfigurationError(
            f"pass delay or {param}={getattr(trigger, 'expression', trigger)!r}, not both: "
            f"the {param} says when it fires first (got delay={delay!r})"
        )
    if isinstance(trigger, DateTrigger):
        return None, None, True, True, trigger.run_at, None
    with_timezone = getattr(trigger, "with_timezone", None)
    if timezone is not None and callable(with_timezone):
        trigger = with_timezone(timezone)
    with_start = getattr(trigger, "with_start", None)
    if callable(with_start):
        trigger = with_start(utcnow())
    return None, None, False, True, None, trigger  # type: ignore[return-value]


def first_fire(trigger: Trigger) -> tuple[float, datetime]:
    """The delay to *trigger*'s first fire from now, and that fire.

    :raises ConfigurationError: if it has none, or returns something that is
        not an aware datetime later than now
    """
    from .._triggers.wall import check_fire

    now = utcnow()
    try:
        proposed = trigger.next_fire(now)
    except Exception as exc:
        raise ConfigurationError(
            f"trigger {trigger!r} raised {exc!r} from next_fire({now!r})"
        ) from exc
    fire = check_fire(trigger, now, proposed)
    if fire is None:
        raise ConfigurationError(f"trigger {trigger!r} has no fire after now ({now})")
    return clamp_delay((fire - now).total_seconds()), fire


@dataclass(frozen=True, slots=True)
class TaskUpdate:
    """A validated ``update_task`` request."""

    settings: TaskSettings
    interval_changed: bool
    #: the requested ``run_at`` (aware UTC), if one was given
    run_at: datetime | None
    #: the task's new wall-clock trigger; ``None`` to leave the wall clock for
    #: an interval; :data:`UNSET` to keep the schedule it has
    trigger: Trigger | None | Unset = UNSET


def validate_update(
    current: TaskSettings,
    func: Callable[..., Any],
    *,
    task_name: object,
    interval: object,
    fixed_interval: object,
    args: object,
    kwargs: object,
    timeout: object,
    max_retries: object,
    retry_backoff: object,
    jitter: object,
    progress_callback: object,
    run_at: object,
    cron: object = UNSET,
    trigger: object = UNSET,
    misfire_grace: object = UNSET,
    timezone: tzinfo | None = None,
) -> TaskUpdate:
    """Check an ``update_task`` request against the task's current settings.

    ``cron=`` or ``trigger=`` give a recurring task a new schedule: a
    wall-clock trigger, or an :class:`~quiv.triggers.IntervalTrigger` (which
    is ``interval=`` and ``fixed_interval=``). ``interval=`` on a task with
    a wall-clock trigger puts it back on an interval.
    """
    changes: dict[str, Any] = {}
    new_trigger: Trigger | None | Unset = UNSET
    schedule = _new_schedule(current, cron, trigger, interval, fixed_interval, run_at, timezone)
    if schedule is not None:
        new_trigger, interval, fixed_interval = schedule
    if interval is not UNSET and run_at is not UNSET:
        raise ConfigurationError(
            f"pass interval or run_at, not both (got interval={interval!r}, run_at={run_at!r})"
        )
    if task_name is not UNSET:
        changes["task_name"] = check_name(task_name, "task_name")
    if interval is not UNSET:
        if current.run_once:
            raise ConfigurationError(
                f"interval cannot be set on a run-once task, got interval={interval!r}"
            )
        changes["interval"] = _interval(interval)
        if new_trigger is UNSET:
            new_trigger = None  # an interval replaces a wall-clock trigger
    if fixed_interval is not UNSET:
        changes["fixed_interval"] = check_bool(fixed_interval, "fixed_interval")
    if args is not UNSET:
        changes["args"] = check_args(args)
    if kwargs is not UNSET:
        changes["kwargs"] = check_kwargs(kwargs)
    if "args" in changes or "kwargs" in changes:
        # injected-name clashes, by keyword or by position
        handler = inspect_handler(func, changes.get("kwargs", current.kwargs))
        check_positional(handler, changes.get("args", current.args))
    policy: dict[str, Any] = {}
    if timeout is not UNSET:
        policy["timeout"] = _optional_timeout(timeout)
    if max_retries is not UNSET:
        policy["max_retries"] = check_int(max_retries, "max_retries", maximum=_MAX_RETRIES)
    if retry_backoff is not UNSET:
        policy["retry_backoff"] = min(
            check_number(retry_backoff, "retry_backoff", exclusive=True), MAX_DELAY
        )
    if jitter is not UNSET:
        policy["jitter"] = min(check_number(jitter, "jitter"), MAX_DELAY)
    if progress_callback is not UNSET:
        policy["progress_callback"] = _callback(progress_callback)
    if misfire_grace is not UNSET:
        policy["misfire_grace"] = _grace(misfire_grace)
    when = None if run_at is UNSET else check_datetime(run_at, "run_at")
    if new_trigger is not UNSET and new_trigger is not None:
        changes["interval"] = None
    return TaskUpdate(
        settings=dataclasses.replace(current, **changes, policy=current.policy.changed(policy)),
        interval_changed="interval" in changes and changes["interval"] is not None,
        run_at=when,
        trigger=new_trigger,
    )


def _new_schedule(
    current: TaskSettings,
    cron: object,
    trigger: object,
    interval: object,
    fixed_interval: object,
    run_at: object,
    timezone: tzinfo | None,
) -> tuple[Trigger | None | Unset, object, object] | None:
    """The schedule ``cron=`` or ``trigger=`` asks for: ``(wall trigger, interval,
    fixed_interval)``; ``None`` if neither was passed.
    """
    if cron is UNSET and trigger is UNSET:
        return None
    param = "cron" if cron is not UNSET else "trigger"
    value = cron if cron is not UNSET else trigger
    if cron is not UNSET and trigger is not UNSET:
        raise ConfigurationError(
            f"pass cron or trigger, not both (got cron={cron!r}, trigger={trigger!r})"
        )
    for name, other in (("interval", interval), ("run_at", run_at)):
        if other is not UNSET:
            raise ConfigurationError(
                f"pass {param} or {name}, not both (got {param}={value!r}, {name}={other!r})"
            )
    if current.run_once:
        raise ConfigurationError(f"{param} cannot be set on a run-once task, got {param}={value!r}")
    made = _cron(value, timezone) if param == "cron" else value
    from .._triggers.builtin import IntervalTrigger

    if isinstance(made, IntervalTrigger):
        if fixed_interval is not UNSET:
            raise ConfigurationError(
                f"pass trigger or fixed_interval, not both (got trigger={made!r}, "
                f"fixed_interval={fixed_interval!r})"
            )
        return None, made.seconds, made.fixed
    *_, wall = _with_trigger(made, None, None, False, True, None, timezone, param)
    if wall is None:  # a run-once trigger
        raise ConfigurationError.bad_value(
            param, value, "a recurring trigger (a task cannot become run-once)"
        )
    if fixed_interval is not UNSET:
        raise ConfigurationError(
            f"pass {param} or fixed_interval, not both (got {param}={value!r}, "
            f"fixed_interval={fixed_interval!r})"
        )
    first_fire(wall)
    return wall, UNSET, UNSET
