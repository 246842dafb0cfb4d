"""The scheduler's timer task: it sleeps until the next deadline, then fires.

No polling: with nothing due it sleeps until the earliest deadline (forever
if there is none), and pushing an earlier deadline wakes it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import anyio
from anyio.abc import TaskStatus

from .._typing import Logger
from ..abc import Clock
from .records import JobRun, TaskState
from .timer import TimerHeap

__all__ = ("Timer",)


class Timer:
    """The scheduler's timer task: it sleeps until the next deadline, then fires.

    Two heaps: the tasks' next runs (woken :attr:`lead` seconds ahead, see
    :attr:`quiv.abc.Clock.lead`) and the running jobs' timeouts. Pushing an
    earlier deadline than the one it sleeps for wakes it. It never polls: with
    nothing due it sleeps until the earliest deadline, forever if there is none.

    *on_due* and *on_timeout* are the engine's: called on the scheduler's loop
    for each task that is due and each job that ran out of time.
    """

    def __init__(
        self,
        clock: Clock,
        on_due: Callable[[TaskState], None],
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

    def schedule(self, task: TaskState, deadline: float) -> None:
        """(Re)arm *task*'s next run at *deadline*."""
        if task.entry is not None:
            task.entry.cancel()
        task.deadline = deadline
        task.entry = self.deadlines.push(deadline, task)
        self._wake_before(deadline - self.lead)

    def unschedule(self, task: TaskState) -> None:
        """Disarm *task*'s next run, if it has one."""
        if task.entry is not None:
            task.entry.cancel()
            task.entry = None
        task.deadline = None

    def arm_timeout(self, run: JobRun, seconds: float) -> None:
        """Time *run* out *seconds* from now."""
        run.timeout = seconds
        deadline = self.clock.now() + seconds
        run.timeout_entry = self.timeouts.push(deadline, run)
        self._wake_before(deadline)

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
                with anyio.CancelScope() as self._sleep_scope:
                    self._sleeping_until = wake_at
                    await self.clock.sleep_until(wake_at)
                self._sleep_scope = None
                self._sleeping_until = -math.inf

    def _fire_due(self) -> None:
        """Time out the jobs that ran too long, then hand over the tasks that are due."""
        now = self.clock.now()
        try:
            for timeout in self.timeouts.pop_due(now):
                self._on_timeout(timeout.payload)
            for deadline in self.deadlines.pop_due(now + self.lead):
                task = deadline.payload
                task.entry = None
                self._on_due(task)
        except Exception:  # an engine bug must not stop the timer
            self._logger.exception("quiv: timer callback failed")

    def stop(self) -> None:
        """End the timer task."""
        if self._scope is not None:
            self._scope.cancel()
