"""The engine: the one owner of a scheduler's tasks, jobs and waiters.

Every change to that state is a method of :class:`Engine`; the public faces
only check their arguments and translate. Everything here runs on the
scheduler's loop and never blocks. The data flows one way:

    a face's call -> Engine -> Timer (next runs, timeouts)
                            -> WorkerPool (due jobs -> worker threads)
    WorkerPool's notices -> Engine -> outcomes (status, next run)
                                   -> Store (records) and Listeners (events)

This module is longer than most (about 770 lines, a third of them
docstrings) because the operations and the end of a job must see the same
state under the same invariants:
a task is in exactly one of "waiting in the timer", "has a job in flight",
"paused" or "gone", and every job in ``jobs`` reaches a final record.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import datetime, timezone

import anyio
from anyio.abc import TaskGroup

from .._clock import WallClock
from .._config import UNSET
from .._context import JobContext, JobControl
from .._errors import (
    ConfigurationError,
    SchedulerStoppedError,
    TaskNotActiveError,
    TaskNotFoundError,
    TaskRunningError,
)
from .._events import Event, Listeners
from .._mainloop.bridge import MainLoopBridge
from .._models import CancelReason, Job, JobStatus, QuivStats, Task, TaskStatus
from .._triggers.interval import clamp_delay
from .._typing import Logger
from .._xthread.mailbox import Future
from .._xthread.runner import Outcome
from .._xthread.workers import WorkerPool
from ..abc import Clock, JobQuery, Store
from . import queries
from .ids import new_id
from .keyed import HostSchedules
from .outcomes import SHUTDOWN_REASON, FinishedOnce, next_deadline, next_wall_fire, settle, use_fire
from .records import JobRun, TaskState
from .task_checks import TaskUpdate
from .timing import Timer

__all__ = ("Engine",)

_JOB_EVENTS = {
    JobStatus.COMPLETED: Event.JOB_COMPLETED,
    JobStatus.FAILED: Event.JOB_FAILED,
    JobStatus.CANCELLED: Event.JOB_CANCELLED,
}


#: the ``error_message`` of a job cancelled by ``cancel_job``
_BY_CANCEL_JOB = "cancelled by cancel_job()"


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
        bridge: MainLoopBridge,
        history_retention: float,
        max_result_bytes: int = 65536,
        persistent: bool = False,
        standby: bool = False,
    ) -> None:
        self.clock = clock
        self.wall = WallClock(clock)
        self.store = store
        self.listeners = listeners
        self.logger = logger
        self.bridge = bridge
        self.history_retention = history_retention
        self.timer = Timer(clock, self._on_due, self._on_timeout, logger)
        self.pool = WorkerPool(pool_size)
        #: the largest result kept (its JSON text's length)
        self.max_result_bytes = max_result_bytes
        #: the store writes JSON results to a file the user named (``db_path=``)
        self.persistent = persistent
        #: one bound method for every job's progress notices
        self._notify_progress = self.pool.notify_progress
        self.tasks: dict[str, TaskState] = {}
        self.jobs: dict[str, JobRun] = {}
        #: callers of ``wait_for_task``, by task id (an entry only while someone waits)
        self._task_waiters: dict[str, list[Future[Job]]] = {}
        #: the last jobs of run-once tasks that just finished
        self._finished_once = FinishedOnce(min(60.0, history_retention))
        #: jobs whose handler is running
        self.running = 0
        self.stopping = False
        self._idle: anyio.Event | None = None
        #: keyed schedules, and this process's part in the host's runner role
        self.host = HostSchedules(self, standby=standby, claims=persistent)
        self._task_group: TaskGroup | None = None
        #: called (on the loop) after each batch of the pool's notices: quiv.testing waits on it
        self.report_hooks: list[Callable[[], object]] = []

    @property
    def pool_size(self) -> int:
        return self.pool.pool_size

    async def start(self, task_group: TaskGroup, worker_backend: str) -> None:
        """Start the pool's notices and the timer in *task_group*."""
        self._task_group = task_group
        await self.host.load()
        await self.pool.start(task_group, worker_backend, self._on_reports)
        await task_group.start(self.timer.run)

    # -- the task operations ---------------------------------------------------

    def add_task(self, task: TaskState, first_delay: float, requested_at: float | None) -> None:
        """Add a validated task; its first run is *first_delay* seconds from now.

        A task with a wall-clock trigger runs first at the trigger's first
        fire, and one with a ``run_at`` (held in ``wall_due`` until now) at
        that wall-clock time, both by this scheduler's clock; the timer keeps
        both on the wall clock.

        :param requested_at: ``time.monotonic()`` when another thread asked for
            it; with a real-time clock the time the request took to arrive
            counts against the delay
        """
        existing = self.tasks.get(task.id)
        if existing is not None:  # a keyed schedule declared again
            self._redeclare(existing, task, first_delay)
            return
        first_wall, task.wall_due = task.wall_due, None
        last = self.host.last_fire(task)
        if last is not None:  # declared again after a restart: count on from its last fire
            first_wall, first_delay = self.host.resume(task, last), 0.0
        elif task.trigger is not None:
            first_wall = self._first_fire(task)
            first_delay = 0.0
        elif requested_at is not None and self.clock.real_time:
            first_delay = max(0.0, first_delay - (time.monotonic() - requested_at))
        if first_wall is not None:
            first_delay = clamp_delay((first_wall - self.wall_now()).total_seconds())
        deadline = self.clock.now() + first_delay
        # the origin of an interval's grid (0.0 for the others: one float less per task)
        task.anchor = deadline if task.interval is not None else 0.0
        if last is not None and task.interval is not None:
            task.anchor = self.host.grid_anchor(task, last)  # the grid goes on, not afresh
        task.wall = self.wall
        self.tasks[task.id] = task
        if task.status is TaskStatus.PAUSED:  # paused before the scheduler started
            task.pending_deadline = deadline  # where resume_task(delay=0) puts it
            self._record(task, Event.TASK_ADDED, new=True)
        elif first_wall is not None:
            self.timer.schedule_wall(task, first_wall)
            self._record(task, Event.TASK_ADDED, new=True)
        elif first_delay > 0:
            self.timer.schedule(task, deadline)
            self._record(task, Event.TASK_ADDED, new=True)
        else:  # due now: skip the timer
            task.deadline = deadline
            self._record(task, Event.TASK_ADDED, new=True)
            self._on_due(task, None)

    def _first_fire(self, task: TaskState) -> datetime | None:
        """The first fire of *task*'s wall-clock trigger, by this scheduler's wall clock.

        (The request was checked against the system clock; a test clock may
        tell another time.) ``None``, for a trigger that has no fire left or
        fails now, means the task runs once, at once.
        """
        try:
            fire, _ = next_wall_fire(task, self.wall_now())
        except Exception:
            self.logger.exception("quiv: the trigger of task %r failed", task.task_name)
            return None
        return fire

    def _next_wall_run(self, task: TaskState, skipped: bool = False) -> None:
        """Arm *task*'s next wall-clock run (or end the task if its trigger has none).

        :param skipped: a run was skipped just before (for ``misfire_grace``): say so
        """
        try:
            fire, missed = next_wall_fire(task, self.wall_now())
            skipped = skipped or missed
        except Exception:  # a trigger's fault: its schedule ends, and says so
            self.logger.exception(
                "quiv: the trigger of task %r (%s) failed; it has no next run",
                task.task_name,
                task.id,
            )
            fire = None
        if fire is not None:
            self.timer.schedule_wall(task, fire)
        if skipped:
            self._record(task, Event.TASK_RUN_SKIPPED)
        if fire is None:
            self._end_schedule(task)

    def _redeclare(self, task: TaskState, declared: TaskState, first_delay: float) -> None:
        """Give *task* the settings of *declared*, a new declaration of its key.

        Its schedule starts afresh only if it changed (another interval, or
        another trigger); the same declaration again keeps the armed run.
        """
        changed = (task.interval, repr(task.trigger)) != (
            declared.interval,
            repr(declared.trigger),
        )
        task.apply(declared.settings())
        task.func, task.handler = declared.func, declared.handler
        if changed:
            task.set_trigger(declared.trigger)
            if task.run is None and task.status is TaskStatus.ACTIVE:
                if task.trigger is not None:
                    self._next_wall_run(task)
                else:
                    self.timer.schedule(task, self.clock.now() + first_delay)
        self._record(task, Event.TASK_UPDATED)

    def _end_schedule(self, task: TaskState) -> None:
        """Remove a task whose trigger has no more fires, outside a job's end."""
        self.timer.unschedule(task)
        task.removed = task.finished = True
        self.tasks.pop(task.id, None)
        self.host.forget(task.id)
        for waiter in self._task_waiters.pop(task.id, []):
            waiter.set_exception(TaskNotFoundError(task.id))
        self._record(task, Event.TASK_REMOVED, deleted=True)

    def update_task(self, task: TaskState, update: TaskUpdate) -> None:
        """Apply a validated ``update_task`` request to *task*."""
        task.apply(update.settings)
        if update.trigger is not UNSET:  # a new schedule: a wall-clock trigger, or none
            task.set_trigger(update.trigger)
        idle = task.run is None and task.status is not TaskStatus.PAUSED
        now = self.clock.now()
        deadline: float | None = None
        if update.run_at is not None:
            if idle:
                task.anchor = now
                self.timer.schedule_wall(task, update.run_at)
            else:
                delay = (update.run_at - self.wall_now()).total_seconds()
                task.anchor = task.pending_deadline = now + clamp_delay(delay)
        elif task.trigger is not None and update.trigger is not UNSET:
            task.pending_deadline = None
            if idle:
                self._next_wall_run(task)
        elif update.interval_changed:
            assert update.settings.interval is not None
            deadline = now + update.settings.interval
        if deadline is not None:
            task.anchor = deadline
            if not idle:
                task.pending_deadline = deadline
            else:
                self.timer.schedule(task, deadline)
        self._record(task, Event.TASK_UPDATED)

    def remove_task(self, task_id: object) -> None:
        """Remove a task, cancelling its job in flight; its history stays."""
        task = self.find_task(task_id)
        snapshot = task.snapshot()
        task.removed = True
        self.timer.unschedule(task)
        del self.tasks[task.id]
        self.host.forget(task.id)
        try:
            if task.run is not None:
                self.cancel_run(task.run, "task removed", CancelReason.TASK_REMOVED)
            else:
                for waiter in self._task_waiters.pop(task.id, []):
                    waiter.set_exception(TaskNotFoundError(task.id))
        finally:
            self._record(task, Event.TASK_REMOVED, snapshot=snapshot, deleted=True)

    def pause_task(self, task_id: object) -> None:
        """Pause a task; its job in flight runs on, a pending rerun is dropped."""
        task = self.find_task(task_id)
        self.timer.unschedule(task)
        task.status = TaskStatus.PAUSED
        task.rerun_requested = False
        self._record(task, Event.TASK_PAUSED)

    def resume_task(self, task_id: object, delay: object) -> None:
        """Make a task active again, its next run *delay* seconds from now."""
        task = self.find_task(task_id)
        seconds = clamp_delay(queries.check_delay(delay))
        if task.run is not None:
            raise TaskRunningError(f"task {task.id!r} has a job in flight; resume it after")
        deadline = task.pending_deadline
        task.pending_deadline = None
        task.status = TaskStatus.ACTIVE
        if deadline is None and not seconds and task.trigger is not None:
            self._next_wall_run(task)  # fires missed while paused make one run
            if not task.removed:
                self._record(task, Event.TASK_RESUMED)
            return
        if deadline is None or seconds:
            deadline = self.clock.now() + seconds
        task.anchor = deadline
        self.timer.schedule(task, deadline)
        self._record(task, Event.TASK_RESUMED)

    def run_now(self, task_id: object, after_current: object) -> None:
        """Run a task now, or right after its job in flight if *after_current*."""
        task = self.find_task(task_id)
        queries.check_flag(after_current, "after_current")
        if task.status is TaskStatus.PAUSED:
            raise TaskNotActiveError(f"task {task.id!r} is paused; resume it first")
        if task.run is None:
            self._dispatch(task, self.clock.now())
        elif not after_current or task.run_once:
            raise TaskRunningError(f"task {task.id!r} has a job in flight")
        else:
            task.rerun_requested = True
            self._record(task, None)

    def cancel_job(self, job_id: object) -> bool:
        """Cancel a queued or running job; ``False`` if it is not in flight."""
        if not isinstance(job_id, str):
            raise ConfigurationError.bad_value("job_id", job_id, "a job id string")
        run = self.jobs.get(job_id)
        if run is None:  # in host mode, it may run in another process
            return self.host.cancel_elsewhere(job_id)
        return self.cancel_run(run, _BY_CANCEL_JOB)

    def stop_running(self, job_id: str) -> bool:
        """Any thread: set a running job's stop event now; ``True`` if this call did.

        The sync face's ``cancel_job`` calls it in the caller's thread before
        it hands the cancel to the loop, so the handler sees its stop event
        without waiting for the loop to wake (the job's control is
        thread-safe; a dict read is atomic). The loop's :meth:`cancel_job`
        then records the cancel as usual.
        """
        run = self.jobs.get(job_id)
        if run is None or run.done or not run.control.started:
            return False  # (a queued job is cancelled by the loop: it never starts)
        return run.control.cancel(_BY_CANCEL_JOB)

    def _store_task(self, task: TaskState, *, new: bool = False, deleted: bool = False) -> None:
        """Queue *task*'s record (or its deletion), unless the runner keeps it (host mode)."""
        if not self.host.records(task):
            return
        if deleted:
            self.store.delete_task(task.id)
        else:
            self.store.put_task(task, new=new)

    def _record(
        self,
        task: TaskState,
        event: Event | None,
        *,
        snapshot: Task | None = None,
        new: bool = False,
        deleted: bool = False,
    ) -> None:
        """Write *task*'s record (or its deletion) and emit *event* with its snapshot.

        Called once an operation took effect in memory, so it never raises:
        a record or an event that fails is logged, and the operation stands.
        """
        try:
            try:
                self._store_task(task, new=new, deleted=deleted)
            finally:
                if event is not None and self.listeners.wants(event):
                    self.listeners.emit(self.bridge, event, snapshot or task.snapshot())
        except Exception:
            self.logger.exception(
                "quiv: recording %s of task %r (%s) failed",
                "a change" if event is None else event.value,
                task.task_name,
                task.id,
            )

    # -- the queries -----------------------------------------------------------

    def find_task(self, task_id: object) -> TaskState:
        """The live task *task_id*.

        :raises TaskNotFoundError: for an unknown task
        """
        task = self.tasks.get(queries.check_task_id(task_id))
        if task is None:
            raise TaskNotFoundError(task_id)
        return task

    async def get_job(self, job_id: object) -> Job:
        """A job's record from the store (it reflects every change made before)."""
        return await queries.get_job(self.store, job_id)

    async def get_jobs(self, query: JobQuery) -> list[Job]:
        return await self.store.get_jobs(query)

    async def wait_for_job(self, job_id: object, timeout: object) -> Job:
        """Wait until a job ends (at once for a job that already ended)."""
        limit = queries.check_timeout(timeout)
        if not isinstance(job_id, str):
            raise ConfigurationError.bad_value("job_id", job_id, "a job id string")
        run = self.jobs.get(job_id)
        if run is None:
            job = await self.get_job(job_id)
            if not self.host.may_run_elsewhere(job):
                return job
            # host mode: it runs in another process, whose records tell when it ends.
            # The wait is registered before the look, so an end between the two is seen.
            remote, waiters = self.host.wait_elsewhere(job_id)
            if not self.host.elsewhere(job):  # it ended since it was read
                waiters.remove(remote)
                return await self.get_job(job_id)
            return await queries.wait(remote, limit, waiters)
        waiter: Future[Job] = Future()
        run.waiters.append(waiter)
        return await queries.wait(waiter, limit, run.waiters)

    async def wait_for_task(self, task_id: object, timeout: object) -> Job:
        """Wait for the next job of a task to end, or return a finished run-once task's."""
        if isinstance(task_id, str) and task_id not in self.tasks:
            finished = self._finished_once.get(task_id, self.clock.now())
            if finished is not None:  # a run-once task that already ran
                queries.check_timeout(timeout)
                return finished
        task = self.find_task(task_id)
        limit = queries.check_timeout(timeout)
        waiter: Future[Job] = Future()
        waiters = self._task_waiters.setdefault(task.id, [])
        waiters.append(waiter)
        try:
            return await queries.wait(waiter, limit, waiters)
        finally:
            if not waiters and self._task_waiters.get(task.id) is waiters:
                del self._task_waiters[task.id]  # the last waiter gave up

    def waiting_tasks(self) -> int:
        """How many tasks have a ``wait_for_task`` caller waiting."""
        return len(self._task_waiters)

    # -- dispatch --------------------------------------------------------------

    def _on_due(self, task: TaskState, wall_due: datetime | None) -> None:
        """The timer's call: *task* is due (for the wall-clock time *wall_due*, if armed so)."""
        host = self.host
        if host.hold(task):  # a standby: the runner runs it
            return
        if host.needs_claim(task) and self._task_group is not None:
            host.start_claim(self._task_group, task, wall_due)
            return
        self._run_due(task, wall_due)

    def _run_due(self, task: TaskState, wall_due: datetime | None) -> None:
        """Run *task*, due now (for *wall_due*), unless its fire is too late (``misfire_grace``)."""
        if wall_due is not None and task.trigger is not None:
            wall_now = self.wall_now()
            # This run uses up its fire, and any missed since (a late run is the
            # one catch-up run for all of them), whether it runs or is skipped.
            use_fire(task, wall_due, wall_now)
            grace = task.misfire_grace
            if grace is not None and (wall_now - wall_due).total_seconds() > grace:
                task.count_skipped_run()  # too late (the host slept, the clock jumped)
                self._next_wall_run(task, skipped=True)
                return
        due = task.deadline if task.deadline is not None else self.clock.now()
        self._dispatch(task, due)

    def _dispatch(self, task: TaskState, due: float) -> None:
        """Create a job for *task* now and queue it for a pool slot."""
        if task.removed or task.run is not None or task.status is TaskStatus.PAUSED:
            return
        self.timer.unschedule(task)
        control = JobControl(self.bridge, self._notify_progress, self.clock)
        # a run-once task keeps the id it showed since add_task while its job runs
        job_id = task.next_job_id or new_id()
        task.last_job_id = job_id
        ctx = JobContext(
            job_id=job_id,
            task_id=task.id,
            task_name=task.task_name,
            attempt=task.retry_attempt + 1,
            control=control,
            progress_callback=task.progress_callback,
        )
        run = JobRun(task, due, ctx, control)
        ahead = due - self.clock.now()
        if ahead > 0:  # woken early by the lead: the worker waits out the rest
            run.start_at = time.monotonic() + ahead
        task.run = run
        task.status = TaskStatus.RUNNING
        task.deadline = None
        self.jobs[run.id] = run
        try:
            self.store.put_job(run)
            self._store_task(task)
        except Exception:  # a record lost must not lose the job: it is queued below
            self.logger.exception(
                "quiv: recording job %s of task %r failed", run.id, task.task_name
            )
        finally:
            self.pool.submit(run)

    def _on_timeout(self, run: JobRun) -> None:
        self.cancel_run(run, f"timed out after {run.timeout:g} s", CancelReason.TIMED_OUT)

    def _on_reports(self, reports: list[tuple[JobRun | str, Outcome | None]]) -> None:
        """The pool's notices, in order: ``(job, None)`` started, ``(job, outcome)``
        ended, ``(job id, PROGRESS)`` its progress changed."""
        for run, outcome in reports:
            if isinstance(run, str):
                self._on_progress(run)
                continue
            if outcome is not None:
                self._finish(run, outcome)  # never raises
                continue
            try:
                self._on_started(run)
            except Exception:  # a record or event lost must not lose the other reports
                self.logger.exception("quiv: recording the start of job %s failed", run.id)
        for hook in self.report_hooks:
            hook()

    def _on_started(self, run: JobRun) -> None:
        if run.done:
            return
        run.status = JobStatus.RUNNING
        run.started_at = run.control.started_at
        self.running += 1
        timeout = run.task.timeout
        if timeout is not None:
            self.timer.arm_timeout(run, timeout)
        try:
            self.store.put_job(run)
        finally:
            if self.listeners.wants(Event.JOB_STARTED):
                self.listeners.emit(
                    self.bridge, Event.JOB_STARTED, run.task.snapshot(), run.snapshot()
                )

    def _on_progress(self, job_id: str) -> None:
        """Write the record of a job whose progress changed (the store batches it)."""
        run = self.jobs.get(job_id)
        if run is None or run.done:
            return
        try:  # (the record clears the job's pending notice when it reads the payload)
            self.store.put_job(run)
        except Exception:  # a lost progress record must not lose the other notices
            self.logger.exception("quiv: recording the progress of job %s failed", run.id)
        if self.listeners.wants(Event.JOB_PROGRESS):
            self.listeners.emit(
                self.bridge, Event.JOB_PROGRESS, run.task.snapshot(), run.snapshot()
            )

    def cancel_run(
        self, run: JobRun, reason: str, kind: CancelReason = CancelReason.CANCELLED
    ) -> bool:
        """Request cancellation of *run*; return ``False`` if it already ended.

        :param reason: the job's ``error_message``; *kind* its ``cancel_reason``
        """
        if run.done:
            return False
        if run.cancel_reason is None:
            run.cancel_reason = kind
        run.control.cancel(reason)
        if not run.control.started:  # still queued: its handler will never be called
            self._finish(run, None)
        return True

    # -- the end of a job ------------------------------------------------------

    def _finish(self, run: JobRun, outcome: Outcome | None) -> None:
        """Record how *run* ended, update its task, notify listeners and waiters.

        Never raises. Whatever fails on the way (a record write, an event) is
        logged, and the rest still happens: the job gets its final state, its
        task is scheduled again or removed as its settings say, and its
        waiters are woken.
        """
        if run.done:
            return
        try:
            job = self._seal(run, outcome)
            retrying = False
            try:
                retrying = self._after_job(run.task, job.status)
            finally:
                try:
                    self._report_end(run, job, outcome, retrying)
                finally:
                    self._wake_waiters(run, job)
        except Exception:
            self.logger.exception(
                "quiv: recording the end of job %s of task %r failed",
                run.id,
                run.task.task_name,
            )

    def _seal(self, run: JobRun, outcome: Outcome | None) -> Job:
        """Give *run* its final state (in memory only: nothing here calls out)."""
        run.done = True
        if run.status is JobStatus.RUNNING:
            self.running -= 1
        if run.timeout_entry is not None:
            run.timeout_entry.cancel()
        settle(
            run,
            outcome,
            stopping=self.stopping,
            max_result_bytes=self.max_result_bytes,
            persistent=self.persistent,
            logger=self.logger,
        )
        job = run.final = run.snapshot()
        self.jobs.pop(run.id, None)
        return job

    def _after_job(self, task: TaskState, status: JobStatus) -> bool:
        """Schedule *task* again (or remove it) after its job ended, in memory only.

        Return True if a retry was scheduled. :meth:`_report_end` writes the record.
        """
        task.run = None
        if task.removed:
            return False
        skipped = False
        try:
            deadline, retrying, skipped = next_deadline(
                task, status, self.clock.now(), self.wall_now
            )
        except Exception:  # a trigger's fault: its schedule ends, and says so
            self.logger.exception(
                "quiv: the trigger of task %r (%s) failed; it has no next run",
                task.task_name,
                task.id,
            )
            deadline, retrying = None, False
        if deadline is None:  # a run-once task that is done
            task.removed = task.finished = True
            task.status = TaskStatus.ACTIVE
            task.deadline = None
            self.tasks.pop(task.id, None)
            return False
        if task.run_once:  # a retry, or a rerun: a new job, with its id known from now on
            task.next_job_id = new_id()
        if task.status is TaskStatus.PAUSED:
            task.deadline = task.pending_deadline = None
        else:
            task.status = TaskStatus.ACTIVE
            if isinstance(deadline, datetime):
                self.timer.schedule_wall(task, deadline)
            else:
                self.timer.schedule(task, deadline)
        if skipped and self.listeners.wants(Event.TASK_RUN_SKIPPED):
            self.listeners.emit(self.bridge, Event.TASK_RUN_SKIPPED, task.snapshot())
        return retrying

    def wall_now(self) -> datetime:
        """The wall-clock time of this scheduler's clock, aware UTC."""
        return datetime.fromtimestamp(self.clock.wall_time(), timezone.utc)

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
                task = run.task
                try:
                    # (a task removed by the user is deleted already)
                    if task.finished or not task.removed:
                        self._store_task(task, deleted=task.finished)
                finally:
                    self.store.put_job(job)
            finally:
                status_event = _JOB_EVENTS[job.status]
                wanted = [status_event, Event.JOB_RETRYING] if retrying else [status_event]
                if any(self.listeners.wants(e) for e in wanted):
                    task_snapshot = run.task.snapshot()
                    for e in wanted:
                        self.listeners.emit(self.bridge, e, task_snapshot, job)

    def _wake_waiters(self, run: JobRun, job: Job) -> None:
        """Hand *job* to its waiters and its task's; note when the engine is idle."""
        task_waiters = self._task_waiters.pop(run.task.id, [])
        for waiter in [*run.waiters, *task_waiters]:
            if self.stopping:
                waiter.set_exception(SchedulerStoppedError("the scheduler was shut down"))
            else:
                waiter.set_result(job)
        if not self.jobs and self._idle is not None:
            self._idle.set()
        if run.task.finished:
            self._finished_once.remember(run.task.id, job, self.clock.now())

    # -- shutdown --------------------------------------------------------------

    async def shutdown(self, timeout: float | None) -> list[Job]:
        """Cancel every job and wait up to *timeout* for them; abandon the rest.

        Every waiter gets :class:`~quiv.SchedulerStoppedError`. Return the
        records of the abandoned jobs.
        """
        self.stopping = True
        # A running job's cancel frees its worker, which must not start a queued
        # job that this loop has not cancelled yet.
        self.pool.close()
        self.timer.stop()
        stuck: list[JobRun] = []
        try:
            for run in list(self.jobs.values()):
                self.cancel_run(run, SHUTDOWN_REASON, CancelReason.SHUTDOWN)
            wait = math.inf if timeout is None else timeout
            with anyio.move_on_after(wait, shield=True):
                while self.jobs:
                    self._idle = anyio.Event()
                    await self._idle.wait()
                self._idle = None
        finally:
            stuck = list(self.jobs.values())
            self.pool.abandon()
            for run in stuck:
                self._finish(run, None)
            stopped = SchedulerStoppedError("the scheduler was shut down")
            waiters, self._task_waiters = self._task_waiters, {}
            for task_waiters in waiters.values():
                for waiter in task_waiters:
                    waiter.set_exception(stopped)
            self.host.stop_waits()
        return [run.final for run in stuck if run.final is not None]

    async def stats(self, *, loop_alive: bool) -> QuivStats:
        """A snapshot of the scheduler's state."""
        # Count the history first: the await lets jobs start and end, and the
        # in-memory figures must all come from one moment, after it.
        history = await self.store.count_jobs()
        link = self.host.link
        return queries.stats_snapshot(
            self.tasks,
            active_jobs=len(self.jobs),
            running=self.running,
            pool_size=self.pool_size,
            job_history_count=history,
            loop_alive=loop_alive,
            elsewhere=None if link is None else link.elsewhere(),
        )
