"""AsyncQuiv: the scheduler's async face and its lifecycle."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from datetime import datetime, tzinfo
from os import PathLike
from types import TracebackType
from typing import Any

import anyio
import sniffio
from anyio.from_thread import BlockingPortal
from anyio.lowlevel import current_token

from . import _main
from ._bridge import MainLoopBridge
from ._clock import Clock, LoopClock
from ._config import UNSET, Unset, build_config
from ._errors import (
    ConfigurationError,
    JobNotFoundError,
    SchedulerStoppedError,
    TaskNotActiveError,
    TaskNotFoundError,
    TaskRunningError,
)
from ._events import Event, Listeners
from ._loop_thread import _unwrap
from ._models import Job, JobStatus, QuivConfig, QuivStats, Task, TaskStatus
from ._requests import TaskUpdate, new_task, validate_update
from ._state import TaskState, Waiter
from ._store._base import JobQuery, Store
from ._triggers import clamp_delay
from ._typing import Logger
from ._validation import check_bool, check_int, check_number, resolve_timezone

__all__ = ("AsyncQuiv",)


_ORDER_BY = ("started_at", "ended_at", "scheduled_at")
#: how long shutdown waits for queued events at most, and at least past its timeout
_FLUSH_MAX = 5.0
_FLUSH_MIN = 0.25


class AsyncQuiv:
    """The scheduler, for async code on asyncio or trio.

    Use it as an async context manager; the scheduler lives in the block::

        async with AsyncQuiv() as scheduler:
            task_id = await scheduler.add_task("report", build_report, interval=60)
            ...

    Leaving the block (or the host cancelling it) stops the timer, cancels
    running jobs, waits for them up to ``shutdown_timeout`` and records every
    job's final state. Methods must be called from the loop that runs the
    block; other threads use :attr:`portal` (or the sync face, :class:`~quiv.Quiv`).

    :param config: all settings at once (exclusive with the keyword settings)
    :param pool_size: how many handlers may run at once (default 10)
    :param history_retention_seconds: finished jobs older than this are pruned
        (default one day)
    :param timezone: for display only; returned datetimes are UTC (default ``"UTC"``)
    :param logger: where quiv logs (default ``logging.getLogger("quiv")``)
    :param db_path: ``None`` for a private temporary SQLite file deleted at shutdown,
        or a path to keep job history across restarts
    :param worker_backend: event loop for async handlers' worker loops
        (``"asyncio"`` or ``"trio"``; default: the host's)
    :param clock: the monotonic clock for deadlines (tests inject a fake one)
    :param shutdown_timeout: how long leaving the block waits for running jobs
        before abandoning them (default: no limit)
    :raises ConfigurationError: for an invalid or conflicting setting
    """

    def __init__(
        self,
        config: QuivConfig | None = None,
        pool_size: int | Unset = UNSET,
        history_retention_seconds: float | Unset = UNSET,
        timezone: str | tzinfo | Unset = UNSET,
        *,
        logger: Logger | None | Unset = UNSET,
        db_path: str | PathLike[str] | None | Unset = UNSET,
        worker_backend: str | None | Unset = UNSET,
        clock: Clock | None | Unset = UNSET,
        shutdown_timeout: float | None | Unset = UNSET,
    ) -> None:
        self._config = build_config(
            config,
            {
                "pool_size": pool_size,
                "history_retention_seconds": history_retention_seconds,
                "timezone": timezone,
                "logger": logger,
                "db_path": db_path,
                "worker_backend": worker_backend,
                "clock": clock,
                "shutdown_timeout": shutdown_timeout,
            },
        )
        self._timezone = resolve_timezone(self._config.timezone)
        self._logger: Logger = self._config.logger or logging.getLogger("quiv")
        self._listeners = Listeners()
        self._state = "new"
        self._engine: Any = None
        self._store: Store | None = None
        self._bridge: MainLoopBridge | None = None
        self._own_bridge = True
        self._portal: BlockingPortal | None = None
        self._exit_stack: AsyncExitStack | None = None
        self._calls = 0
        #: set when a shutdown in progress has finished (scheduler loop only)
        self._shutdown_done: anyio.Event | None = None

    def __repr__(self) -> str:
        return f"<AsyncQuiv {self._state} pool_size={self._config.pool_size}>"

    # -- lifecycle -------------------------------------------------------------

    @property
    def config(self) -> QuivConfig:
        """The settings this scheduler runs with."""
        return self._config

    @property
    def timezone(self) -> tzinfo:
        """The display time zone."""
        return self._timezone

    @property
    def is_running(self) -> bool:
        """``True`` between entering the block and shutdown."""
        return self._state == "running"

    @property
    def portal(self) -> BlockingPortal:
        """A portal into the scheduler's loop, for code running in other threads.

        :raises SchedulerStoppedError: if the scheduler is not running
        """
        if self._portal is None or self._state != "running":
            raise SchedulerStoppedError("the scheduler is not running")
        return self._portal

    def _use_main_loop(self, bridge: MainLoopBridge) -> None:
        """Deliver callbacks through *bridge* (another loop's) instead of this loop."""
        self._bridge = bridge
        self._own_bridge = False

    async def __aenter__(self) -> AsyncQuiv:
        if self._state != "new":
            raise SchedulerStoppedError(
                "an AsyncQuiv runs once; create a new instance to start again"
            )
        self._state = "starting"
        from ._engine import Engine

        try:
            async with AsyncExitStack() as stack:
                task_group = await stack.enter_async_context(anyio.create_task_group())
                stack.callback(task_group.cancel_scope.cancel)
                self._store = _make_store(self._config, self._logger)
                await self._store.start(task_group)
                if self._bridge is None:
                    self._bridge = MainLoopBridge(
                        current_token(), threading.get_ident(), self._logger
                    )
                if self._own_bridge:
                    await task_group.start(self._bridge.run)
                engine = Engine(
                    pool_size=self._config.pool_size,
                    clock=self._config.clock or LoopClock(),
                    store=self._store,
                    listeners=self._listeners,
                    logger=self._logger,
                )
                engine.bridge = self._bridge
                engine.history_retention = float(self._config.history_retention_seconds)
                backend = self._config.worker_backend or sniffio.current_async_library()
                await engine.start(task_group, backend)
                self._engine = engine
                self._portal = await stack.enter_async_context(BlockingPortal())
                stack.push_async_callback(self.shutdown)
                self._exit_stack = stack.pop_all()
        except BaseException as exc:
            self._state = "stopped"
            error = _unwrap(exc)  # a start failure comes wrapped by the task group
            if error is exc:
                raise
            raise error from error.__cause__
        self._state = "running"
        _main.register(self._bridge)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        stack, self._exit_stack = self._exit_stack, None
        if stack is not None:
            # The block's own exception propagates by itself; passing it into
            # the internal task groups would wrap it in an exception group.
            await stack.aclose()
        return None

    async def shutdown(self, timeout: float | None | Unset = UNSET) -> None:
        """Stop the scheduler now; the ``async with`` block's exit does this too.

        Cancels every job (stop events set, async handlers cancelled), waits up
        to *timeout* seconds (default: the ``shutdown_timeout`` setting) for them
        to end, records the ones still running as cancelled ("abandoned at
        shutdown") and names them in one warning. Pending waiters get
        :class:`~quiv.SchedulerStoppedError`. A second call does nothing.

        :param timeout: seconds to wait for running jobs; ``None`` waits for them all
        """
        if timeout is UNSET:
            timeout = self._config.shutdown_timeout
        elif timeout is not None:
            timeout = check_number(timeout, "timeout", allow_inf=True)
        await self._shutdown(timeout, flush_events=True)

    async def _shutdown(self, timeout: float | None, *, flush_events: bool) -> None:
        if self._state in ("stopping", "stopped", "new"):
            if self._state == "new":
                self._state = "stopped"
            elif self._state == "stopping" and self._shutdown_done is not None:
                await self._shutdown_done.wait()  # another caller is shutting it down
            return
        self._state = "stopping"
        self._shutdown_done = done = anyio.Event()
        engine, bridge, store = self._engine, self._bridge, self._store
        assert bridge is not None and store is not None
        begin = anyio.current_time()
        _main.unregister(bridge)
        with anyio.CancelScope(shield=True):
            try:
                abandoned = await engine.shutdown(timeout)
                if abandoned:
                    names = ", ".join(f"{job.task_name!r} (job {job.id})" for job in abandoned)
                    self._logger.warning(
                        "quiv: shutdown abandoned %d job(s) still running after %s s: %s",
                        len(abandoned),
                        timeout,
                        names,
                    )
                stopped = SchedulerStoppedError("the scheduler was shut down")
                for waiters in engine.task_waiters.values():
                    for waiter in waiters:
                        waiter.fail(stopped)
                engine.task_waiters.clear()
                if flush_events and not bridge.closed:
                    # deliver the events of the jobs that just ended, but let no
                    # hung listener stretch the shutdown much past its timeout
                    budget = _FLUSH_MAX
                    if timeout is not None:
                        left = begin + timeout - anyio.current_time()
                        budget = min(budget, max(left, _FLUSH_MIN))
                    with anyio.move_on_after(budget):
                        await _main.wait_call(bridge.call(lambda: None, (), {}))
                pending = bridge.pending
                if pending and self._own_bridge:
                    self._logger.warning(
                        "quiv: %d main-loop call(s) still pending at shutdown are cancelled",
                        pending,
                    )
                bridge.stop()
                await store.aclose()
            finally:
                self._state = "stopped"
                done.set()

    async def _checkpoint(self) -> None:
        """Yield to the loop every few calls.

        The mutating methods never block, so they need no checkpoint; but a
        tight loop of ``await add_task(...)`` must not starve every other task
        either. Yielding (and checking for cancellation) on every call would
        halve the rate of such a loop, so every 32nd call does it.
        """
        self._calls += 1
        if not self._calls % 32:
            await anyio.lowlevel.checkpoint()

    def _check_running(self) -> Any:
        if self._state != "running":
            if self._state == "new":
                raise SchedulerStoppedError(
                    "the scheduler is not running; use it as `async with AsyncQuiv() as s:`"
                )
            raise SchedulerStoppedError("the scheduler was shut down")
        return self._engine

    def _task(self, task_id: object) -> TaskState:
        engine = self._check_running()
        if not isinstance(task_id, str):
            raise ConfigurationError.bad_value("task_id", task_id, "a task id string")
        task: TaskState | None = engine.tasks.get(task_id)
        if task is None:
            raise TaskNotFoundError(task_id)
        return task

    # -- tasks -------------------------------------------------------------------

    async def add_task(
        self,
        task_name: str,
        func: Callable[..., Any],
        interval: float | None = None,
        delay: float | None = None,
        run_once: bool = False,
        fixed_interval: bool = True,
        args: tuple[Any, ...] = (),
        kwargs: Mapping[str, Any] | None = None,
        progress_callback: Callable[..., Any] | None = None,
        *,
        run_at: datetime | None = None,
        timeout: float | None = None,
        max_retries: int = 0,
        retry_backoff: float = 30.0,
        jitter: float = 0.0,
    ) -> str:
        """Add a task and return its id (a UUID string).

        :param task_name: a label (names need not be unique)
        :param func: the handler, sync or async; it receives *args*, *kwargs* and
            any of ``_job_id``, ``_stop_event``, ``_progress_hook`` it declares
        :param interval: seconds between runs of a recurring task (> 0)
        :param delay: seconds before the first run (default: run at once)
        :param run_once: run a single time, then remove the task
        :param fixed_interval: keep a fixed grid from the first run (missed slots
            are skipped); ``False`` waits *interval* after each run ends
        :param progress_callback: called on the main loop with each
            ``_progress_hook(**payload)``
        :param run_at: when to run first (naive means UTC; a past time runs at once)
        :param timeout: cancel a job that runs longer than this many seconds
        :param max_retries: retries of a failed (never a cancelled) job
        :param retry_backoff: delay before retry *n* is ``retry_backoff * 2**(n-1)``
        :param jitter: add uniform(0, *jitter*) seconds to each recurring next run
        :raises ConfigurationError: for an invalid or conflicting parameter
        :raises HandlerRegistrationError: if *func* or *progress_callback* is not callable
        """
        self._check_running()
        task, first_delay = new_task(
            task_name=task_name,
            func=func,
            interval=interval,
            delay=delay,
            run_once=run_once,
            fixed_interval=fixed_interval,
            args=args,
            kwargs=kwargs,
            progress_callback=progress_callback,
            run_at=run_at,
            timeout=timeout,
            max_retries=max_retries,
            retry_backoff=retry_backoff,
            jitter=jitter,
        )
        self._register_task(task, first_delay)
        await self._checkpoint()
        return task.id

    def _register_task(
        self, task: TaskState, first_delay: float, requested_at: float | None = None
    ) -> None:
        """Add a prepared task to the engine (scheduler loop; never blocks).

        :param requested_at: ``time.monotonic()`` when another thread asked for
            it; the time the request took to arrive counts against the delay
        """
        engine = self._check_running()
        if requested_at is not None and isinstance(engine.clock, LoopClock):
            first_delay = max(0.0, first_delay - (time.monotonic() - requested_at))
        deadline = engine.clock.now() + first_delay
        task.anchor = deadline
        engine.tasks[task.id] = task
        task.wall = engine.wall
        task.deadline = deadline
        self._emit(Event.TASK_ADDED, task)
        if first_delay > 0:
            engine.schedule(task, deadline)
            engine.store.put_task(task)
        else:  # due now: skip the timer
            engine.dispatch(task, deadline)

    async def update_task(
        self,
        task_id: str,
        *,
        task_name: str | Unset = UNSET,
        interval: float | Unset = UNSET,
        fixed_interval: bool | Unset = UNSET,
        args: tuple[Any, ...] | Unset = UNSET,
        kwargs: Mapping[str, Any] | None | Unset = UNSET,
        timeout: float | None | Unset = UNSET,
        max_retries: int | Unset = UNSET,
        retry_backoff: float | Unset = UNSET,
        jitter: float | Unset = UNSET,
        progress_callback: Callable[..., Any] | None | Unset = UNSET,
        run_at: datetime | Unset = UNSET,
    ) -> Task:
        """Change some settings of a task in place (its id is kept); return the task.

        Only the settings passed change. ``interval`` also reschedules the next
        run one interval from now; ``run_at`` moves the next run (exclusive with
        ``interval``). ``timeout=None`` and ``progress_callback=None`` clear those.
        On a task with a job in flight, changes apply from the next run.

        :raises TaskNotFoundError: for an unknown task
        :raises ConfigurationError: for an invalid value (nothing is changed)
        """
        task = self._task(task_id)
        engine = self._engine
        update: TaskUpdate = validate_update(
            task.settings(),
            task.handler,
            task_name=task_name,
            interval=interval,
            fixed_interval=fixed_interval,
            args=args,
            kwargs=kwargs,
            timeout=timeout,
            max_retries=max_retries,
            retry_backoff=retry_backoff,
            jitter=jitter,
            progress_callback=progress_callback,
            run_at=run_at,
        )
        task.apply(update.settings)
        now = engine.clock.now()
        deadline: float | None = None
        if update.interval_changed:
            deadline = now + update.settings.interval
        elif update.run_at_delay is not None:
            deadline = now + update.run_at_delay
        if deadline is not None:
            task.anchor = deadline
            if task.run is not None:
                task.pending_deadline = deadline
            elif task.status is TaskStatus.PAUSED:
                task.pending_deadline = deadline
            else:
                engine.schedule(task, deadline)
        engine.store.put_task(task)
        self._emit(Event.TASK_UPDATED, task)
        await self._checkpoint()
        return task.snapshot()

    async def remove_task(self, task_id: str) -> None:
        """Remove a task. A job in flight is cancelled ("task removed"); history stays.

        :raises TaskNotFoundError: for an unknown task
        """
        task = self._task(task_id)
        engine = self._engine
        snapshot = task.snapshot()
        task.removed = True
        engine.unschedule(task)
        del engine.tasks[task.id]
        engine.store.delete_task(task.id)
        if task.run is not None:
            engine.cancel_run(task.run, "task removed")
        else:
            for waiter in engine.task_waiters.pop(task.id, []):
                waiter.fail(TaskNotFoundError(task.id))
        self._emit(Event.TASK_REMOVED, snapshot)
        await self._checkpoint()

    async def pause_task(self, task_id: str) -> None:
        """Pause a task: no new job starts until :meth:`resume_task`.

        A job in flight runs to its end. Clears a pending ``after_current`` rerun.

        :raises TaskNotFoundError: for an unknown task
        """
        task = self._task(task_id)
        engine = self._engine
        engine.unschedule(task)
        task.status = TaskStatus.PAUSED
        task.rerun_requested = False
        engine.store.put_task(task)
        self._emit(Event.TASK_PAUSED, task)
        await self._checkpoint()

    async def resume_task(self, task_id: str, delay: float = 0) -> None:
        """Make a task active again; its next run is *delay* seconds from now.

        On an active task this reschedules its next run.

        :raises TaskNotFoundError: for an unknown task
        :raises TaskRunningError: if one of its jobs is in flight
        :raises ConfigurationError: for a negative or non-finite *delay*
        """
        task = self._task(task_id)
        seconds = clamp_delay(check_number(delay, "delay"))
        if task.run is not None:
            raise TaskRunningError(f"task {task.id!r} has a job in flight; resume it after")
        engine = self._engine
        deadline = task.pending_deadline
        task.pending_deadline = None
        if deadline is None or seconds:
            deadline = engine.clock.now() + seconds
        task.anchor = deadline
        engine.schedule(task, deadline)
        engine.store.put_task(task)
        self._emit(Event.TASK_RESUMED, task)
        await self._checkpoint()

    async def run_task_immediately(self, task_id: str, *, after_current: bool = False) -> None:
        """Run a task now, outside its schedule.

        :param after_current: if a job is in flight, run again as soon as it
            ends (recurring tasks only) instead of raising
        :raises TaskNotFoundError: for an unknown task
        :raises TaskNotActiveError: if the task is paused
        :raises TaskRunningError: if a job is in flight (and *after_current* is not
            set, or the task runs once)
        """
        task = self._task(task_id)
        check_bool(after_current, "after_current")
        if task.status is TaskStatus.PAUSED:
            raise TaskNotActiveError(f"task {task.id!r} is paused; resume it first")
        if task.run is not None:
            if not after_current or task.run_once:
                raise TaskRunningError(f"task {task.id!r} has a job in flight")
            task.rerun_requested = True
            self._engine.store.put_task(task)
        else:
            self._engine.dispatch(task, self._engine.clock.now())
        await self._checkpoint()

    async def get_task(self, task_id: str) -> Task:
        """Return a task.

        :raises TaskNotFoundError: for an unknown (removed, finished run-once) task
        """
        task = self._task(task_id)
        await self._checkpoint()
        return task.snapshot()

    async def get_all_tasks(
        self,
        include_run_once: bool = False,
        status: TaskStatus | str | None = None,
        limit: int | None = None,
        offset: int = 0,
        task_name: str | None = None,
    ) -> list[Task]:
        """Return tasks ordered by next run (tasks without one last).

        :param include_run_once: include run-once tasks (hidden by default)
        :param status: only tasks with this status
        :param task_name: only tasks with exactly this name
        """
        engine = self._check_running()
        check_bool(include_run_once, "include_run_once")
        wanted = None if status is None else _enum_value(TaskStatus, status, "status")
        if task_name is not None and not isinstance(task_name, str):
            raise ConfigurationError.bad_value("task_name", task_name, "a str or None")
        start, stop = _page(limit, offset)
        tasks = [
            task
            for task in engine.tasks.values()
            if (include_run_once or not task.run_once)
            and (wanted is None or task.status is wanted)
            and (task_name is None or task.task_name == task_name)
        ]
        tasks.sort(key=lambda t: (t.deadline is None, t.deadline or 0.0))
        await self._checkpoint()
        return [task.snapshot() for task in tasks[start:stop]]

    # -- jobs --------------------------------------------------------------------

    def cancel_job(self, job_id: str) -> bool:
        """Cancel a queued or running job; return ``False`` if it is not in flight.

        A queued job never calls its handler. A running one sees its stop event
        set; an async handler is also cancelled at its next ``await``. The job
        ends ``cancelled``.
        """
        engine = self._check_running()
        if not isinstance(job_id, str):
            raise ConfigurationError.bad_value("job_id", job_id, "a job id string")
        run = engine.jobs.get(job_id)
        if run is None:
            return False
        engine.cancel_run(run, "cancelled by cancel_job()")
        return True

    async def get_job(self, job_id: str) -> Job:
        """Return a job's record (it reflects every change made before the call).

        :raises JobNotFoundError: for an unknown or pruned job
        :raises StoreError: if the store cannot answer
        """
        engine = self._check_running()
        if not isinstance(job_id, str):
            raise ConfigurationError.bad_value("job_id", job_id, "a job id string")
        job: Job | None = await engine.store.get_job(job_id)
        if job is None:
            raise JobNotFoundError(job_id)
        return job

    async def get_all_jobs(
        self,
        status: JobStatus | str | None = None,
        task_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        order_by: str = "started_at",
        descending: bool = True,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Job]:
        """Return job records, newest first by default.

        :param status: only jobs with this status
        :param task_id: only jobs of this task (removed tasks included)
        :param since: only jobs started at or after this time (naive = UTC)
        :param until: only jobs started before this time (naive = UTC)
        :param order_by: ``"started_at"``, ``"ended_at"`` or ``"scheduled_at"``
        :raises ConfigurationError: for an invalid filter
        :raises StoreError: if the store cannot answer
        """
        from ._validation import check_datetime

        engine = self._check_running()
        wanted = None if status is None else _enum_value(JobStatus, status, "status")
        if task_id is not None and not isinstance(task_id, str):
            raise ConfigurationError.bad_value("task_id", task_id, "a task id string or None")
        if order_by not in _ORDER_BY:
            raise ConfigurationError.bad_value("order_by", order_by, f"one of {_ORDER_BY}")
        check_bool(descending, "descending")
        query = JobQuery(
            status=wanted,
            task_id=task_id,
            since=None if since is None else check_datetime(since, "since"),
            until=None if until is None else check_datetime(until, "until"),
            order_by=order_by,  # type: ignore[arg-type]
            descending=descending,
            limit=None if limit is None else check_int(limit, "limit"),
            offset=check_int(offset, "offset"),
        )
        jobs: list[Job] = await engine.store.get_jobs(query)
        return jobs

    async def wait_for_job(self, job_id: str, timeout: float | None = None) -> Job:
        """Wait until a job ends; return its final record.

        Returns at once for a job that already ended. When it returns, the
        task's own record already reflects the end of the job.

        :raises JobNotFoundError: for an unknown or pruned job
        :raises TimeoutError: if *timeout* seconds pass first
        :raises SchedulerStoppedError: if the scheduler stops first
        """
        engine = self._check_running()
        limit = _timeout(timeout)
        if not isinstance(job_id, str):
            raise ConfigurationError.bad_value("job_id", job_id, "a job id string")
        run = engine.jobs.get(job_id)
        if run is None:
            return await self.get_job(job_id)
        waiter = Waiter()
        run.waiters.append(waiter)
        return await _wait(waiter, limit, run.waiters)

    async def wait_for_task(self, task_id: str, timeout: float | None = None) -> Job:
        """Wait for the next job of a task to end (the one in flight, if any).

        For a run-once task that has already run, return its last job, so
        "add, then wait" never races the job.

        :raises TaskNotFoundError: for an unknown task, or one removed while idle
        :raises TimeoutError: if *timeout* seconds pass first
        :raises SchedulerStoppedError: if the scheduler stops first
        """
        engine = self._check_running()
        if isinstance(task_id, str) and task_id not in engine.tasks:
            finished: Job | None = engine.finished_job(task_id)
            if finished is not None:  # a run-once task that already ran
                _timeout(timeout)
                return finished
        task = self._task(task_id)
        limit = _timeout(timeout)
        waiter = Waiter()
        waiters = self._engine.task_waiters.setdefault(task.id, [])
        waiters.append(waiter)
        return await _wait(waiter, limit, waiters)

    # -- events and the main loop --------------------------------------------------

    def add_listener(self, event: Event, callback: Callable[..., Any]) -> None:
        """Call *callback* on the main loop for every *event*.

        Task events call ``callback(event, task)``; job events
        ``callback(event, task, job)``. Sync or async; exceptions are logged.

        :raises ConfigurationError: if *event* is not an :class:`~quiv.Event`
        :raises HandlerRegistrationError: if *callback* is not callable
        """
        self._listeners.add(event, callback)

    def remove_listener(self, event: Event, callback: Callable[..., Any]) -> None:
        """Stop calling *callback* for *event* (unknown callbacks are ignored)."""
        self._listeners.remove(event, callback)

    def pending_main_loop_work(self) -> int:
        """How many calls handed to the main loop have not settled yet."""
        return 0 if self._bridge is None else self._bridge.pending

    async def stats(self) -> QuivStats:
        """A snapshot of the scheduler's state.

        :raises StoreError: if the store cannot count the job history
        """
        engine = self._check_running()
        # Count the history first: the await lets jobs start and end, and the
        # in-memory figures below must all come from one moment.
        history: int = await engine.store.count_jobs()
        by_status = dict.fromkeys((s.value for s in TaskStatus), 0)
        next_runs: list[datetime] = []
        for task in engine.tasks.values():
            by_status[task.status.value] += 1
            if task.next_run_at is not None and task.status is TaskStatus.ACTIVE:
                next_runs.append(task.next_run_at)
        return QuivStats(
            active_jobs=len(engine.jobs),
            pool_size=engine.pool_size,
            pool_utilization=min(1.0, engine.running / engine.pool_size),
            tasks_by_status=by_status,
            next_run_at=min(next_runs, default=None),
            job_history_count=history,
            loop_alive=self._state == "running",
        )

    def _emit(self, event: Event, task: TaskState | Task) -> None:
        if not self._listeners.wants(event):
            return
        snapshot = task.snapshot() if isinstance(task, TaskState) else task
        self._listeners.emit(self._bridge, event, snapshot)


def _make_store(config: QuivConfig, logger: Logger) -> Store:
    from ._store import MemoryStore, SQLiteStore

    if config.db_path == ":memory:":
        return MemoryStore(
            history_retention_seconds=config.history_retention_seconds, logger=logger
        )
    return SQLiteStore(
        config.db_path,
        history_retention_seconds=config.history_retention_seconds,
        logger=logger,
    )


def _enum_value(enum: Any, value: object, name: str) -> Any:
    try:
        return enum(value)
    except ValueError:
        choices = ", ".join(repr(member.value) for member in enum)
        raise ConfigurationError.bad_value(name, value, f"one of {choices}") from None


def _page(limit: object, offset: object) -> tuple[int, int | None]:
    start = check_int(offset, "offset")
    if limit is None:
        return start, None
    return start, start + check_int(limit, "limit")


def _timeout(timeout: object) -> float:
    if timeout is None:
        return math.inf
    return check_number(timeout, "timeout", allow_inf=True)


async def _wait(waiter: Waiter, limit: float, registry: list[Waiter]) -> Job:
    try:
        with anyio.fail_after(limit):
            await waiter.event.wait()
    finally:
        if not waiter.event.is_set() and waiter in registry:
            registry.remove(waiter)
    if waiter.error is not None:
        raise waiter.error
    assert waiter.job is not None
    return waiter.job
