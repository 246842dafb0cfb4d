"""The scheduler's timer task: it sleeps until the next deadline, then fires.

No polling: with nothing due it sleeps until the earliest deadline (forever
if there is none), and pushing an earlier deadline wakes it. The one
exception is wall-clock time: while a run is armed for a wall-clock time (a
cron fire, a ``run_at``), the timer also looks at the wall clock at least
every :data:`WALL_CHECK` seconds, and follows it if it jumped.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timezone

import anyio
from anyio.abc import TaskStatus

from .._typing import Logger
from ..abc import Clock
from .records import JobRun, TaskState
from .timer import TimerHeap

__all__ = ("WALL_CHECK", "WALL_TOLERANCE", "Timer")

#: while a run is armed for a wall-clock time, look at the wall clock at least this often
WALL_CHECK = 60.0
#: how far the wall clock may move against the monotonic one before armed runs follow it
WALL_TOLERANCE = 0.05
#: a wall-clock run due within this many seconds is due now: wall times are told to
#: the microsecond, so "now" as a datetime may lie a fraction of one ahead of the clock
_AT_ONCE = 1e-6


class Timer:
    """The scheduler's timer task: it sleeps until the next deadline, then fires.

    Two heaps: the tasks' next runs (woken :attr:`lead` seconds ahead, see
    :attr:`quiv.abc.Clock.lead`) and the running jobs' timeouts. Pushing an
    earlier deadline than the one it sleeps for wakes it. It never polls: with
    nothing due it sleeps until the earliest deadline, forever if there is none.

    *on_due* and *on_timeout* are the engine's: called on the scheduler's loop
    for each task that is due (with the wall-clock time it was armed for, if
    any) and each job that ran out of time.

    **Wall-clock runs.** :meth:`schedule_wall` arms a run for a wall-clock
    time: its deadline is the wall time less the offset between the wall
    clock and the monotonic one. The wall clock can jump (an NTP step, a
    suspended host or VM), and then that deadline is wrong. So while any such
    run is armed, the timer measures the offset each time it wakes, and at
    least every :data:`WALL_CHECK` seconds; when it has moved by more than
    :data:`WALL_TOLERANCE`, every wall-clock run is armed again at its wall
    time. A run whose wall time has passed meanwhile comes due at once (the
    engine then applies the task's ``misfire_grace``). With no such run
    armed, the timer never looks.
    """

    def __init__(
        self,
        clock: Clock,
        on_due: Callable[[TaskState, datetime | None], None],
        on_timeout: Callable[[JobRun], None],
        logger: Logger,
    ) -> None:
        self.clock = clock
        self.lead = clock.lead
        self._on_due = on_due
        self._on_timeout = on_timeout
        self._logger = logger
        #: the tasks' next runs
        self.deadlines: TimerHeap[TaskState] = TimerHeap()
        #: the running jobs' timeouts
        self.timeouts: TimerHeap[JobRun] = TimerHeap()
        self._scope: anyio.CancelScope | None = None
        self._sleep_scope: anyio.CancelScope | None = None
        self._sleeping_until = math.inf
        #: how many armed runs are kept on the wall clock (their task's ``wall_due`` is set)
        self.wall_armed = 0
        #: ``wall_time() - now()`` when the wall-clock runs were last armed
        self._wall_offset = 0.0
        #: a moment of that offset: ``(now(), wall-clock datetime)``; deadlines are
        #: counted from it in :class:`~datetime.timedelta` terms, so a wall time
        #: given to the microsecond gets its deadline without float rounding
        self._wall_base: tuple[float, datetime] = (0.0, datetime.min)
        #: when to look at the wall clock next, while :attr:`wall_armed`
        self._next_wall_check = math.inf

    def schedule(self, task: TaskState, deadline: float) -> None:
        """(Re)arm *task*'s next run at *deadline* on the monotonic clock."""
        self._disarm(task)
        self._arm(task, deadline)

    def schedule_wall(self, task: TaskState, when: datetime) -> None:
        """(Re)arm *task*'s next run for the wall-clock time *when* (aware)."""
        self._disarm(task)
        if not self.wall_armed:
            self._set_base()
            self._wake_before(self._next_wall_check)  # it may sleep for longer
        else:
            self.check_wall()
        self.wall_armed += 1
        task.wall_due = when
        deadline = self._deadline_of(when)
        now = self.clock.now()
        if deadline - now < _AT_ONCE:  # "now" in wall time, to the microsecond it is told in
            deadline = min(deadline, now)
        self._arm(task, deadline)

    def unschedule(self, task: TaskState) -> None:
        """Disarm *task*'s next run, if it has one."""
        self._disarm(task)
        task.deadline = None

    def _arm(self, task: TaskState, deadline: float) -> None:
        task.deadline = deadline
        task.entry = self.deadlines.push(deadline, task)
        self._wake_before(deadline - self.lead)

    def _disarm(self, task: TaskState) -> None:
        if task.entry is not None:
            task.entry.cancel()
            task.entry = None
        if task.wall_due is not None:
            task.wall_due = None
            self.wall_armed -= 1

    def _measure_offset(self) -> float:
        clock = self.clock
        return clock.wall_time() - clock.now()

    def _set_base(self) -> None:
        clock = self.clock
        now = clock.now()
        wall = clock.wall_time()
        self._wall_offset = wall - now
        self._wall_base = (now, datetime.fromtimestamp(wall, timezone.utc))
        self._next_wall_check = now + WALL_CHECK

    def _deadline_of(self, when: datetime) -> float:
        base_now, base_wall = self._wall_base
        return base_now + (when - base_wall).total_seconds()

    def check_wall(self) -> None:
        """Follow the wall clock if it moved: re-arm every wall-clock run at its wall time."""
        offset = self._measure_offset()
        self._next_wall_check = self.clock.now() + WALL_CHECK
        if abs(offset - self._wall_offset) <= WALL_TOLERANCE:
            return
        self._set_base()
        moved = [e.payload for e in self.deadlines.entries() if e.payload.wall_due is not None]
        for task in moved:
            assert task.wall_due is not None and task.entry is not None
            task.entry.cancel()
            self._arm(task, self._deadline_of(task.wall_due))

    def arm_timeout(self, run: JobRun, seconds: float) -> None:
        """Time *run* out *seconds* from now."""
        run.timeout = seconds
        deadline = self.clock.now() + seconds
        run.timeout_entry = self.timeouts.push(deadline, run)
        self._wake_before(deadline)

    @property
    def sleeping_until(self) -> float:
        """The time the timer task sleeps until (``-inf`` while it is awake)."""
        return self._sleeping_until

    def next_event(self) -> float:
        """The earliest time the timer has work: a next run (less the lead), a
        timeout, or a look at the wall clock once it moved (``inf`` for none).

        The wall-clock look counts only while the wall clock moved against
        the monotonic one and the armed runs have not followed it yet: the
        other looks change nothing, so a test clock may skip them.
        """
        wake = math.inf
        if (deadline := self.deadlines.next_deadline()) is not None:
            wake = deadline - self.lead
        if (timeout := self.timeouts.next_deadline()) is not None:
            wake = min(wake, timeout)
        if self.wall_armed and abs(self._measure_offset() - self._wall_offset) > WALL_TOLERANCE:
            wake = min(wake, self._next_wall_check)
        return wake

    def _wake_before(self, wake_at: float) -> None:
        if wake_at < self._sleeping_until and self._sleep_scope is not None:
            self._sleep_scope.cancel()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """The timer task (on the scheduler's loop), until :meth:`stop`."""
        with anyio.CancelScope() as self._scope:
            task_status.started()
            while True:
                self._fire_due()
                wake_at = math.inf
                if (deadline := self.deadlines.next_deadline()) is not None:
                    wake_at = deadline - self.lead
                if (timeout := self.timeouts.next_deadline()) is not None:
                    wake_at = min(wake_at, timeout)
                if self.wall_armed:
                    wake_at = min(wake_at, self._next_wall_check)
                with anyio.CancelScope() as self._sleep_scope:
                    self._sleeping_until = wake_at
                    await self.clock.sleep_until(wake_at)
                self._sleep_scope = None
                self._sleeping_until = -math.inf

    def _fire_due(self) -> None:
        """Time out the jobs that ran too long, then hand over the tasks that are due."""
        now = self.clock.now()
        try:
            if self.wall_armed:
                self.check_wall()
            for timeout in self.timeouts.pop_due(now):
                self._on_timeout(timeout.payload)
            for deadline in self.deadlines.pop_due(now + self.lead):
                task = deadline.payload
                task.entry = None
                wall_due = task.wall_due
                if wall_due is not None:
                    task.wall_due = None
                    self.wall_armed -= 1
                self._on_due(task, wall_due)
        except Exception:  # an engine bug must not stop the timer
            self._logger.exception("quiv: timer callback failed")

    def stop(self) -> None:
        """End the timer task."""
        if self._scope is not None:
            self._scope.cancel()
