"""AsyncQuiv: the scheduler's async face and its lifecycle.

Each method checks its arguments and calls one method of the engine. The
module is longer than most because the public signatures and their
docstrings live here, where the API reference is generated from; the logic
is in :mod:`quiv._core`.

The sync face drives its AsyncQuiv through a few underscore methods
(``_use_main_loop``, ``_register_task``, ``_declared``, ``_discard_declared``,
``_fresh``, ``_shutdown`` and the ``_on_stopping`` hook). They are the
contract between the two faces in this package, not API: a user of
AsyncQuiv never needs them, so they are kept out of its public surface.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from datetime import datetime, tzinfo
from os import PathLike
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio
from anyio.from_thread import BlockingPortal

from .._checks import check_number, resolve_timezone
from .._config import UNSET, Unset, build_config
from .._core import queries as _queries
from .._core.ids import fork_generation
from .._core.preview import as_trigger, check_preview, preview_task, preview_trigger
from .._core.records import TaskState, utcnow
from .._core.task_checks import new_task, validate_update
from .._errors import SchedulerStoppedError, TaskNotFoundError, sole_error
from .._events import Event, Listeners
from .._mainloop import calls as _main
from .._mainloop.bridge import MainLoopBridge
from .._models import Job, JobStatus, QuivConfig, QuivStats, Task, TaskStatus
from .._states import NEW, RUNNING, STARTING, STOPPED, STOPPING
from .._typing import Logger
from ..abc import Clock, Trigger
from .at_exit import forked_message
from .declarations import Declarations
from .lifecycle import bridge_here, start_engine, stop_engine

if TYPE_CHECKING:
    from .._core.engine import Engine

__all__ = ("AsyncQuiv",)

#: how often a coroutine method also yields to the scheduler (see AsyncQuiv._checkpoint)
_YIELD_EVERY = 16


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
    :param timezone: a time zone name or ``tzinfo``, checked now and kept as
        :attr:`timezone`; quiv does not use it yet (every datetime it returns is
        UTC). Wall-clock (cron) schedules will default to it. Default ``"UTC"``
    :param logger: where quiv logs (default ``logging.getLogger("quiv")``)
    :param db_path: ``None`` for a private temporary SQLite file deleted at shutdown,
        or a path to keep job history across restarts (jobs that a process
        which died left in flight are recorded ``cancelled`` at the next start)
    :param worker_backend: event loop for async handlers' worker loops
        (``"asyncio"`` or ``"trio"``; default: the host's)
    :param clock: the monotonic clock for deadlines (tests inject a fake one)
    :param shutdown_timeout: how long leaving the block waits for running jobs
        before abandoning them (default: no limit)
    :param max_result_bytes: the largest result kept on a job, measured as
        JSON (default 65536); a larger one is dropped, marked on the job
        (``result_state="too_large"``) and logged
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
        max_result_bytes: int | Unset = UNSET,
        host_mode: bool | Unset = UNSET,
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
                "max_result_bytes": max_result_bytes,
                "host_mode": host_mode,
            },
        )
        self._timezone = resolve_timezone(self._config.timezone)
        self._logger: Logger = self._config.logger or logging.getLogger("quiv")
        self._listeners = Listeners()
        self._state = NEW
        self._engine: Engine | None = None
        #: the main loop's bridge: the sync face's (see _use_main_loop), or our own
        self._bridge: MainLoopBridge | None = None
        self._own_bridge = True
        self._portal: BlockingPortal | None = None
        self._exit_stack: AsyncExitStack | None = None
        self._calls = 0
        #: tasks declared before the start; ``None`` once started
        self._declarations: Declarations | None = Declarations()
        #: set when a shutdown in progress has finished (scheduler loop only)
        self._shutdown_done: anyio.Event | None = None
        #: called (on the scheduler loop) just before the shutdown starts
        self._on_stopping: Callable[[], None] | None = None
        #: the fork generation and process it started in (a forked child cannot use it)
        self._forks, self._pid = fork_generation(), os.getpid()

    def __repr__(self) -> str:
        return f"<AsyncQuiv {self._state} pool_size={self._config.pool_size}>"

    def _fresh(self) -> AsyncQuiv:
        """A new, unstarted scheduler with this one's settings and listeners
        (``Quiv.start()`` after ``shutdown()``)."""
        fresh = AsyncQuiv(self._config)
        fresh._listeners = self._listeners
        return fresh

    # -- lifecycle -------------------------------------------------------------

    @property
    def config(self) -> QuivConfig:
        """The settings this scheduler runs with."""
        return self._config

    @property
    def timezone(self) -> tzinfo:
        """The ``timezone`` setting, resolved to a :class:`~datetime.tzinfo`.

        quiv does not use it yet: every datetime it returns or logs is UTC, and
        intervals, delays and ``run_at`` do not depend on it. It is kept for your
        own display code; wall-clock (cron) schedules will default to it.
        """
        return self._timezone

    @property
    def is_running(self) -> bool:
        """``True`` between entering the block and shutdown."""
        return self._state is RUNNING

    @property
    def is_runner(self) -> bool:
        """Whether this process runs the recurring schedules (while the scheduler runs).

        Without host mode, that is every running scheduler. In host mode
        (``host_mode=True``), exactly one process of the host is the runner at
        a time; the others take over within about 0.2 s when it ends (see the
        Deployment page).
        """
        engine = self._engine
        return self._state is RUNNING and engine is not None and not engine.host.standby

    @property
    def portal(self) -> BlockingPortal:
        """A portal into the scheduler's loop, for code running in other threads.

        :raises SchedulerStoppedError: if the scheduler is not running
        """
        if self._portal is None or self._state is not RUNNING:
            raise SchedulerStoppedError("the scheduler is not running")
        return self._portal

    def _use_main_loop(self, bridge: MainLoopBridge) -> None:
        """Deliver callbacks through *bridge* (another loop's, which its owner
        runs and stops) instead of this loop; call before the start."""
        self._bridge = bridge
        self._own_bridge = False

    async def __aenter__(self) -> AsyncQuiv:
        if self._state is not NEW:
            raise SchedulerStoppedError(
                "an AsyncQuiv runs once; create a new instance to start again"
            )
        self._state = STARTING
        if self._bridge is None:  # this loop is the main loop
            self._bridge = bridge_here(self._logger)
        bridge = self._bridge
        try:
            async with AsyncExitStack() as stack:
                engine = await start_engine(
                    stack,
                    self._config,
                    self._logger,
                    self._listeners,
                    bridge,
                    own_bridge=self._own_bridge,
                )
                self._engine = engine
                self._portal = await stack.enter_async_context(BlockingPortal())
                stack.push_async_callback(self.shutdown)
                self._exit_stack = stack.pop_all()
            self._register_declared(engine)
        except BaseException as exc:
            self._state = STOPPED
            self._declarations = None
            error = sole_error(exc)  # a start failure comes wrapped by the task group
            if error is exc:
                raise
            raise error from error.__cause__
        self._state = RUNNING
        self._forks, self._pid = fork_generation(), os.getpid()
        _main.register(bridge)
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
        if self._state in (STOPPING, STOPPED, NEW):
            if self._state is NEW:
                self._state = STOPPED
                self._discard_declared()
            elif self._state is STOPPING and self._shutdown_done is not None:
                await self._shutdown_done.wait()  # another caller is shutting it down
            return
        if self._on_stopping is not None:
            self._on_stopping()
        self._state = STOPPING
        self._shutdown_done = done = anyio.Event()
        engine, bridge = self._engine, self._bridge
        assert engine is not None and bridge is not None
        _main.unregister(bridge)
        with anyio.CancelScope(shield=True):
            try:
                await stop_engine(
                    engine,
                    bridge,
                    timeout,
                    self._logger,
                    flush_events=flush_events,
                    own_bridge=self._own_bridge,
                )
            finally:
                self._state = STOPPED
                done.set()

    def _register_declared(self, engine: Engine) -> None:
        """Hand the tasks declared before the start to the engine, in order."""
        declarations, self._declarations = self._declarations, None
        if declarations is not None:
            for task, delay in declarations.drain():
                engine.add_task(task, delay, None)

    async def _checkpoint(self) -> None:
        """The checkpoint every coroutine method starts with (trio's rule, kept cheaply).

        Every call checks for cancellation first, so in a cancelled scope it
        raises and changes nothing. Every :data:`_YIELD_EVERY`-th call also
        yields to the scheduler, so a tight ``await add_task(...)`` loop
        cannot starve the other tasks; yielding on every call costs about as
        much again as adding the task (measured here: 5-40 us per yield,
        depending on the loop's load), and would halve the add rate.
        """
        if self._forks != fork_generation():  # before any await: there is no loop here
            raise SchedulerStoppedError(forked_message(self._pid))
        self._calls += 1
        if self._calls % _YIELD_EVERY:
            await anyio.lowlevel.checkpoint_if_cancelled()
        else:
            await anyio.lowlevel.checkpoint()

    def _discard_declared(self) -> None:
        """Drop the tasks declared before a start that will not come."""
        declarations, self._declarations = self._declarations, None
        if declarations is not None:
            declarations.drain()

    def _declared(self) -> Declarations | None:
        """Where task methods go before the start; ``None`` once started (or stopped).

        The start drains them with no await between that and becoming
        running, so a caller on this loop never finds them drained; another
        thread may (``Quiv``), and then gets :class:`Drained`.
        """
        return self._declarations

    def _check_running(self) -> Engine:
        if self._forks != fork_generation():
            raise SchedulerStoppedError(forked_message(self._pid))
        if self._state is not RUNNING:
            if self._state is NEW:
                raise SchedulerStoppedError(
                    "the scheduler is not running; use it as `async with AsyncQuiv() as s:`"
                )
            raise SchedulerStoppedError("the scheduler was shut down")
        assert self._engine is not None
        return self._engine

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
        trigger: Trigger | None = None,
        cron: str | None = None,
        misfire_grace: float | None = None,
        key: str | None = None,
    ) -> str:
        """Add a task and return its id (a UUID string).

        A run-once task's job id is known at once: it is the task's
        :attr:`~quiv.Task.next_job_id` (from :meth:`get_task`), for a ``202``
        response that clients then poll with :meth:`get_job`. The job's
        record exists once the task comes due; if the task already ended,
        :meth:`wait_for_task` returns its job.

        :param task_name: a label (names need not be unique)
        :param func: the handler, sync or async; it receives *args*, *kwargs* and
            any of ``_job_id``, ``_stop_event``, ``_progress_hook`` it declares
        :param interval: seconds between runs of a recurring task (> 0)
        :param delay: seconds before the first run (default: run at once)
        :param run_once: run a single time, then remove the task
        :param fixed_interval: keep a fixed grid from the first run (missed slots
            are skipped); ``False`` waits *interval* after each run ends
        :param progress_callback: called on the main loop with each
            ``_progress_hook(**payload)``; inside it :func:`~quiv.current_job`
            is the job that sent the payload, and a callback that declares
            ``_job_id`` receives its id. The last payload is also kept as the
            job's :attr:`~quiv.Job.progress`, with or without a callback
        :param run_at: when to run first (naive means UTC; a past time runs at once)
        :param timeout: cancel a job that runs longer than this many seconds
        :param max_retries: retries of a failed (never a cancelled) job
        :param retry_backoff: delay before retry *n* is ``retry_backoff * 2**(n-1)``
        :param jitter: add uniform(0, *jitter*) seconds to each recurring next run
        :param trigger: when the task runs, as an object (see :mod:`quiv.triggers`):
            instead of *interval*, *run_once* and *run_at*
        :param cron: a cron expression, e.g. ``"30 2 * * 1-5"``, in the scheduler's
            *timezone* (needs the ``quiv[cron]`` extra); short for
            ``trigger=CronTrigger(cron)``
        :param misfire_grace: skip a wall-clock run (cron, calendar interval, your
            own trigger) that comes due more than this many seconds late, e.g.
            after the host slept; ``None`` (the default) runs it late, once
        :param key: a stable name for a recurring schedule. The task's id is
            derived from it, so it is the same in every process and at every
            start, and adding a task with a key this scheduler has again
            replaces that task's settings instead of adding another. In host
            mode (``host_mode=True``) a recurring task needs one; see
            the Deployment page
        :raises ConfigurationError: for an invalid or conflicting parameter
        :raises HandlerRegistrationError: if *func* or *progress_callback* is not callable
        """
        await self._checkpoint()
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
            trigger=trigger,
            cron=cron,
            misfire_grace=misfire_grace,
            timezone=self.timezone,
            key=key,
            host_mode=self.config.host_mode,
        )
        declared = self._declared()
        if declared is not None:
            declared.add(task, first_delay)
        else:
            self._check_running().add_task(task, first_delay, None)
        return task.id

    def _register_task(
        self, task: TaskState, first_delay: float, requested_at: float | None = None
    ) -> None:
        """Add a prepared task to the engine (scheduler loop; never blocks).

        :param requested_at: ``time.monotonic()`` when another thread asked for
            it; the time the request took to arrive counts against the delay
        """
        self._check_running().add_task(task, first_delay, requested_at)

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
        cron: str | Unset = UNSET,
        trigger: Trigger | Unset = UNSET,
        misfire_grace: float | None | Unset = UNSET,
    ) -> Task:
        """Change some settings of a task in place (its id is kept); return the task.

        Only the settings passed change. ``interval`` also reschedules the next
        run one interval from now; ``run_at`` moves the next run (exclusive with
        ``interval``). ``cron`` or ``trigger`` give a recurring task a new
        schedule, from now (exclusive with ``interval`` and ``run_at``; a
        wall-clock task given ``interval`` goes back to an interval).
        ``timeout=None``, ``progress_callback=None`` and ``misfire_grace=None``
        clear those. On a task with a job in flight, changes apply from the
        next run.

        :raises TaskNotFoundError: for an unknown task
        :raises ConfigurationError: for an invalid value (nothing is changed)
        """
        await self._checkpoint()
        changes = {
            "task_name": task_name,
            "interval": interval,
            "fixed_interval": fixed_interval,
            "args": args,
            "kwargs": kwargs,
            "timeout": timeout,
            "max_retries": max_retries,
            "retry_backoff": retry_backoff,
            "jitter": jitter,
            "progress_callback": progress_callback,
            "run_at": run_at,
            "cron": cron,
            "trigger": trigger,
            "misfire_grace": misfire_grace,
        }
        declared = self._declared()
        if declared is not None:
            return declared.update(task_id, changes, self.timezone)
        engine = self._check_running()
        task = engine.find_task(task_id)
        update = validate_update(task.settings(), task.func, **changes, timezone=self.timezone)
        engine.update_task(task, update)
        return task.snapshot()

    async def remove_task(self, task_id: str) -> None:
        """Remove a task. A job in flight is cancelled ("task removed"); history stays.

        :raises TaskNotFoundError: for an unknown task
        """
        await self._checkpoint()
        declared = self._declared()
        if declared is not None:
            declared.remove(task_id)
        else:
            self._check_running().remove_task(task_id)

    async def pause_task(self, task_id: str) -> None:
        """Pause a task: no new job starts until :meth:`resume_task`.

        A job in flight runs to its end. Clears a pending ``after_current`` rerun.

        :raises TaskNotFoundError: for an unknown task
        """
        await self._checkpoint()
        declared = self._declared()
        if declared is not None:
            declared.pause(task_id)
        else:
            self._check_running().pause_task(task_id)

    async def resume_task(self, task_id: str, delay: float = 0) -> None:
        """Make a task active again; its next run is *delay* seconds from now.

        On an active task this reschedules its next run.

        :raises TaskNotFoundError: for an unknown task
        :raises TaskRunningError: if one of its jobs is in flight
        :raises ConfigurationError: for a negative or non-finite *delay*
        """
        await self._checkpoint()
        declared = self._declared()
        if declared is not None:
            declared.resume(task_id, delay)
        else:
            self._check_running().resume_task(task_id, delay)

    async def run_task_immediately(self, task_id: str, *, after_current: bool = False) -> None:
        """Run a task now, outside its schedule.

        :param after_current: if a job is in flight, run again as soon as it
            ends (recurring tasks only) instead of raising
        :raises TaskNotFoundError: for an unknown task
        :raises TaskNotActiveError: if the task is paused
        :raises TaskRunningError: if a job is in flight (and *after_current* is not
            set, or the task runs once)
        """
        await self._checkpoint()
        declared = self._declared()
        if declared is not None:
            declared.run_now(task_id, after_current)
        else:
            self._check_running().run_now(task_id, after_current)

    async def preview(
        self, task_id_or_trigger: str | Trigger, n: int = 5, *, after: datetime | None = None
    ) -> list[datetime]:
        """The next *n* fire times of a task or a trigger, aware UTC; no side effects.

        For a task id: its runs as its schedule stands (for an interval task,
        its next run and one every interval after it, jitter left out). For a
        trigger (a :class:`~quiv.triggers.CronTrigger` not yet added, say):
        its fires, in the scheduler's *timezone* unless it names its own.
        Fewer than *n* when the schedule ends.

        :param n: how many (0 to 10,000)
        :param after: count from this time (naive means UTC); ``None`` means now
        :raises TaskNotFoundError: for an unknown task id
        :raises ConfigurationError: for a bad *n* or *after*, an object that
            is not a trigger, or a trigger that returns a bad time
        """
        await self._checkpoint()
        count, start = check_preview(n, after)
        if isinstance(task_id_or_trigger, str):
            declared = self._declared()
            try:
                if declared is not None:
                    return declared.preview(task_id_or_trigger, count, start)
                engine = self._check_running()
                task = engine.find_task(task_id_or_trigger)
            except TaskNotFoundError as exc:
                raise TaskNotFoundError(exc.task_id, "task_id_or_trigger") from None
            return preview_task(task, count, start or engine.wall_now())
        if start is None:
            running = self._engine if self._state is RUNNING else None
            start = utcnow() if running is None else running.wall_now()
        trigger = as_trigger(task_id_or_trigger, self.timezone, start)
        return preview_trigger(trigger, count, start)

    async def get_task(self, task_id: str) -> Task:
        """Return a task.

        Called right after ``add_task``, it finds the task even if it is a
        run-once task whose job ends at once: the task is read before the call
        yields to other tasks, so its ``next_job_id`` can go in a 202 response.

        :raises TaskNotFoundError: for an unknown (removed, finished run-once) task
        """
        await anyio.lowlevel.checkpoint_if_cancelled()
        declared = self._declared()
        if declared is not None:
            task = declared.get(task_id)
        else:
            task = self._check_running().find_task(task_id).snapshot()
        self._calls += 1
        if not self._calls % _YIELD_EVERY:  # the yield of the checkpoint, after the read
            await anyio.lowlevel.cancel_shielded_checkpoint()
        return task

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
        await self._checkpoint()
        declared = self._declared()
        if declared is not None:
            return declared.select(include_run_once, status, limit, offset, task_name)
        tasks = _queries.select_tasks(
            self._check_running().tasks.values(),
            include_run_once,
            status,
            limit,
            offset,
            task_name,
        )
        return [task.snapshot() for task in tasks]

    # -- jobs --------------------------------------------------------------------

    def cancel_job(self, job_id: str) -> bool:
        """Cancel a queued or running job; return ``False`` if it is not in flight.

        A queued job never calls its handler. A running one sees its stop event
        set; an async handler is also cancelled at its next ``await``. The job
        ends ``cancelled``.
        """
        return self._check_running().cancel_job(job_id)

    async def get_job(self, job_id: str) -> Job:
        """Return a job's record (it reflects every change made before the call).

        :raises JobNotFoundError: for an unknown or pruned job
        :raises StoreError: if the store cannot answer
        """
        await self._checkpoint()
        return await self._check_running().get_job(job_id)

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
        await self._checkpoint()
        engine = self._check_running()
        query = _queries.job_query(
            status, task_id, since, until, order_by, descending, limit, offset
        )
        return await engine.get_jobs(query)

    async def wait_for_job(self, job_id: str, timeout: float | None = None) -> Job:
        """Wait until a job ends; return its final record (with its ``result``).

        Returns at once for a job that already ended. When it returns, the
        task's own record already reflects the end of the job.

        :raises JobNotFoundError: for an unknown or pruned job
        :raises TimeoutError: if *timeout* seconds pass first
        :raises SchedulerStoppedError: if the scheduler stops first
        """
        await self._checkpoint()
        return await self._check_running().wait_for_job(job_id, timeout)

    async def wait_for_task(self, task_id: str, timeout: float | None = None) -> Job:
        """Wait for the next job of a task to end (the one in flight, if any).

        For a run-once task that has already run, return its last job, so
        "add, then wait" never races the job.

        :raises TaskNotFoundError: for an unknown task, or one removed while idle
        :raises TimeoutError: if *timeout* seconds pass first
        :raises SchedulerStoppedError: if the scheduler stops first
        """
        await self._checkpoint()
        return await self._check_running().wait_for_task(task_id, timeout)

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
        await self._checkpoint()
        return await self._check_running().stats(loop_alive=self._state is RUNNING)
