"""Quiv: the sync face, an :class:`~quiv.AsyncQuiv` running on a thread of its own.

Each method hands its call to the scheduler's loop thread (see
:mod:`quiv._faces.sync_runtime`). The module is longer than most because
every public signature of :class:`~quiv.AsyncQuiv` is repeated here with its
docstring (a parity test keeps them identical, and the API reference is
generated from them).
"""

from __future__ import annotations

import enum
import importlib.util
import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, tzinfo
from os import PathLike
from types import TracebackType
from typing import Any, TypeVar

from anyio.from_thread import BlockingPortal

from .._checks import check_number
from .._config import UNSET, Unset
from .._core.preview import as_trigger, check_preview, preview_trigger
from .._core.records import utcnow
from .._core.task_checks import new_task
from .._errors import ConfigurationError, SchedulerStoppedError, TaskNotFoundError
from .._events import Event
from .._models import Job, JobStatus, QuivConfig, QuivStats, Task, TaskStatus
from .._states import RUNNING
from .._typing import Logger
from ..abc import Clock, Trigger
from .async_face import AsyncQuiv
from .declarations import Declarations, Drained
from .sync_runtime import SyncRuntime

__all__ = ("Quiv",)

T = TypeVar("T")


class _Started(enum.Enum):
    STARTED = enum.auto()


#: what :meth:`Quiv._before_start` returns once the scheduler has started
_STARTED = _Started.STARTED


class Quiv:
    """The scheduler, for sync code: methods are plain calls, from any thread.

    ``start()`` runs an :class:`~quiv.AsyncQuiv` on an event loop in a daemon
    thread of its own; ``shutdown()`` stops it and ends the thread::

        scheduler = Quiv(timezone="UTC")
        scheduler.start()
        task_id = scheduler.add_task("report", build_report, interval=60)
        ...
        scheduler.shutdown()

    or ``with Quiv() as scheduler: ...``. Every method of
    :class:`~quiv.AsyncQuiv` exists here with the same name and parameters,
    as a blocking call; :meth:`await_job` and :meth:`await_task` wait from
    async code (asyncio or trio) without blocking its loop.

    **The main loop.** If ``start()`` is called from a thread running an event
    loop (a FastAPI lifespan, ``asyncio.run``, ``trio.run``), that loop is the
    *main loop*: progress callbacks, listeners and :func:`~quiv.run_on_main`
    targets run there. Otherwise they run on the scheduler's own loop.

    **Threads.** Methods can be called from any thread: plain threads, worker
    threads (sync FastAPI endpoints), the main loop's own thread (the call
    blocks that loop for the short time the engine takes to answer, like any
    sync call would), handlers. The one exception is the scheduler's own loop
    thread, where callbacks run when there is no host loop: a blocking call
    there would wait for itself, so it raises :class:`~quiv.QuivError`.
    There, ``cancel_job``, ``add_listener``, ``remove_listener``,
    ``pending_main_loop_work`` and ``shutdown`` (which then only starts the
    shutdown) still work, and async callbacks can ``await`` the methods of
    :attr:`async_quiv`.

    **Lifecycle.** Tasks may be added (and changed, paused, listed, removed)
    before ``start()``: they run once the scheduler starts, so an app can
    declare them at import time. ``start()`` twice does nothing, and
    ``shutdown()`` twice does nothing. Between ``shutdown()`` and the next
    ``start()``, task and job methods raise
    :class:`~quiv.SchedulerStoppedError`; ``start()`` after ``shutdown()``
    starts a new, empty scheduler with the same settings and listeners. A
    scheduler that is never shut down
    is shut down at interpreter exit (waiting at most 5 s for running jobs,
    or ``shutdown_timeout``), so no thread or temporary file is left behind.

    The parameters are those of :class:`~quiv.AsyncQuiv`, plus:

    :param backend: the event loop of the scheduler's thread, ``"asyncio"``
        (default) or ``"trio"``; async handlers run on it too unless
        ``worker_backend`` says otherwise
    :param backend_options: options for that loop, as for :func:`anyio.run`
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
        backend: str = "asyncio",
        backend_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._async = AsyncQuiv(
            config,
            pool_size,
            history_retention_seconds,
            timezone,
            logger=logger,
            db_path=db_path,
            worker_backend=worker_backend,
            clock=clock,
            shutdown_timeout=shutdown_timeout,
            max_result_bytes=max_result_bytes,
            host_mode=host_mode,
        )
        if backend not in ("asyncio", "trio"):
            raise ConfigurationError.bad_value("backend", backend, "'asyncio' or 'trio'")
        if backend == "trio" and importlib.util.find_spec("trio") is None:
            raise ConfigurationError("backend='trio' needs trio: pip install 'quiv[trio]'")
        if backend_options is not None and not isinstance(backend_options, Mapping):
            raise ConfigurationError.bad_value("backend_options", backend_options, "a mapping")
        log = self._async.config.logger or logging.getLogger("quiv")
        self._runtime = SyncRuntime(self._async, backend, dict(backend_options or {}), log)
        #: serialises start() against itself, for the restart after a shutdown
        self._start_lock = threading.Lock()

    def __repr__(self) -> str:
        return self._runtime.describe()

    # -- lifecycle -------------------------------------------------------------

    @property
    def config(self) -> QuivConfig:
        """The settings this scheduler runs with."""
        return self._async.config

    @property
    def timezone(self) -> tzinfo:
        """The ``timezone`` setting, resolved to a :class:`~datetime.tzinfo`.

        quiv does not use it yet: every datetime it returns or logs is UTC, and
        intervals, delays and ``run_at`` do not depend on it. It is kept for your
        own display code; wall-clock (cron) schedules will default to it.
        """
        return self._async.timezone

    @property
    def is_running(self) -> bool:
        """``True`` between :meth:`start` and :meth:`shutdown`."""
        return self._runtime.state is RUNNING and self._async.is_running

    @property
    def is_runner(self) -> bool:
        """Whether this process runs the recurring schedules; see :attr:`AsyncQuiv.is_runner <quiv.AsyncQuiv.is_runner>`."""
        return self._runtime.state is RUNNING and self._async.is_runner

    @property
    def portal(self) -> BlockingPortal:
        """A portal into the scheduler's loop, for plain threads that want to run
        coroutines there (``scheduler.portal.call(...)``).

        :raises SchedulerStoppedError: if the scheduler is not running
        """
        return self._async.portal

    @property
    def async_quiv(self) -> AsyncQuiv:
        """The :class:`~quiv.AsyncQuiv` this face drives.

        Its coroutine methods may only be awaited on the scheduler's own loop:
        in async callbacks or listeners of a ``Quiv`` started outside any event
        loop (where the blocking methods of this class refuse to run).
        """
        return self._async

    def start(self) -> None:
        """Start the scheduler; do nothing if it is already running.

        Called from a thread that runs an event loop, that loop becomes the
        main loop for callbacks (see the class documentation).

        After :meth:`shutdown`, ``start()`` starts a new, empty scheduler with
        the same settings and listeners, as a new process would: tasks and the
        job history of the previous run are gone (and so is the temporary
        database; a ``db_path`` file is kept). This is what a module-level
        ``Quiv`` started in a FastAPI lifespan needs when a test suite enters
        one ``TestClient(app)`` per test.

        :raises StoreError: if the job store cannot be opened
        """
        with self._start_lock:
            if self._runtime.wait_until_stopped():  # shut down: start afresh
                self._runtime = self._runtime.fresh()
                self._async = self._runtime.async_quiv
            self._runtime.start()

    startup = start

    def shutdown(self, timeout: float | None | Unset = UNSET) -> None:
        """Stop the scheduler and end its thread; a second call does nothing.

        Running jobs are cancelled (stop events set, async handlers cancelled)
        and waited for up to *timeout* seconds; the ones still running are
        recorded as cancelled ("abandoned at shutdown"). The temporary database
        is removed. Called on the main loop's own thread, it does not wait for
        events still queued for that loop (the loop is blocked by this call);
        called on the scheduler's own thread or inside a job, it starts the
        shutdown and returns.

        :param timeout: seconds to wait for running jobs; ``None`` waits for
            them all; default: the ``shutdown_timeout`` setting
        :raises ConfigurationError: for an invalid *timeout*
        """
        if timeout is UNSET:
            timeout = self.config.shutdown_timeout
        elif timeout is not None:
            timeout = check_number(timeout, "timeout", allow_inf=True)
        self._runtime.stop(timeout, flush=True)

    stop = shutdown

    def __enter__(self) -> Quiv:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    # -- tasks -------------------------------------------------------------------

    def add_task(
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
        """Add a task and return its id; see :meth:`AsyncQuiv.add_task <quiv.AsyncQuiv.add_task>`.

        The request is validated in the calling thread (errors are raised here)
        and then handed to the scheduler's loop without waiting for it, so
        adding many tasks from a web endpoint costs no thread round trip each.
        Later calls from the same thread see the task.

        Before :meth:`start`, the task is kept and runs once the scheduler starts.
        """
        requested_at = time.monotonic()
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
            host_mode=self._async.config.host_mode,
        )
        if self._before_start(lambda declared: declared.add(task, first_delay)) is _STARTED:
            self._runtime.add_task(task, first_delay, requested_at)
        return task.id

    def _before_start(self, operation: Callable[[Declarations], T]) -> T | _Started:
        """Run a task method on the tasks declared before the start, if not started.

        :return: what *operation* returns, or :data:`_STARTED` if the scheduler
            has started (or stopped), in which case the caller goes to its loop
        """
        declarations = self._async._declared()
        if declarations is not None:
            try:
                return operation(declarations)
            except Drained:  # a start() in another thread took them meanwhile
                pass
        self._runtime.wait_until_started()
        return _STARTED

    def update_task(
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
        """Change a task in place; see :meth:`AsyncQuiv.update_task <quiv.AsyncQuiv.update_task>`."""
        changes: dict[str, Any] = {
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
        declared = self._before_start(
            lambda declared: declared.update(task_id, changes, self.timezone)
        )
        if declared is not _STARTED:
            return declared
        return self._runtime.call(self._async.update_task, task_id, **changes)

    def remove_task(self, task_id: str) -> None:
        """Remove a task (cancelling its job in flight); history stays."""
        if self._before_start(lambda declared: declared.remove(task_id)) is _STARTED:
            self._runtime.call(self._async.remove_task, task_id)

    def pause_task(self, task_id: str) -> None:
        """Pause a task: no new job starts until :meth:`resume_task`."""
        if self._before_start(lambda declared: declared.pause(task_id)) is _STARTED:
            self._runtime.call(self._async.pause_task, task_id)

    def resume_task(self, task_id: str, delay: float = 0) -> None:
        """Make a task active again; its next run is *delay* seconds from now."""
        if self._before_start(lambda declared: declared.resume(task_id, delay)) is _STARTED:
            self._runtime.call(self._async.resume_task, task_id, delay)

    def run_task_immediately(self, task_id: str, *, after_current: bool = False) -> None:
        """Run a task now, outside its schedule (or right after its current job)."""
        declared = self._before_start(lambda declared: declared.run_now(task_id, after_current))
        if declared is _STARTED:
            self._runtime.call(
                self._async.run_task_immediately, task_id, after_current=after_current
            )

    def preview(
        self, task_id_or_trigger: str | Trigger, n: int = 5, *, after: datetime | None = None
    ) -> list[datetime]:
        """The next *n* fire times of a task or a trigger; see :meth:`AsyncQuiv.preview <quiv.AsyncQuiv.preview>`."""
        if not isinstance(task_id_or_trigger, str) and not self._async.is_running:
            count, start = check_preview(n, after)  # a trigger alone needs no loop
            start = start or utcnow()
            trigger = as_trigger(task_id_or_trigger, self.timezone, start)
            return preview_trigger(trigger, count, start)
        if isinstance(task_id_or_trigger, str):
            count, start = check_preview(n, after)
            try:
                declared = self._before_start(
                    lambda declared: declared.preview(task_id_or_trigger, count, start)
                )
            except TaskNotFoundError as exc:
                raise TaskNotFoundError(exc.task_id, "task_id_or_trigger") from None
            if declared is not _STARTED:
                return declared
        return self._runtime.call(self._async.preview, task_id_or_trigger, n, after=after)

    def get_task(self, task_id: str) -> Task:
        """Return a task; see :meth:`AsyncQuiv.get_task <quiv.AsyncQuiv.get_task>`."""
        declared = self._before_start(lambda declared: declared.get(task_id))
        if declared is not _STARTED:
            return declared
        return self._runtime.call(self._async.get_task, task_id)

    def get_all_tasks(
        self,
        include_run_once: bool = False,
        status: TaskStatus | str | None = None,
        limit: int | None = None,
        offset: int = 0,
        task_name: str | None = None,
    ) -> list[Task]:
        """Return tasks ordered by next run (tasks without one last)."""
        declared = self._before_start(
            lambda declared: declared.select(include_run_once, status, limit, offset, task_name)
        )
        if declared is not _STARTED:
            return declared
        return self._runtime.call(
            self._async.get_all_tasks,
            include_run_once,
            status,
            limit,
            offset,
            task_name,
        )

    # -- jobs --------------------------------------------------------------------

    def cancel_job(self, job_id: str) -> bool:
        """Cancel a queued or running job; return ``False`` if it is not in flight.

        Called from a thread other than the scheduler's loop, a running
        handler's stop event is set at once, in the calling thread; the loop
        then records the cancel.
        """
        stopped = self._runtime.stop_running(job_id)
        return self._runtime.call_plain(self._async.cancel_job, job_id) or stopped

    def get_job(self, job_id: str) -> Job:
        """Return a job's record; see :meth:`AsyncQuiv.get_job <quiv.AsyncQuiv.get_job>`."""
        return self._runtime.call(self._async.get_job, job_id)

    def get_all_jobs(
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
        """Return job records, newest first by default."""
        return self._runtime.call(
            self._async.get_all_jobs,
            status,
            task_id,
            since,
            until,
            order_by,
            descending,
            limit,
            offset,
        )

    def wait_for_job(self, job_id: str, timeout: float | None = None) -> Job:
        """Block until a job ends; return its final record.

        From async code, use :meth:`await_job`, which does not block the loop.

        :raises TimeoutError: if *timeout* seconds pass first
        :raises SchedulerStoppedError: if the scheduler stops first
        """
        return self._runtime.call(self._async.wait_for_job, job_id, timeout)

    def wait_for_task(self, task_id: str, timeout: float | None = None) -> Job:
        """Block until the next job of a task ends (the one in flight, if any).

        From async code, use :meth:`await_task`, which does not block the loop.

        :raises TimeoutError: if *timeout* seconds pass first
        :raises SchedulerStoppedError: if the scheduler stops first
        """
        return self._runtime.call(self._async.wait_for_task, task_id, timeout)

    async def await_job(self, job_id: str, timeout: float | None = None) -> Job:
        """Wait, in async code on any loop (asyncio or trio), until a job ends.

        Does not block the caller's loop; cancelling the caller stops the wait.

        :raises TimeoutError: if *timeout* seconds pass first
        :raises SchedulerStoppedError: if the scheduler stops first
        """
        return await self._runtime.call_async(self._async.wait_for_job, job_id, timeout)

    async def await_task(self, task_id: str, timeout: float | None = None) -> Job:
        """Wait, in async code on any loop (asyncio or trio), for a task's next job to end.

        Does not block the caller's loop; cancelling the caller stops the wait.

        :raises TimeoutError: if *timeout* seconds pass first
        :raises SchedulerStoppedError: if the scheduler stops first
        """
        return await self._runtime.call_async(self._async.wait_for_task, task_id, timeout)

    def stats(self) -> QuivStats:
        """A snapshot of the scheduler's state."""
        return self._runtime.call(self._async.stats)

    # -- events and the main loop --------------------------------------------------

    def add_listener(self, event: Event, callback: Callable[..., Any]) -> None:
        """Call *callback* on the main loop for every *event* (also before start)."""
        try:
            self._runtime.call_plain(self._async.add_listener, event, callback)
        except SchedulerStoppedError:  # not running: nothing else touches the registry
            self._async.add_listener(event, callback)

    def remove_listener(self, event: Event, callback: Callable[..., Any]) -> None:
        """Stop calling *callback* for *event* (unknown callbacks are ignored)."""
        try:
            self._runtime.call_plain(self._async.remove_listener, event, callback)
        except SchedulerStoppedError:
            self._async.remove_listener(event, callback)

    def pending_main_loop_work(self) -> int:
        """How many calls handed to the main loop have not settled yet."""
        return self._async.pending_main_loop_work()
