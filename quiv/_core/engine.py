"""The engine: timer, dispatch, pool workers and what happens after a job.

Everything here runs on the scheduler's loop. The timer task sleeps until the
heap's earliest deadline (or until a wake-up when an earlier deadline is
pushed); due tasks become jobs in the ready queue, ordered by due time, from
which up to ``pool_size`` worker threads take them, so under saturation the
earliest due job always runs first. Workers report starts and ends through
the inbox; :meth:`Engine.finish` records the end and schedules the next run.
"""

from __future__ import annotations

import math
import random
import time
from collections import OrderedDict
from typing import Any

import anyio
from anyio.abc import TaskGroup

from .._clock import Clock, LoopClock, WallClock
from .._context import JobContext
from .._errors import SchedulerStoppedError
from .._events import Event, Listeners
from .._mainloop.bridge import MainLoopBridge
from .._models import Job, JobStatus, TaskStatus
from .._store._base import Store
from .._triggers.interval import IntervalSchedule, next_run, retry_delay
from .._typing import Logger
from .._xthread.mailbox import Future
from .._xthread.pool import STUCK, Inbox, ReadyQueue, Start
from .._xthread.runner import Outcome, work
from .._xthread.threads import WorkerThreads
from .records import JobRun, TaskState, new_id, utcnow
from .timer import TimerHeap

__all__ = ("Engine",)


#: how long before a task's deadline the timer wakes for it (with the loop's
#: clock): event loops wake up to a millisecond or two late (asyncio rounds its
#: waits up to whole milliseconds), while a worker thread can wait out
#: the rest of the time to a tenth of that before it starts the job
LEAD = 0.0025

#: how many finished run-once tasks ``wait_for_task`` still answers for
_FINISHED_ONCE_KEPT = 1_000

SHUTDOWN_REASON = "scheduler shut down"
ABANDONED_REASON = "abandoned at shutdown: the handler was still running"

_JOB_EVENTS = {
    JobStatus.COMPLETED: Event.JOB_COMPLETED,
    JobStatus.FAILED: Event.JOB_FAILED,
    JobStatus.CANCELLED: Event.JOB_CANCELLED,
}


def describe_error(error: BaseException) -> str:
    try:
        text = str(error)
    except Exception:  # the user's __str__ failed: the type still says what happened
        text = "<message unavailable: its __str__ raised>"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class Engine:
    """Scheduling state and mechanics of one scheduler (its loop only)."""

    def __init__(
        self,
        *,
        pool_size: int,
        clock: Clock,
        store: Store,
        listeners: Listeners,
        logger: Logger,
    ) -> None:
        self.pool_size = pool_size
        self.clock = clock
        self.wall = WallClock(clock)
        #: a fake clock's deadlines are met exactly by the timer: no lead
        self.lead = LEAD if isinstance(clock, LoopClock) else 0.0
        self.store = store
        self.listeners = listeners
        self.logger = logger
        self._threads = WorkerThreads()
        #: the tasks' next runs (the timer wakes ``lead`` ahead of them)
        self.deadlines: TimerHeap[TaskState] = TimerHeap()
        #: the running jobs' timeouts
        self.timeouts: TimerHeap[JobRun] = TimerHeap()
        self.tasks: dict[str, TaskState] = {}
        #: callers of ``wait_for_task``, by task id (an entry only while someone waits)
        self.task_waiters: dict[str, list[Future[Job]]] = {}
        self.jobs: dict[str, JobRun] = {}
        self.running = 0
        self.bridge: MainLoopBridge | None = None
        self.worker_backend = "asyncio"
        self._ready = ReadyQueue(pool_size)
        self._recheck_pending = False
        self._inbox: Inbox | None = None
        self._worker_scopes: set[anyio.CancelScope] = set()
        self._task_group: TaskGroup | None = None
        self._timer_scope: anyio.CancelScope | None = None
        self._sleep_scope: anyio.CancelScope | None = None
        self._sleeping_until = math.inf
        self._idle: anyio.Event | None = None
        self._token: Any = None
        self.stopping = False
        #: run-once tasks that just finished: task id -> (last job, forget at)
        self.finished_once: OrderedDict[str, tuple[Job, float]] = OrderedDict()
        self.history_retention = 86400.0

    # -- startup ---------------------------------------------------------------

    async def start(self, task_group: TaskGroup, worker_backend: str) -> None:
        self._task_group = task_group
        self.worker_backend = worker_backend
        self._token = anyio.lowlevel.current_token()
        self._inbox = Inbox(self._token, self._on_reports)
        await task_group.start(self._inbox.run)
        await task_group.start(self._timer_loop)

    # -- the timer -------------------------------------------------------------

    def schedule(self, task: TaskState, deadline: float) -> None:
        """(Re)schedule *task*'s next run at *deadline*."""
        if task.entry is not None:
            task.entry.cancel()
        task.status = TaskStatus.ACTIVE
        task.deadline = deadline
        task.entry = self.deadlines.push(deadline, task)
        self._wake_before(deadline - self.lead)

    def _arm_timeout(self, run: JobRun, timeout: float) -> None:
        run.timeout = timeout
        deadline = self.clock.now() + timeout
        run.timeout_entry = self.timeouts.push(deadline, run)
        self._wake_before(deadline)

    def _wake_before(self, wake_at: float) -> None:
        """Wake the timer now if it sleeps past *wake_at*."""
        if wake_at < self._sleeping_until and self._sleep_scope is not None:
            self._sleep_scope.cancel()

    def unschedule(self, task: TaskState) -> None:
        if task.entry is not None:
            task.entry.cancel()
            task.entry = None
        task.deadline = None

    async def _timer_loop(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        with anyio.CancelScope() as self._timer_scope:
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
        """Time out the jobs that ran too long, then dispatch the tasks that are due."""
        now = self.clock.now()
        try:
            for timeout in self.timeouts.pop_due(now):
                run = timeout.payload
                self.cancel_run(run, f"timed out after {run.timeout:g} s")
            for deadline in self.deadlines.pop_due(now + self.lead):
                self._on_due(deadline.payload)
        except Exception:  # an engine bug must not stop the timer
            self.logger.exception("quiv: timer callback failed")

    def stop_timer(self) -> None:
        if self._timer_scope is not None:
            self._timer_scope.cancel()

    # -- dispatch --------------------------------------------------------------

    def _on_due(self, task: TaskState) -> None:
        task.entry = None
        due = task.deadline if task.deadline is not None else self.clock.now()
        self.dispatch(task, due)

    def dispatch(self, task: TaskState, due: float) -> JobRun | None:
        """Create a job for *task* now and queue it for a pool slot."""
        if task.removed or task.run is not None or task.status is TaskStatus.PAUSED:
            return None
        if task.entry is not None:
            task.entry.cancel()
            task.entry = None
        ctx = JobContext(
            job_id=new_id(),
            task_id=task.id,
            task_name=task.task_name,
            attempt=task.retry_attempt + 1,
            bridge=self.bridge,
            progress_callback=task.progress_callback,
        )
        run = JobRun(task, due, ctx)
        ahead = due - self.clock.now()
        if ahead > 0:  # woken early by the lead: the worker waits out the rest
            run.start_at = time.monotonic() + ahead
        task.run = run
        task.status = TaskStatus.RUNNING
        task.deadline = None
        self.jobs[run.id] = run
        try:
            self.store.put_job(run)
            self.store.put_task(task)
        except Exception:  # a record lost must not lose the job: it is queued below
            self.logger.exception(
                "quiv: recording job %s of task %r failed", run.id, task.task_name
            )
        finally:
            self._start_workers(self._ready.push(run))
        return run

    def _start_workers(self, start: Start) -> None:
        assert self._task_group is not None
        if start is Start.NOW:
            self._task_group.start_soon(self._worker, name="quiv worker")
            start = self._ready.check()  # more may be queued than one worker takes
        if start is Start.LATER and not self._recheck_pending:
            self._recheck_pending = True
            self._task_group.start_soon(self._recheck, name="quiv worker check")

    async def _recheck(self) -> None:
        """A moment later: start a worker if the running ones are stuck in handlers."""
        await anyio.sleep(STUCK)
        self._recheck_pending = False
        if not self.stopping:
            self._start_workers(self._ready.check())

    async def _worker(self) -> None:
        """Run one pool worker thread until the ready queue is empty.

        The ready queue starts at most ``pool_size`` of these. Shielded: only
        abandonment at shutdown may stop waiting for the thread, a daemon
        thread that then cannot delay the interpreter's exit.
        """
        assert self._inbox is not None
        with anyio.CancelScope(shield=True) as scope:
            self._worker_scopes.add(scope)
            try:
                await self._threads.run_sync(
                    work, self._ready, self._inbox.put, self.worker_backend
                )
            finally:
                self._worker_scopes.discard(scope)

    def _on_reports(self, reports: list[tuple[JobRun, Outcome | None]]) -> None:
        for run, outcome in reports:
            if outcome is not None:
                self.finish(run, outcome)  # never raises
                continue
            try:
                self._on_started(run)
            except Exception:  # a record or event lost must not lose the other reports
                self.logger.exception("quiv: recording the start of job %s failed", run.id)

    def _on_started(self, run: JobRun) -> None:
        if run.done or run.status is not JobStatus.SCHEDULED:
            return
        run.status = JobStatus.RUNNING
        self.running += 1
        timeout = run.task.timeout
        if timeout is not None:
            self._arm_timeout(run, timeout)
        try:
            self.store.put_job(run)
        finally:
            if self.listeners.wants(Event.JOB_STARTED):
                self.listeners.emit(
                    self.bridge, Event.JOB_STARTED, run.task.snapshot(), run.snapshot()
                )

    # -- cancellation ----------------------------------------------------------

    def cancel_run(self, run: JobRun, reason: str) -> bool:
        """Request cancellation of *run*; return ``False`` if it already ended."""
        if run.done:
            return False
        if run.ctx._cancel(reason):
            run.cancel_worker()
        if not run.started:  # still queued: its handler will never be called
            self.finish(run, None)
        return True

    # -- the end of a job ------------------------------------------------------

    def finish(self, run: JobRun, outcome: Outcome | None) -> None:
        """Record how *run* ended, update its task, notify listeners and waiters.

        Never raises. Whatever fails on the way (a record write, an event) is
        logged, and the rest still happens: the job gets its final state, its
        task is scheduled again or removed as its settings say, and its
        waiters are woken.
        """
        if run.done:
            return
        try:
            self._finish(run, outcome)
        except Exception:
            self.logger.exception(
                "quiv: recording the end of job %s of task %r failed",
                run.id,
                run.task.task_name,
            )

    def _finish(self, run: JobRun, outcome: Outcome | None) -> None:
        try:
            if outcome is not None and outcome.started and run.status is JobStatus.SCHEDULED:
                self._on_started(run)  # the start notice has not arrived yet
        finally:
            job = self._seal(run, outcome)
            retrying = False
            try:
                retrying = self._after_job(run.task, job.status)
            finally:
                try:
                    self._report_end(run, job, outcome, retrying)
                finally:
                    self._wake_waiters(run, job)

    def _seal(self, run: JobRun, outcome: Outcome | None) -> Job:
        """Give *run* its final state (in memory only: nothing here calls out)."""
        run.done = True
        if run.status is JobStatus.RUNNING:
            self.running -= 1
        if run.timeout_entry is not None:
            run.timeout_entry.cancel()
        status, message = self._classify(run, outcome)
        run.status = status
        run.error_message = message
        run.ended_at = utcnow()
        if outcome is not None and outcome.duration is not None:
            run.duration = outcome.duration
        elif run.started_at is not None:
            run.duration = (run.ended_at - run.started_at).total_seconds()
        job = run.final = run.snapshot()
        self.jobs.pop(run.id, None)
        return job

    def _report_end(self, run: JobRun, job: Job, outcome: Outcome | None, retrying: bool) -> None:
        """Log a failure, write the task's and the job's records, emit the end events.

        Each step is taken even if one before it raised.
        """
        try:
            if job.status is JobStatus.FAILED and outcome is not None and outcome.error is not None:
                self.logger.error(
                    "quiv: job %s of task %r failed",
                    run.id,
                    run.task.task_name,
                    exc_info=outcome.error,
                )
        finally:
            try:
                self._write_end(run.task, job)
            finally:
                status_event = _JOB_EVENTS[job.status]
                wanted = [status_event, Event.JOB_RETRYING] if retrying else [status_event]
                if any(self.listeners.wants(e) for e in wanted):
                    task_snapshot = run.task.snapshot()
                    for e in wanted:
                        self.listeners.emit(self.bridge, e, task_snapshot, job)

    def _write_end(self, task: TaskState, job: Job) -> None:
        try:
            if task.finished:
                self.store.delete_task(task.id)
            elif not task.removed:  # (a task removed by the user is deleted already)
                self.store.put_task(task)
        finally:
            self.store.put_job(job)

    def _wake_waiters(self, run: JobRun, job: Job) -> None:
        """Hand *job* to its waiters and its task's; note when the engine is idle."""
        task_waiters = self.task_waiters.pop(run.task.id, [])
        for waiter in [*run.waiters, *task_waiters]:
            if self.stopping:
                waiter.set_exception(SchedulerStoppedError("the scheduler was shut down"))
            else:
                waiter.set_result(job)
        if not self.jobs and self._idle is not None:
            self._idle.set()
        if run.task.finished:
            self._remember_finished(run.task, job)

    def _classify(self, run: JobRun, outcome: Outcome | None) -> tuple[JobStatus, str | None]:
        ctx = run.ctx
        if outcome is None and run.started:
            return JobStatus.CANCELLED, ABANDONED_REASON
        if outcome is None or not outcome.started or ctx.cancelled or outcome.cancelled:
            return JobStatus.CANCELLED, ctx.cancel_reason or "cancelled"
        if outcome.error is not None:
            return JobStatus.FAILED, describe_error(outcome.error)
        return JobStatus.COMPLETED, None

    def _remember_finished(self, task: TaskState, job: Job) -> None:
        """Keep the last job of a finished run-once task a while, for ``wait_for_task``.

        Only long enough to close the "add, then wait" race: at most
        :data:`_FINISHED_ONCE_KEPT` entries, each for at most a minute (and no
        longer than the job history is kept).
        """
        finished = self.finished_once
        now = self.clock.now()
        while finished:
            oldest = next(iter(finished.values()))
            if oldest[1] > now and len(finished) < _FINISHED_ONCE_KEPT:
                break
            finished.popitem(last=False)
        keep = min(60.0, self.history_retention)
        if keep > 0:
            finished[task.id] = (job, now + keep)

    def finished_job(self, task_id: str) -> Job | None:
        """The last job of a run-once task that finished moments ago, if remembered."""
        entry = self.finished_once.get(task_id)
        if entry is None or entry[1] <= self.clock.now():
            return None
        return entry[0]

    def _after_job(self, task: TaskState, status: JobStatus) -> bool:
        """Schedule *task* again (or remove it) after its job ended, in memory only.

        Return True if a retry was scheduled. :meth:`_report_end` writes the record.
        """
        task.run = None
        if task.removed:
            return False
        now = self.clock.now()
        retrying = status is JobStatus.FAILED and task.retry_attempt < task.max_retries
        deadline: float | None = None
        if retrying:
            task.retry_attempt += 1
            deadline = now + retry_delay(task.retry_backoff, task.retry_attempt)
        else:
            task.retry_attempt = 0
        if task.rerun_requested:
            task.rerun_requested = False
            deadline = now
        elif task.pending_deadline is not None:
            deadline, task.pending_deadline = task.pending_deadline, None
        elif deadline is None and not task.run_once:
            assert task.interval is not None
            schedule = IntervalSchedule(task.interval, task.fixed_interval, task.anchor)
            jitter = random.uniform(0.0, task.jitter) if task.jitter else 0.0
            deadline = next_run(schedule, ended=now, jitter=jitter)
        if deadline is None:  # a run-once task that is done
            task.removed = True
            task.finished = True
            task.status = TaskStatus.ACTIVE
            task.deadline = None
            self.tasks.pop(task.id, None)
            return False
        if task.status is TaskStatus.PAUSED:
            task.deadline = None
            task.pending_deadline = None
        else:
            self.schedule(task, deadline)
        return retrying

    # -- shutdown --------------------------------------------------------------

    async def shutdown(self, timeout: float | None) -> list[Job]:
        """Cancel every job and wait up to *timeout* for them; abandon the rest.

        Return the records of the abandoned jobs.
        """
        self.stopping = True
        # A running job's cancel frees its worker, which must not start a queued
        # job that this loop has not cancelled yet.
        self._ready.close()
        self._threads.close()  # from now on, a thread exits once its call returns
        self.stop_timer()
        try:
            for run in list(self.jobs.values()):
                self.cancel_run(run, SHUTDOWN_REASON)
            with anyio.move_on_after(math.inf if timeout is None else timeout, shield=True):
                await self._wait_idle()
        finally:
            stuck = list(self.jobs.values())
            for scope in self._worker_scopes:
                scope.cancel()  # abandon the threads still running handlers
            if self._inbox is not None:
                self._inbox.stop()
            for run in stuck:
                self.finish(run, None)
        return [run.final for run in stuck if run.final is not None]

    async def _wait_idle(self) -> None:
        while self.jobs:
            self._idle = anyio.Event()
            await self._idle.wait()
        self._idle = None
