"""The engine's mutable records of tasks and jobs, and their public snapshots.

These objects are owned by the scheduler's loop. The only fields a worker
thread touches are marked; it touches them under the job context's lock.

A scheduler keeps one :class:`TaskState` per task, so every field costs
memory ten thousand times over. Three things keep it small: the settings
most tasks leave at their defaults are in a :class:`~.settings.RunPolicy`
that equal tasks share; state few tasks ever have (a retry count, a requested
rerun, a pending ``run_at``, skipped runs) is in a :class:`~.settings.RareState`
made the first time one of it is set; and a wall-clock trigger takes two
slots, the trigger and its next fire (the trigger's own datetime, which tasks
on one schedule share).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Generic, TypeVar

from .._clock import WallClock
from .._context import JobContext, JobControl
from .._models import CancelReason, Job, JobStatus, ResultState, Task, TaskStatus
from .._xthread.mailbox import Future
from ..abc import Trigger
from .handlers import HandlerSpec
from .settings import (
    NOT_ASKED,
    SETTINGS_FIELDS,
    RareState,
    TaskSettings,
    describe_trigger,
    trigger_zone,
)
from .timer import TimerEntry

__all__ = ("JobRun", "TaskState", "utcnow")

_job_seq = itertools.count()


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


T = TypeVar("T")


class _FromPolicy(Generic[T]):
    """A read-only attribute of a task that its :class:`~.settings.RunPolicy` holds."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, task: TaskState, owner: type | None = None) -> T:
        value: T = getattr(task.policy, self.name)
        return value


class _Rare(Generic[T]):
    """An attribute of a task kept in its :class:`~.settings.RareState`, made when first set."""

    def __init__(self, default: T) -> None:
        self.default = default

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, task: TaskState, owner: type | None = None) -> T:
        rare = task.rare
        if rare is None:
            return self.default
        value: T = getattr(rare, self.name)
        return value

    def __set__(self, task: TaskState, value: T) -> None:
        rare = task.rare
        if rare is None:
            if value == self.default:
                return  # no state to keep
            rare = task.rare = RareState()
        setattr(rare, self.name, value)


@dataclass(eq=False, slots=True)
class TaskState(TaskSettings):
    """A task as the engine keeps it: its settings and its scheduling state.

    See the module's docstring for its layout. The settings are inherited
    rather than referenced (one object per task, not two). The wall-clock
    time of the next run is computed from :attr:`deadline` when read, and
    callers of ``wait_for_task`` wait in the engine, not here.
    """

    id: str
    #: the handler itself (:attr:`handler` only describes it)
    func: Callable[..., Any]
    handler: HandlerSpec
    status: TaskStatus = TaskStatus.ACTIVE
    #: deadline of the next run on the scheduler clock
    deadline: float | None = None
    #: converts :attr:`deadline` to wall-clock time (set when the task is added)
    wall: WallClock | None = None
    #: origin of the fixed-interval grid
    anchor: float = 0.0
    entry: TimerEntry[TaskState] | None = None
    run: JobRun | None = None
    removed: bool = False
    #: a run-once task whose last job ended (removed by the scheduler, not a user)
    finished: bool = False
    #: a wall-clock trigger (``None``: the interval or the single run of the settings)
    trigger: Trigger | None = None
    #: the trigger's next fire that no run has used yet (``None``: it has no
    #: more; :data:`NOT_ASKED`: not asked yet). A run for it uses it up, and
    #: those missed with it; a run the user asked for (``run_task_immediately``)
    #: uses none, so the fire that was armed still comes.
    upcoming_fire: datetime | None = None
    #: the wall-clock time :attr:`deadline` stands for, while the timer keeps
    #: the deadline on the wall clock (a trigger's fire, a ``run_at``); before
    #: the task is added, the ``run_at`` it asked for
    wall_due: datetime | None = None
    #: the id its next job will have (drawn for a run-once task when it is made)
    next_job_id: str | None = None
    #: the id of its latest job
    last_job_id: str | None = None
    rare: RareState | None = None

    # the policy's settings (read-only: apply() replaces the policy); the
    # descriptors are class attributes without annotations, so not fields
    timeout = _FromPolicy[float | None]()
    max_retries = _FromPolicy[int]()
    retry_backoff = _FromPolicy[float]()
    jitter = _FromPolicy[float]()
    progress_callback = _FromPolicy[Callable[..., Any] | None]()
    misfire_grace = _FromPolicy[float | None]()

    # rare state
    retry_attempt = _Rare[int](0)
    rerun_requested = _Rare[bool](False)
    pending_deadline = _Rare[float | None](None)
    key = _Rare[str | None](None)
    skipped_runs = _Rare[int](0)

    def count_skipped_run(self) -> None:
        self.skipped_runs += 1

    def settings(self) -> TaskSettings:
        """A copy of the task's current settings."""
        return TaskSettings(*[getattr(self, name) for name in SETTINGS_FIELDS])

    def apply(self, settings: TaskSettings) -> None:
        """Replace every setting at once with *settings* (already validated)."""
        for name in SETTINGS_FIELDS:
            setattr(self, name, getattr(settings, name))

    def set_trigger(self, trigger: Trigger | None) -> None:
        """Give the task a wall-clock trigger (``None``: none); its fires start afresh."""
        self.trigger = trigger
        self.upcoming_fire = None if trigger is None else NOT_ASKED

    @property
    def in_flight(self) -> bool:
        """Whether a job of the task is in flight (its record is about to change)."""
        return self.run is not None

    @property
    def queued(self) -> bool:
        """Whether the task's job is queued, not started (the store holds its row back)."""
        run = self.run
        return run is not None and run.status is JobStatus.SCHEDULED

    def hold_request(self, first_delay: float, requested_at: float) -> None:
        """Keep the first run's delay and the request's time until the loop adds the task.

        A task validated in another thread (the sync face) waits in a queue for
        the scheduler's loop, and until then :attr:`anchor` and :attr:`deadline`
        are unused. Keeping the two numbers there rather than in a wrapper per
        call means a burst of adds leaves no freed wrappers behind, which would
        otherwise hold on to memory the tasks were allocated among.
        """
        self.anchor = first_delay
        self.deadline = requested_at

    def held_request(self) -> tuple[float, float]:
        """What :meth:`hold_request` kept: ``(first_delay, requested_at)``."""
        assert self.deadline is not None, "hold_request() was not called"
        return self.anchor, self.deadline

    def snapshot(self) -> Task:
        trigger, policy = self.trigger, self.policy
        return Task(
            id=self.id,
            task_name=self.task_name,
            args=self.args,
            kwargs=dict(self.kwargs),
            interval_seconds=self.interval,
            fixed_interval=self.fixed_interval,
            run_once=self.run_once,
            status=self.status,
            next_run_at=self.next_run_at,
            timeout_seconds=policy.timeout,
            max_retries=policy.max_retries,
            retry_backoff_seconds=policy.retry_backoff,
            retry_attempt=self.retry_attempt,
            jitter_seconds=policy.jitter,
            rerun_requested=self.rerun_requested,
            trigger=None if trigger is None else repr(trigger),
            timezone=None if trigger is None else trigger_zone(trigger),
            description=self.describe(),
            misfire_grace_seconds=policy.misfire_grace,
            skipped_runs=self.skipped_runs,
            running_job_id=None if self.run is None else self.run.id,
            last_job_id=self.last_job_id,
            next_job_id=self.next_job_id,
            key=self.key,
        )

    def describe(self) -> str:
        """How the task is scheduled, in words: ``"Every 60 s"``, ``"Once"``, a cron's."""
        if self.trigger is not None:
            return describe_trigger(self.trigger)
        if self.interval is None:
            return "Once"
        return f"Every {self.interval:g} s" + ("" if self.fixed_interval else " after each run")

    @property
    def next_run_at(self) -> datetime | None:
        if self.wall_due is not None and self.deadline is not None:
            return self.wall_due  # exactly the planned wall time
        deadline, wall = self.deadline, self.wall
        if deadline is None or wall is None:
            return None
        return datetime.fromtimestamp(wall.timestamp(deadline), timezone.utc)


class JobRun:
    """One job as the engine keeps it, from creation to its final record."""

    __slots__ = (
        "attempt",
        "cancel_reason",
        "ctx",
        "done",
        "due",
        "duration",
        "ended_at",
        "error_message",
        "error_type",
        "final",
        "handler",
        "id",
        "result",
        "result_state",
        "scheduled_at",
        "control",
        "seq",
        "start_at",
        "started_at",
        "status",
        "task",
        "timeout",
        "timeout_entry",
        "traceback",
        "waiters",
    )

    def __init__(self, task: TaskState, due: float, ctx: JobContext, control: JobControl) -> None:
        self.id = ctx.job_id
        self.task = task
        self.handler = task.handler
        self.attempt = ctx.attempt
        self.ctx = ctx
        #: what the worker thread shares with this loop (cancellation, start)
        self.control = control
        self.due = due
        #: ``time.monotonic()`` before which the handler must not start, when the
        #: job was dispatched ahead of its deadline (see ``Engine.lead``)
        self.start_at: float | None = None
        self.seq = next(_job_seq)
        self.status = JobStatus.SCHEDULED
        self.scheduled_at = utcnow()
        # Every field here is written on the scheduler's loop only; the worker
        # thread writes its side into ``control`` and reports the rest.
        self.started_at: datetime | None = None
        self.ended_at: datetime | None = None
        self.duration: float | None = None
        self.error_message: str | None = None
        self.result: Any = None
        self.result_state: ResultState | None = None
        self.error_type: str | None = None
        self.traceback: str | None = None
        self.cancel_reason: CancelReason | None = None
        self.timeout = 0.0
        self.timeout_entry: TimerEntry[JobRun] | None = None
        self.waiters: list[Future[Job]] = []
        self.done = False
        self.final: Job | None = None

    #: a live job changes again: its final state is a :class:`~quiv.Job` snapshot
    in_flight = True

    @property
    def queued(self) -> bool:
        """Whether the job waits for a worker, not started (the store holds its row back)."""
        return self.status is JobStatus.SCHEDULED

    def __lt__(self, other: JobRun) -> bool:
        return (self.due, self.seq) < (other.due, other.seq)

    def snapshot(self) -> Job:
        control = self.control
        # Cleared before the payload is read (see JobContext.progress): the next
        # payload sends a new notice, so the store is asked to write again only
        # once it has taken this one (one notice per store write, not per call).
        control.progress_pending = False
        return Job(
            id=self.id,
            task_id=self.task.id,
            task_name=self.task.task_name,
            status=self.status,
            started_at=self.started_at,
            ended_at=self.ended_at,
            duration_seconds=self.duration,
            error_message=self.error_message,
            attempt=self.attempt,
            scheduled_at=self.scheduled_at,
            result=self.result,
            result_state=self.result_state,
            progress=control.progress,
            error_type=self.error_type,
            traceback=self.traceback,
            cancel_reason=self.cancel_reason,
        )
