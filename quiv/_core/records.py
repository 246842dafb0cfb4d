"""The engine's mutable records of tasks and jobs, and their public snapshots.

These objects are owned by the scheduler's loop. The only fields a worker
thread touches are marked; it touches them under the job context's lock.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timezone, tzinfo
from typing import Any

from .._clock import WallClock
from .._context import JobContext, JobControl
from .._models import CancelReason, Job, JobStatus, ResultState, Task, TaskStatus
from .._triggers.wall import zone_name
from .._xthread.mailbox import Future
from ..abc import Trigger
from .handlers import HandlerSpec
from .timer import TimerEntry

__all__ = (
    "SETTINGS_FIELDS",
    "JobRun",
    "TaskSettings",
    "TaskState",
    "WallTrigger",
    "fork_generation",
    "new_id",
    "utcnow",
)

_job_seq = itertools.count()


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


_random_pool = bytearray()
_random_lock = threading.Lock()


def _reset_after_fork() -> None:
    """In a forked child: draw fresh randomness, never the parent's pooled bytes.

    A pre-fork server (gunicorn ``--preload``, ``uvicorn --workers``) would
    otherwise hand every worker the same job ids. The lock is replaced too: a
    thread of the parent may have held it at the fork, and it would stay held.
    """
    global _random_lock, _forks
    _random_lock = threading.Lock()
    _random_pool.clear()
    _forks += 1


#: how many forks separate this process from the one that imported quiv
_forks = 0


def fork_generation() -> int:
    """A number that changes in a forked child (ids drawn before are the parent's too)."""
    return _forks


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_reset_after_fork)


def new_id() -> str:
    """A random (version 4) UUID string.

    Draws randomness from :func:`os.urandom` in blocks, as one system call per
    id is a measurable cost at thousands of jobs a second.
    """
    with _random_lock:
        if not _random_pool:
            _random_pool.extend(os.urandom(16 * 256))
        raw = _random_pool[-16:]
        del _random_pool[-16:]
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(eq=False, slots=True)
class TaskSettings:
    """What ``add_task``/``update_task`` set (validated)."""

    task_name: str
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    interval: float | None
    fixed_interval: bool
    run_once: bool
    timeout: float | None
    max_retries: int
    retry_backoff: float
    jitter: float
    progress_callback: Callable[..., Any] | None
    #: skip a wall-clock run that comes due more than this many seconds late
    misfire_grace: float | None


SETTINGS_FIELDS = tuple(field.name for field in fields(TaskSettings))


class WallTrigger:
    """A task's wall-clock trigger, and the fire its next fire is counted from.

    :attr:`last_fire` moves only when a fire is used up: it ran, it was
    skipped, or fires missed together were folded into one run. It is the
    fire itself when it can be (the trigger's own datetime, which tasks on
    one schedule share), so a task on a wall clock keeps no datetime of its own. A run the
    user asked for (``run_task_immediately``) uses no fire, so the one that
    was armed still comes.
    """

    __slots__ = ("first", "last_fire", "skipped", "trigger")

    def __init__(self, trigger: Trigger, last_fire: datetime | None = None) -> None:
        self.trigger = trigger
        self.last_fire = last_fire
        #: the first fire, once asked for (fires are counted from it until one is used)
        self.first: datetime | None = None
        #: runs skipped for coming due later than the task's ``misfire_grace``
        self.skipped = 0

    def describe(self) -> str:
        """The trigger's own description (its ``describe()``), else its ``repr``."""
        describe = getattr(self.trigger, "describe", None)
        if callable(describe):
            try:
                text = describe()
            except Exception:  # a user's trigger: the description is best effort
                text = None
            if isinstance(text, str):
                return text
        return repr(self.trigger)

    def zone(self) -> str | None:
        """The name of the trigger's time zone, if it has one."""
        tz = getattr(self.trigger, "timezone", None)
        return zone_name(tz) if isinstance(tz, tzinfo) else None


@dataclass(eq=False, slots=True)
class TaskState(TaskSettings):
    """A task as the engine keeps it: its settings and its scheduling state.

    A scheduler keeps one per task, so every field costs memory ten thousand
    times over: the settings are inherited rather than referenced, the
    wall-clock time of the next run is computed from :attr:`deadline` when read,
    and callers of ``wait_for_task`` wait in the engine, not here.
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
    retry_attempt: int = 0
    rerun_requested: bool = False
    #: a ``run_at`` set by ``update_task`` while a job was in flight
    pending_deadline: float | None = None
    run: JobRun | None = None
    removed: bool = False
    #: a run-once task whose last job ended (removed by the scheduler, not a user)
    finished: bool = False
    #: a wall-clock trigger and its latest fire (``None``: the interval or the
    #: single run of the settings); one slot, as most tasks have none
    wall_trigger: WallTrigger | None = None
    #: the wall-clock time :attr:`deadline` stands for, while the timer keeps
    #: the deadline on the wall clock (a trigger's fire, a ``run_at``); before
    #: the task is added, the ``run_at`` it asked for
    wall_due: datetime | None = None
    #: the id its next job will have (drawn for a run-once task when it is made)
    next_job_id: str | None = None
    #: the id of its latest job
    last_job_id: str | None = None

    def settings(self) -> TaskSettings:
        """A copy of the task's current settings."""
        return TaskSettings(*[getattr(self, name) for name in SETTINGS_FIELDS])

    def apply(self, settings: TaskSettings) -> None:
        """Replace every setting at once with *settings* (already validated)."""
        for name in SETTINGS_FIELDS:
            setattr(self, name, getattr(settings, name))

    @property
    def in_flight(self) -> bool:
        """Whether a job of the task is in flight (its record is about to change)."""
        return self.run is not None

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
        wall_trigger = self.wall_trigger
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
            timeout_seconds=self.timeout,
            max_retries=self.max_retries,
            retry_backoff_seconds=self.retry_backoff,
            retry_attempt=self.retry_attempt,
            jitter_seconds=self.jitter,
            rerun_requested=self.rerun_requested,
            trigger=None if wall_trigger is None else repr(wall_trigger.trigger),
            timezone=None if wall_trigger is None else wall_trigger.zone(),
            description=self.describe(),
            misfire_grace_seconds=self.misfire_grace,
            skipped_runs=0 if wall_trigger is None else wall_trigger.skipped,
            running_job_id=None if self.run is None else self.run.id,
            last_job_id=self.last_job_id,
            next_job_id=self.next_job_id,
        )

    def describe(self) -> str:
        """How the task is scheduled, in words: ``"Every 60 s"``, ``"Once"``, a cron's."""
        if self.wall_trigger is not None:
            return self.wall_trigger.describe()
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
