"""A task's settings, and the parts of its state that tasks share or rarely have.

:class:`~.records.TaskState` is laid out from these pieces, so that ten
thousand tasks cost as little memory as they can.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timezone, tzinfo
from typing import Any, Final

from .._triggers.wall import zone_name
from ..abc import Trigger

__all__ = (
    "NOT_ASKED",
    "SETTINGS_FIELDS",
    "RareState",
    "RunPolicy",
    "TaskSettings",
    "describe_trigger",
    "run_policy",
    "trigger_zone",
)


@dataclass(frozen=True, slots=True)
class RunPolicy:
    """How a task's jobs run, where most tasks keep the defaults.

    Immutable, so tasks with equal policies share one (see :func:`run_policy`).
    """

    timeout: float | None
    max_retries: int
    retry_backoff: float
    jitter: float
    progress_callback: Callable[..., Any] | None
    #: skip a wall-clock run that comes due more than this many seconds late
    misfire_grace: float | None

    def changed(self, changes: Mapping[str, Any]) -> RunPolicy:
        """This policy with *changes* (validated values, by field name), shared if it can be."""
        if not changes:
            return self
        values = {field.name: getattr(self, field.name) for field in fields(self)}
        values.update(changes)
        return run_policy(**values)


@dataclass(eq=False, slots=True)
class TaskSettings:
    """What ``add_task``/``update_task`` set (validated)."""

    task_name: str
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    interval: float | None
    fixed_interval: bool
    run_once: bool
    #: the rest, which tasks with equal ones share
    policy: RunPolicy


SETTINGS_FIELDS: Final = tuple(field.name for field in fields(TaskSettings))


_policies: dict[tuple[Any, ...], RunPolicy] = {}
#: at most this many distinct shared policies (beyond it, each task has its own)
_SHARED_POLICIES: Final = 256


def run_policy(
    timeout: float | None,
    max_retries: int,
    retry_backoff: float,
    jitter: float,
    progress_callback: Callable[..., Any] | None,
    misfire_grace: float | None,
) -> RunPolicy:
    """The policy of these (validated) settings: a shared one when an equal one was made.

    A policy with a progress callback is never shared: the table would keep
    the callback (and what it holds) alive after its task is gone. Any thread
    may call this; a race makes two equal policies, which is harmless.
    """
    values = (timeout, max_retries, retry_backoff, jitter, progress_callback, misfire_grace)
    if progress_callback is not None:
        return RunPolicy(*values)
    # The values are validated, so of one type each (floats, an int, None):
    # equal values make an equal policy.
    policy = _policies.get(values)
    if policy is None:
        policy = RunPolicy(*values)
        if len(_policies) < _SHARED_POLICIES:
            _policies[values] = policy
    return policy


class RareState:
    """A task's state (and its key) that most tasks never have; made when first set."""

    __slots__ = ("key", "pending_deadline", "rerun_requested", "retry_attempt", "skipped_runs")

    def __init__(self) -> None:
        #: the schedule's stable name (``add_task(key=...)``)
        self.key: str | None = None
        self.retry_attempt = 0
        self.rerun_requested = False
        #: a ``run_at`` set by ``update_task`` while a job was in flight (or paused)
        self.pending_deadline: float | None = None
        #: runs skipped for coming due later than the task's ``misfire_grace``
        self.skipped_runs = 0


#: :attr:`TaskState.upcoming_fire` before the trigger was first asked for a fire
NOT_ASKED: Final = datetime.min.replace(tzinfo=timezone.utc)


def describe_trigger(trigger: Trigger) -> str:
    """*trigger*'s own description (its ``describe()``), else its ``repr``."""
    describe = getattr(trigger, "describe", None)
    if callable(describe):
        try:
            text = describe()
        except Exception:  # a user's trigger: the description is best effort
            text = None
        if isinstance(text, str):
            return text
    return repr(trigger)


def trigger_zone(trigger: Trigger) -> str | None:
    """The name of *trigger*'s time zone, if it has one."""
    tz = getattr(trigger, "timezone", None)
    return zone_name(tz) if isinstance(tz, tzinfo) else None
